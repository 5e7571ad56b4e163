//! How the library's notices, progress and questions look on a terminal:
//! notices on stderr (so stdout stays the command's report), a progress
//! line when stderr is a terminal, the next medium of a set asked for on stdin.

use lifeboat_backup::job::Made;
use lifeboat_backup::keys::NewKey;
use lifeboat_backup::select::LeftOut;
use lifeboat_backup::{Feedback, MediumAnswer, MissingMedium, Notice, Progress};
use lifeboat_config::human;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// `-q` for the whole run: notices go to the run log only, no progress line.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Make every [`Terminal`] quiet (`-q`) or not.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether `-q` was given: print nothing on success.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// The terminal's [`Feedback`].
#[derive(Debug)]
pub struct Terminal {
    /// Show a progress line (stderr is a terminal and no JSON was asked for).
    progress: bool,
    /// When the progress line was last written.
    last: Instant,
    /// What to print when a backup was published (mkbackup's summary).
    on_made: Option<fn(&Made)>,
}

impl Terminal {
    /// Feedback for a command; `json` output and `-q` turn the progress line off.
    pub fn new(json: bool) -> Terminal {
        Terminal { progress: std::io::stderr().is_terminal() && !json && !quiet(), last: Instant::now(), on_made: None }
    }

    /// The same, printing each published backup with `print`.
    pub fn on_made(mut self, print: fn(&Made)) -> Terminal {
        self.on_made = Some(print);
        self
    }
}

impl Feedback for Terminal {
    fn notice(&mut self, notice: Notice) {
        if quiet() {
            // -q: said in the run log (WORK_DIR/log), not on the terminal.
            log::warn!("{notice:?}");
            return;
        }
        match notice {
            Notice::LeftOut(LeftOut::ExcludedDisk { mountpoint, device, why }) => {
                eprintln!("not backed up: {mountpoint} ({device} is excluded from the layout: {why})")
            }
            Notice::LeftOut(LeftOut::Excluded { path }) => {
                eprintln!("not backed up: {} (the filesystem mounted there is excluded)", path.display())
            }
            Notice::Interrupted { host, url, locations, bytes } => {
                eprintln!(
                    "lifeboat: note: {} interrupted backup(s) of {host} (dead runs, {}) are on the target: {}",
                    locations.len(),
                    human(bytes),
                    locations.join(" ")
                );
                eprintln!("lifeboat: note: remove them with: lifeboat backup prune --partial --target {url}");
            }
            Notice::KeyCreated(key) => announce(&key),
            Notice::Unauthenticated { at, why } => eprintln!(
                "lifeboat: WARNING: the backup {at} is NOT authenticated ({why}); using it because of --insecure-unsigned: it may not be a backup this host made"
            ),
            Notice::MediumFound { k, of, label, device } => println!("medium {k} of {of} ({label}) found in {device}"),
            Notice::MediumChecked { what, device, bytes, seconds } => println!(
                "{what} in {device} passed its check: {} in {seconds:.1} s ({:.0} MB/s)",
                human(bytes),
                bytes as f64 / 1e6 / seconds.max(1e-6)
            ),
            Notice::MediumUnchecked { device } => {
                eprintln!("lifeboat: note: {device} carries no embedded checksum (made by an older lifeboat): not checked")
            }
            Notice::MediumDamagedUsed { message } => eprintln!("lifeboat: WARNING: using a damaged medium: {message}"),
            Notice::MediumSkipped { k } => {
                eprintln!("going on without medium {k}: what is stored on it will be listed as not restored")
            }
            Notice::IdentityOnMedium { warning } => eprintln!("lifeboat: WARNING: {warning}"),
            Notice::CredentialsOnMedium { warning, .. } => eprintln!("lifeboat: WARNING: {warning}"),
            Notice::NoCredentialsOnMedium { url, how } => eprintln!("lifeboat: note: {url}: {how}"),
            Notice::FullBackup { why } => eprintln!("lifeboat: making a full backup: {why}"),
            Notice::SnapshotsTaken { snapshots, seconds } => {
                eprintln!("lifeboat: backing up from {} snapshot(s), taken in {seconds:.2} s:", snapshots.len());
                for s in snapshots {
                    eprintln!("  {s}");
                }
            }
            Notice::ReadLive(u) => eprintln!(
                "lifeboat: WARNING: {} is backed up live, not from a snapshot ({}): files written meanwhile may be inconsistent",
                u.mountpoint, u.why
            ),
            Notice::StaleSnapshotRemoved { what } => {
                eprintln!("lifeboat: removed {what}, left by an interrupted snapshot backup")
            }
            Notice::SnapshotLeftOver(l) => {
                eprintln!("lifeboat: WARNING: cannot remove {} ({}); remove it with: {}", l.what, l.why, l.fix)
            }
            Notice::StreamOnly { why } => eprintln!(
                "lifeboat: {why}\nlifeboat: restoring from the tar stream alone (its volumes are checked against the signed catalog)"
            ),
        }
    }

