//! A clone's identity in the restored tree: the files rewritten by
//! [`crate::identity::apply`], and new SSH host keys made by `ssh-keygen`.

use super::Exec;
use crate::identity::{self, Identity};
use crate::RecoveryError;
use lifeboat_runner::Cmd;
use std::path::Path;

/// Where the kernel hands out random UUIDs.
const RANDOM_UUID: &str = "/proc/sys/kernel/random/uuid";

/// A new machine-id: 32 random hex digits, as systemd writes it.
fn new_machine_id() -> Result<String, RecoveryError> {
    let u = std::fs::read_to_string(RANDOM_UUID).map_err(|e| RecoveryError::Io(RANDOM_UUID.into(), e))?;
    let id: String = u.trim().chars().filter(char::is_ascii_hexdigit).collect();
    if id.len() != 32 {
        return Err(RecoveryError::Unsupported(format!("{RANDOM_UUID} gave `{}`, not a UUID", u.trim())));
    }
    Ok(id.to_ascii_lowercase())
}

/// Whether `program` is found on this system's PATH.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

impl Exec<'_> {
    /// Give the restored system the clone's identity.
    pub(super) fn identity(&mut self, id: &Identity) -> Result<bool, RecoveryError> {
        let root = self.o.root.clone();
        let done = identity::apply(&root, id, &new_machine_id()?)?;
        for f in &done.changed {
            log::info!("clone: changed /{f}");
        }
        self.report.warnings.extend(done.warnings);
        // Also when the backup left the keys out: sshd must not start without any.
        if done.ssh_keys_removed || root.join("etc/ssh/sshd_config").is_file() {
            self.ssh_host_keys(&root)?;
        }
        Ok(false)
    }

    /// New SSH host keys of every default type: with the rescue system's
    /// ssh-keygen, else with the restored system's own (chroot), else a
    /// warning to make them at first boot.
    fn ssh_host_keys(&mut self, root: &Path) -> Result<(), RecoveryError> {
        // ssh-keygen -f ROOT follows links: a linked etc or etc/ssh could lead it outside the restored system.
        let linked = ["etc", "etc/ssh"]
            .iter()
            .find(|d| std::fs::symlink_metadata(root.join(d)).map(|m| m.file_type().is_symlink()).unwrap_or(false));
        if let Some(d) = linked {
            self.report.warnings.push(format!(
                "clone: /{d} in the restored system is a symbolic link: no SSH host keys were made there; run `ssh-keygen -A` on the clone before sshd starts"
            ));
            return Ok(());
        }
        if on_path("ssh-keygen") {
            self.run(&Cmd::new("ssh-keygen").arg("-A").arg("-f").arg(root))?;
        } else if root.join("usr/bin/ssh-keygen").is_file() {
            self.run(&Cmd::new("chroot").arg(root).args(["ssh-keygen", "-A"]))?;
        } else {
            self.report.warnings.push(
                "clone: the old SSH host keys were removed and no ssh-keygen was found to make new ones: run `ssh-keygen -A` on the clone before sshd starts".into(),
            );
        }
        Ok(())
    }
}
