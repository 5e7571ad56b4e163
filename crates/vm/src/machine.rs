//! Booting real media (ISO, disk images, kernel + initramfs) in QEMU and
//! talking to them over the serial console, as an administrator would over
//! IPMI serial-over-LAN.

use crate::{io, tail, Accel, VmError};
use lifeboat_runner::{Cmd, Effect, Mode, Process, Runner, Streams, SystemRunner};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which firmware the machine starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS.
    Bios,
    /// OVMF (UEFI).
    Uefi,
    /// OVMF with Secure Boot on and Microsoft's keys enrolled (what a
    /// typical server ships with): only signed boot loaders run.
    UefiSecureBoot,
}

/// Something attached to the machine.
#[derive(Debug, Clone)]
pub enum Media {
    /// An optical drive holding this ISO (boots first when it is the first medium).
    Cdrom(PathBuf),
    /// A virtio disk backed by an image file (or a block device).
    Disk {
        /// The image.
        image: PathBuf,
        /// Serial the guest sees.
        serial: String,
        /// Attach read-only.
        read_only: bool,
    },
    /// A USB stick backed by an image file (usb-storage on an XHCI controller).
    Usb(PathBuf),
    /// An NVMe disk backed by an image file (the guest sees /dev/nvme0n1).
    Nvme {
        /// The image.
        image: PathBuf,
        /// Serial the guest sees.
        serial: String,
    },
}

/// How to start a machine.
#[derive(Debug, Clone)]
pub struct Boot {
    /// Name for errors.
    pub name: String,
    /// Firmware.
    pub firmware: Firmware,
    /// Media in boot order (the first one is booted).
    pub media: Vec<Media>,
    /// Boot this kernel directly: (kernel, initramfs, command line), as PXE would.
    pub direct: Option<(PathBuf, PathBuf, String)>,
    /// A virtio network card on QEMU's user network (DHCP server at 10.0.2.2).
    pub nic: bool,
    /// Isolate that network (`restrict=on`): the guest reaches neither the
    /// host nor anything beyond it, so a drilled clone never talks to
    /// production with production's addresses.
    pub restrict_net: bool,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Other hardware than the defaults: a q35 machine, disks on AHCI (SATA)
    /// and an Intel e1000e network card instead of virtio.
    pub other_hardware: bool,
    /// Forward this host port (on 127.0.0.1) to the guest's port 22.
    pub ssh_port: Option<u16>,
    /// How QEMU runs the guest (TCG unless the caller chose KVM).
    pub accel: Accel,
    /// Guest address:port → host port on 127.0.0.1 (QEMU's `guestfwd`): a
    /// server of the host that the guest reaches at that one address, also
    /// on a restricted network, e.g. `("10.0.2.100:3900", 39123)`.
    pub guest_forwards: Vec<(String, u16)>,
    /// Boot from the network first (PXE with QEMU's iPXE ROM): QEMU's DHCP
    /// offers this boot file from this directory over its TFTP server.
    pub tftp: Option<(PathBuf, String)>,
    /// The NIC's MAC address (QEMU's default `52:54:00:12:34:56` otherwise).
    pub mac: Option<String>,
    /// Guest address:port → a command QEMU starts for each connection, its
    /// stdin and stdout the connection (`guestfwd=…-cmd:`), e.g.
    /// `("10.0.2.100:80", "busybox nc 127.0.0.1 8080")`: unlike
    /// [`Boot::guest_forwards`], whose one host connection is made when QEMU
    /// starts, every guest connection gets its own (servers that close
    /// connections, many connections at once).
    pub guest_commands: Vec<(String, String)>,
}

impl Boot {
    /// A machine with 2 GiB, 2 CPUs, a NIC, TCG and nothing attached.
    pub fn new(name: &str, firmware: Firmware) -> Boot {
        Boot {
            name: name.into(),
            firmware,
            media: Vec::new(),
            direct: None,
            nic: true,
            restrict_net: false,
            memory_mib: 2048,
            cpus: 2,
            other_hardware: false,
            ssh_port: None,
            accel: Accel::Tcg,
            guest_forwards: Vec::new(),
            tftp: None,
            mac: None,
            guest_commands: Vec::new(),
        }
    }
}

