//! The checks of `lifeboat drill`: QEMU is there, the firmware for UEFI
//! drills, and whether KVM runs a guest here (else drills use TCG, several
//! times slower). None of them fails the preflight: a machine can make
//! working rescue media without being able to drill them.

use crate::{not_needed, pass, warning, Check};
use lifeboat_config::{Config, DrillAccel};
use lifeboat_runner::{package_hint, Cmd, Runner};
use std::path::Path;
use std::time::Duration;

const QEMU: &str = "QEMU for drills (qemu-system-x86_64)";
const OVMF: &str = "UEFI firmware for drills (OVMF)";
const KVM: &str = "KVM for drills";

/// How long the check waits for a kernel to print its banner under KVM (a
/// working KVM takes well under a second; the drill itself waits longer).
const PROBE: Duration = Duration::from_secs(5);

/// The drill's checks.
pub fn drill_checks(cfg: &Config, r: &dyn Runner) -> Vec<Check> {
    let fix = format!("{} (only `lifeboat drill` needs it)", package_hint("qemu-system-x86_64"));
    if !r.has("qemu-system-x86_64") {
        return vec![
            warning(QEMU, "not installed: `lifeboat drill` cannot boot the rescue medium", fix),
            not_needed(OVMF, "no QEMU"),
            not_needed(KVM, "no QEMU"),
        ];
    }
    let version = r
        .probe(&Cmd::new("qemu-system-x86_64").arg("--version").timeout(Duration::from_secs(10)))
        .map(|o| o.text().lines().next().unwrap_or("").trim().to_string())
        .unwrap_or_default();
    let mut out = vec![pass(QEMU, version)];
    out.push(if Path::new(lifeboat_vm::OVMF).exists() {
        pass(OVMF, lifeboat_vm::OVMF)
    } else {
        warning(
            OVMF,
            format!("{} is missing: UEFI machines cannot be drilled", lifeboat_vm::OVMF),
            "apt-get install ovmf (dnf install edk2-ovmf; zypper install qemu-ovmf-x86_64)",
        )
    });
    out.push(match cfg.drill.accel {
        DrillAccel::Tcg => not_needed(KVM, "drill.accel = \"tcg\": drills use emulation"),
        DrillAccel::Kvm | DrillAccel::Auto => match lifeboat_vm::probe_kvm(r, None, PROBE) {
            Ok(why) => pass(KVM, why),
            Err(why) => warning(
                KVM,
                format!("not usable: {why}; drills use TCG (emulation, several times slower)"),
                if cfg.drill.accel == DrillAccel::Kvm {
                    "drill.accel = \"kvm\" will not work here: set drill.accel = \"auto\" or \"tcg\", or enable \
                     virtualisation (VT-x/AMD-V) in the firmware and load kvm_intel or kvm_amd"
                } else {
                    "enable virtualisation (VT-x/AMD-V) in the firmware and load kvm_intel or kvm_amd (or accept \
                     TCG: set drill.accel = \"tcg\" to skip this probe)"
                },
            ),
        },
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;
    use lifeboat_runner::ScriptedRunner;

    #[test]
    fn without_qemu_the_drill_checks_warn_with_the_package_and_do_not_fail() {
        let r = ScriptedRunner::new().without("qemu-system-x86_64");
        let c = drill_checks(&Config::default(), &r);
        assert_eq!(c[0].status, Status::Warning, "{c:?}");
        assert!(c[0].fix.as_deref().is_some_and(|f| f.contains("qemu")), "{c:?}");
        assert!(c.iter().all(|c| c.status != Status::Failed));
    }

    #[test]
    fn drill_accel_tcg_skips_the_kvm_probe() {
        let r = ScriptedRunner::new().answer("qemu-system-x86_64 --version", "QEMU emulator version 7.2.22\n");
        let mut cfg = Config::default();
        cfg.drill.accel = DrillAccel::Tcg;
        let c = drill_checks(&cfg, &r);
        assert_eq!(c[0].detail, "QEMU emulator version 7.2.22");
        assert_eq!(c[2].status, Status::NotNeeded, "{c:?}");
        assert!(!r.planned().iter().any(|l| l.contains("-accel kvm")));
    }
}