    fn progress(&mut self, p: &Progress) {
        if !self.progress || self.last.elapsed().as_millis() < 250 {
            return;
        }
        self.last = Instant::now();
        let secs = p.elapsed.as_secs_f64().max(0.001);
        let rate = p.bytes as f64 / secs;
        let eta = if p.expected > p.bytes && rate > 0.0 {
            let left = ((p.expected - p.bytes) as f64 / rate) as u64;
            format!("  ETA {}:{:02}", left / 60, left % 60)
        } else {
            String::new()
        };
        let total = if p.expected > 0 { format!(" / {}", human(p.expected)) } else { String::new() };
        eprint!("\r  {}{total}  {} files  {:.0} MB/s{eta}   ", human(p.bytes), p.files, rate / 1e6);
    }

    fn progress_end(&mut self) {
        if self.progress {
            eprintln!();
        }
    }

    fn made(&mut self, made: &Made) {
        if let Some(print) = self.on_made {
            print(made);
        }
    }

    fn medium_missing(&mut self, m: &MissingMedium) -> std::io::Result<MediumAnswer> {
        if !std::io::stdin().is_terminal() {
            return Ok(MediumAnswer::GiveUp);
        }
        eprint!(
            "Put medium {} of {} (label {}) into another drive and press Enter (or type skip to go on without it): ",
            m.k, m.of, m.label
        );
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(if line.trim() == "skip" { MediumAnswer::Skip } else { MediumAnswer::Retry })
    }

    fn medium_damaged(&mut self, message: &str) -> std::io::Result<bool> {
        if !std::io::stdin().is_terminal() {
            return Ok(false);
        }
        eprintln!("{message}");
        eprint!(
            "Recovering from a damaged medium may restore damaged files or fail half-way. Type YES to use it anyway: "
        );
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(line.trim() == "YES")
    }

    fn s3_credentials(&mut self, url: &str) -> std::io::Result<Option<(String, String)>> {
        if !std::io::stdin().is_terminal() {
            return Ok(None);
        }
        eprintln!(
            "{url}: no S3 credentials here (the rescue medium carries none unless rescue.target_credentials is set)."
        );
        eprint!("S3 access key id (empty: give up): ");
        std::io::stderr().flush()?;
        let mut id = String::new();
        std::io::stdin().lock().read_line(&mut id)?;
        let id = id.trim().to_string();
        if id.is_empty() {
            return Ok(None);
        }
        eprint!("S3 secret access key (not shown): ");
        std::io::stderr().flush()?;
        let secret = read_hidden()?;
        eprintln!();
        Ok(Some((id, secret)))
    }
}

/// A line from the terminal on stdin without echoing it.
fn read_hidden() -> std::io::Result<String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin)?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet)?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    tcsetattr(&stdin, OptionalActions::Now, &saved)?;
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Say once, when a key is made, what it is and where to keep its public half.
fn announce(key: &NewKey) {
    eprintln!(
        "lifeboat: made a new backup signing key {id}; every backup is signed with it from now on.\n\
         \x20 secret key {secret}: root-only, no password (backups run unattended), never put into a backup.\n\
         \x20 public key {pubfile}:\n{indented}\
         \x20 Keep a copy of the public key OFF this machine (with the rescue media, in the admin password store\n\
         \x20 or inventory): verifying and recovering need only the public key, and a backup target or medium\n\
         \x20 whose signature does not match it is refused. Rescue media made from now on carry it: make them\n\
         \x20 again (lifeboat mkrescue or mkbackup). Without lifeboat: minisign -Vm backup.json -p signing.pub",
        id = key.id,
        secret = key.secret_file.display(),
        pubfile = key.public_file.display(),
        indented = key.public_text.lines().map(|l| format!("      {l}\n")).collect::<String>(),
    );
    if let Some(r) = &key.retired {
        eprintln!(
            "  The secret key of the previous key was missing; its public key is kept as {}, so the backups signed with it still verify.",
            r.display()
        );
    }
}