/// A running machine: its serial console, readable and writable. Dropping
/// it stops the machine.
#[derive(Debug)]
pub struct Console {
    name: String,
    process: Option<Process>,
    /// QEMU's end, once it stopped: its exit status and stderr as text.
    ended: Option<String>,
    seen: Arc<Mutex<Vec<u8>>>,
    started: Instant,
    vars: Option<PathBuf>,
}

/// Where OVMF lives on Debian.
pub const OVMF: &str = "/usr/share/ovmf/OVMF.fd";
/// OVMF built with Secure Boot support (needs q35 with SMM).
pub const OVMF_SECBOOT_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
/// An OVMF variable store with Microsoft's keys enrolled and Secure Boot on.
pub const OVMF_MS_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";

/// QEMU's arguments for a machine; `vars` is the private copy of the
/// firmware's variable store, when it has one.
pub fn qemu_command(b: &Boot, vars: Option<&Path>) -> Result<Cmd, VmError> {
    let mut cmd = Cmd::new("qemu-system-x86_64")
        .args(["-accel", b.accel.as_str(), "-smp", &b.cpus.to_string(), "-nodefaults", "-display", "none"])
        .args(["-no-reboot", "-monitor", "none", "-m", &b.memory_mib.to_string(), "-serial", "stdio"]);
    match b.firmware {
        Firmware::Bios => {}
        Firmware::Uefi => {
            if !Path::new(OVMF).exists() {
                return Err(VmError::Unavailable(format!("{OVMF} is missing (apt-get install ovmf)")));
            }
            cmd = cmd.args(["-bios", OVMF]);
        }
        Firmware::UefiSecureBoot => {
            for f in [OVMF_SECBOOT_CODE, OVMF_MS_VARS] {
                if !Path::new(f).exists() {
                    return Err(VmError::Unavailable(format!("{f} is missing (apt-get install ovmf)")));
                }
            }
            let vars = vars.ok_or_else(|| VmError::Build("Secure Boot needs a copy of the variable store".into()))?;
            cmd = cmd
                .args(["-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"])
                .arg("-drive")
                .arg(format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_SECBOOT_CODE}"))
                .arg("-drive")
                .arg(format!("if=pflash,format=raw,unit=1,file={}", vars.display()));
        }
    }
    if b.other_hardware {
        cmd = cmd.args(["-machine", "q35", "-device", "ahci,id=sata"]);
    }
    if let Some((k, i, append)) = &b.direct {
        cmd = cmd.arg("-kernel").arg(k).arg("-initrd").arg(i).arg("-append").arg(append);
    }
    let mut usb = false;
    for (n, m) in b.media.iter().enumerate() {
        match m {
            Media::Cdrom(p) => {
                cmd = cmd
                    .arg("-drive")
                    .arg(format!("file={},format=raw,if=none,id=m{n},media=cdrom,readonly=on", p.display()))
                    .arg("-device")
                    .arg(format!("ide-cd,drive=m{n},bootindex={}", n + 1));
            }
            Media::Disk { image, serial, read_only } => {
                let ro = if *read_only { ",readonly=on" } else { "" };
                let device = if b.other_hardware {
                    format!("ide-hd,bus=sata.{n},drive=m{n},serial={serial},bootindex={}", n + 1)
                } else {
                    format!("virtio-blk-pci,drive=m{n},serial={serial},bootindex={}", n + 1)
                };
                cmd = cmd
                    .arg("-drive")
                    .arg(format!("file={},format=raw,if=none,id=m{n},cache=unsafe{ro}", image.display()))
                    .arg("-device")
                    .arg(device);
            }
            Media::Nvme { image, serial } => {
                cmd = cmd
                    .arg("-drive")
                    .arg(format!("file={},format=raw,if=none,id=m{n},cache=unsafe", image.display()))
                    .arg("-device")
                    .arg(format!("nvme,drive=m{n},serial={serial},bootindex={}", n + 1));
            }
            Media::Usb(p) => {
                if !usb {
                    cmd = cmd.args(["-device", "qemu-xhci,id=xhci"]);
                    usb = true;
                }
                cmd = cmd
                    .arg("-drive")
                    .arg(format!("file={},format=raw,if=none,id=m{n},readonly=on", p.display()))
                    .arg("-device")
                    .arg(format!("usb-storage,bus=xhci.0,drive=m{n},bootindex={}", n + 1));
            }
        }
    }
    if b.nic {
        let model = if b.other_hardware { "e1000e" } else { "virtio-net-pci" };
        let restrict = if b.restrict_net { ",restrict=on" } else { "" };
        let mut fwd = b.ssh_port.map(|p| format!(",hostfwd=tcp:127.0.0.1:{p}-:22")).unwrap_or_default();
        for (guest, port) in &b.guest_forwards {
            fwd.push_str(&format!(",guestfwd=tcp:{guest}-tcp:127.0.0.1:{port}"));
        }
        for (guest, command) in &b.guest_commands {
            // QEMU's option syntax: a comma in a value is written twice.
            fwd.push_str(&format!(",guestfwd=tcp:{guest}-cmd:{}", command.replace(',', ",,")));
        }
        if b.tftp.is_none() && b.mac.is_none() {
            cmd = cmd.args(["-nic", &format!("user,model={model}{restrict}{fwd}")]);
        } else {
            // A network boot needs the card in the boot order (first), which -nic cannot say.
            let tftp = match &b.tftp {
                Some((dir, file)) => format!(",tftp={},bootfile={file}", dir.display()),
                None => String::new(),
            };
            let mac = b.mac.as_ref().map(|m| format!(",mac={m}")).unwrap_or_default();
            let first = if b.tftp.is_some() { ",bootindex=0" } else { "" };
            cmd = cmd
                .args(["-netdev", &format!("user,id=net0{restrict}{fwd}{tftp}")])
                .args(["-device", &format!("{model},netdev=net0{mac}{first}")]);
        }
    }
    Ok(cmd)
}

/// Start a machine (QEMU through a runner of its own).
pub fn boot(b: &Boot) -> Result<Console, VmError> {
    boot_with(b, &SystemRunner::new(Mode::Run))
}

/// Start a machine with QEMU run by `runner`.
pub fn boot_with(b: &Boot, runner: &dyn Runner) -> Result<Console, VmError> {
    let mut vars = None;
    if b.firmware == Firmware::UefiSecureBoot && Path::new(OVMF_MS_VARS).exists() {
        // The variable store is written by the firmware: give each machine its own copy.
        let safe: String = b.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        let copy = std::env::temp_dir().join(format!("lifeboat-ovmf-vars-{}-{safe}.fd", std::process::id()));
        std::fs::copy(OVMF_MS_VARS, &copy).map_err(io("cannot copy the OVMF variable store"))?;
        vars = Some(copy);
    }
    let cmd = match qemu_command(b, vars.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            if let Some(v) = &vars {
                let _ = std::fs::remove_file(v);
            }
            return Err(e);
        }
    };
    log::debug!("boot {}: {}", b.name, cmd.cmdline());
    let mut process = match runner.spawn(&cmd, Effect::Apply, Streams::new().stdin_pipe().stdout_pipe()) {
        Ok(p) => p,
        Err(e) => {
            if let Some(v) = &vars {
                let _ = std::fs::remove_file(v);
            }
            return Err(VmError::Qemu(e));
        }
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    if let Some(mut stream) = process.take_stdout() {
        let seen = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = seen.lock() {
                    s.extend_from_slice(&buf[..n]);
                }
            }
        });
    }
    Ok(Console { name: b.name.clone(), process: Some(process), ended: None, seen, started: Instant::now(), vars })
}

impl Console {
    /// The machine's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Everything the console printed so far (carriage returns removed).
    pub fn transcript(&self) -> String {
        let s = self.seen.lock().map(|s| String::from_utf8_lossy(&s).into_owned()).unwrap_or_default();
        s.replace('\r', "")
    }

    /// Time since the machine was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether QEMU has stopped; once it has, its exit status (and stderr) is kept.
    pub fn stopped(&mut self) -> bool {
        if self.ended.is_some() {
            return true;
        }
        let running = self.process.as_mut().is_some_and(|p| p.is_running());
        if running {
            return false;
        }
        let status = match self.process.take().map(Process::wait) {
            Some(Ok(_)) | None => "exit status 0".to_string(),
            Some(Err(lifeboat_runner::RunError::Failed { status, stderr, .. })) => {
                if stderr.trim().is_empty() {
                    status
                } else {
                    format!("{status}: {}", stderr.trim())
                }
            }
            Some(Err(e)) => e.to_string(),
        };
        self.ended = Some(status);
        true
    }

    /// QEMU's exit status once it stopped.
    pub fn exit_status(&self) -> Option<&str> {
        self.ended.as_deref()
    }

    /// Wait until `needle` has been printed after byte offset `from`; return the offset just after it.
    pub fn expect_from(&mut self, from: usize, needle: &str, timeout: Duration) -> Result<usize, VmError> {
        self.expect_any_from(from, &[needle], timeout).map(|(_, at)| at)
    }

    /// Wait until one of `needles` has been printed after byte offset
    /// `from`; return which one (its index) and the offset just after it.
    pub fn expect_any_from(
        &mut self,
        from: usize,
        needles: &[&str],
        timeout: Duration,
    ) -> Result<(usize, usize), VmError> {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.transcript();
            let rest = t.get(from..).unwrap_or("");
            let first = needles.iter().enumerate().filter_map(|(k, n)| rest.find(n).map(|i| (i, k, n.len()))).min();
            if let Some((i, k, len)) = first {
                return Ok((k, from + i + len));
            }
            if self.stopped() {
                // What it printed last, before it stopped, may still be in the pipe.
                std::thread::sleep(Duration::from_millis(200));
                let t = self.transcript();
                let rest = t.get(from..).unwrap_or("");
                if let Some((i, k, len)) =
                    needles.iter().enumerate().filter_map(|(k, n)| rest.find(n).map(|i| (i, k, n.len()))).min()
                {
                    return Ok((k, from + i + len));
                }
                return Err(VmError::NoResult {
                    name: self.name.clone(),
                    status: self.ended.clone().unwrap_or_default(),
                    output: format!("(waiting for {needles:?})"),
                    tail: tail(&t, 40),
                });
            }
            if Instant::now() > deadline {
                return Err(VmError::Timeout {
                    name: format!("{} (waiting for {needles:?})", self.name),
                    secs: timeout.as_secs(),
                    tail: tail(&t, 40),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until `needle` appears anywhere in the transcript.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> Result<usize, VmError> {
        self.expect_from(0, needle, timeout)
    }

    /// Type raw bytes on the serial console (keys such as `\x1b[B`, down).
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), VmError> {
        let stdin = self
            .process
            .as_mut()
            .and_then(|p| p.stdin())
            .ok_or_else(|| VmError::Build(format!("the console of `{}` is closed", self.name)))?;
        stdin.write_all(bytes).map_err(io("cannot write to the serial console"))?;
        stdin.flush().map_err(io("cannot write to the serial console"))
    }

    /// Type a line on the serial console.
    pub fn send_line(&mut self, line: &str) -> Result<(), VmError> {
        self.send(format!("{line}\n").as_bytes())
    }

    /// Run a shell command on the console and return what it printed, using
    /// unique markers so the echo of the command line is not mistaken for output.
    pub fn run(&mut self, command: &str, timeout: Duration) -> Result<String, VmError> {
        let id = self.started.elapsed().as_nanos();
        let start = self.transcript().len();
        // The markers are assembled by the shell, so the echoed command line does not contain them.
        self.send_line(&format!("echo BEGIN''{id}; {command}; echo END''{id}=$?"))?;
        let begin = self.expect_from(start, &format!("BEGIN{id}\n"), timeout)?;
        let end = self.expect_from(begin, &format!("END{id}="), timeout)?;
        let t = self.transcript();
        Ok(t[begin..end - format!("END{id}=").len()].to_string())
    }

    /// Wait for the machine to power off by itself.
    pub fn wait_poweroff(&mut self, timeout: Duration) -> Result<(), VmError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.stopped() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(VmError::Timeout {
            name: format!("{} (waiting for power-off)", self.name),
            secs: timeout.as_secs(),
            tail: tail(&self.transcript(), 30),
        })
    }

    /// Stop the machine now (pulling the plug) and return its transcript.
    pub fn stop(mut self) -> String {
        if let Some(p) = self.process.take() {
            let _ = p.kill();
        }
        self.transcript()
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(p) = self.process.take() {
            let _ = p.kill();
        }
        if let Some(v) = &self.vars {
            let _ = std::fs::remove_file(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(c: &Cmd) -> Vec<String> {
        c.arguments().iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn isolated_network_and_read_only_disk_are_on_the_command_line() {
        let mut b = Boot::new("drill", Firmware::Bios);
        b.restrict_net = true;
        b.media = vec![
            Media::Cdrom("/m/rescue.iso".into()),
            Media::Disk { image: "/m/backup.img".into(), serial: "backup".into(), read_only: true },
        ];
        let a = args(&qemu_command(&b, None).expect("command")).join(" ");
        assert!(a.contains("-accel tcg -smp 2"), "{a}");
        assert!(a.contains("user,model=virtio-net-pci,restrict=on"), "{a}");
        assert!(a.contains("file=/m/backup.img,format=raw,if=none,id=m1,cache=unsafe,readonly=on"), "{a}");
        assert!(a.contains("ide-cd,drive=m0,bootindex=1"), "{a}");
    }

    #[test]
    fn a_network_boot_puts_the_card_first_with_its_mac_and_qemus_tftp() {
        let mut b = Boot::new("farm", Firmware::Bios);
        b.restrict_net = true;
        b.guest_forwards = vec![("10.0.2.100:80".into(), 8123)];
        b.guest_commands = vec![("10.0.2.101:80".into(), "busybox nc 127.0.0.1 8124".into())];
        b.tftp = Some(("/w/tftp".into(), "boot.ipxe".into()));
        b.mac = Some("52:54:00:fa:00:01".into());
        let a = args(&qemu_command(&b, None).expect("command")).join(" ");
        assert!(
            a.contains(
                "-netdev user,id=net0,restrict=on,guestfwd=tcp:10.0.2.100:80-tcp:127.0.0.1:8123,guestfwd=tcp:10.0.2.101:80-cmd:busybox nc 127.0.0.1 8124,tftp=/w/tftp,bootfile=boot.ipxe"
            ),
            "{a}"
        );
        assert!(a.contains("-device virtio-net-pci,netdev=net0,mac=52:54:00:fa:00:01,bootindex=0"), "{a}");
        assert!(!a.contains("-nic"), "{a}");
    }

    #[test]
    fn kvm_when_chosen_and_no_nic_when_not_asked() {
        let mut b = Boot::new("x", Firmware::Bios);
        b.accel = Accel::Kvm;
        b.nic = false;
        let a = args(&qemu_command(&b, None).expect("command")).join(" ");
        assert!(a.starts_with("-accel kvm"), "{a}");
        assert!(!a.contains("-nic"), "{a}");
    }
}
