//! What puts the next tape of a backup into the drive: a changer driven
//! with `mtx` ([`ChangerLoader`]), or a person asked at the terminal
//! ([`PromptLoader`]). Unattended without a changer there is no loader, and
//! a backup or restore that needs another tape stops naming it.
//!
//! Both check the tape they put in before they answer: to write, a blank
//! tape (or any, when overwriting is allowed); to read, the tape whose label
//! is the one wanted. The caller checks again (a loader is a helper, not
//! the last word).

use super::{read_first, Address, Drive, DriveStatus, Found, Loader};
use lifeboat_runner::{Cmd, Runner};
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::io::{BufRead, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The most elements (drives, slots) read from one `mtx status` (a bound on hostile output).
const MAX_ELEMENTS: usize = 10_000;
/// The longest volume tag kept (SCSI tags are 32 bytes; more is not a tag).
const MAX_TAG: usize = 64;
/// How long a loaded tape may take to come online (a real robot and drive take a minute or two).
const READY_WAIT: Duration = Duration::from_secs(180);

/// A tape in a changer's drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InDrive {
    /// The slot it came from (None: mtx does not know, "Unknown Storage Element").
    pub from_slot: Option<u32>,
    /// Its volume tag (barcode), when the changer reads them.
    pub tag: Option<String>,
}

/// One drive of a changer (`Data Transfer Element N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangerDrive {
    /// The drive's number for `mtx load SLOT DRIVE`.
    pub number: u32,
    /// The tape in it; None: empty.
    pub tape: Option<InDrive>,
}

/// One storage slot of a changer (`Storage Element N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The slot's number for `mtx load SLOT`.
    pub number: u32,
    /// A tape is in it.
    pub full: bool,
    /// The tape's volume tag, when the changer reads them.
    pub tag: Option<String>,
    /// A mail slot (`IMPORT/EXPORT`): tapes pass through it, lifeboat does not load from it.
    pub import_export: bool,
}

/// What `mtx -f DEV status` says about a changer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangerStatus {
    /// Its drives.
    pub drives: Vec<ChangerDrive>,
    /// Its slots, in the order mtx lists them.
    pub slots: Vec<Slot>,
}

/// The number at the start of `s` (`"3 IMPORT/EXPORT"` → 3).
fn leading_number(s: &str) -> Option<u32> {
    let digits: String = s.trim_start().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The text after `VolumeTag` (`:VolumeTag = LB0001` or `:VolumeTag=LB0001`), up to the next field.
fn volume_tag(s: &str) -> Option<String> {
    let i = s.find(":VolumeTag")?;
    let rest = s[i + ":VolumeTag".len()..].trim_start().strip_prefix('=')?;
    let tag = rest.split(':').next().unwrap_or_default().trim();
    let ok = !tag.is_empty() && tag.len() <= MAX_TAG && tag.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    ok.then(|| tag.to_string())
}

impl ChangerStatus {
    /// Read mtx's `status` text. Lines it does not know are skipped; nothing in it panics.
    pub fn parse(text: &str) -> ChangerStatus {
        let mut st = ChangerStatus::default();
        for line in text.lines() {
            if st.drives.len() + st.slots.len() >= MAX_ELEMENTS {
                break;
            }
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("Data Transfer Element ") {
                let Some((head, state)) = rest.split_once(':') else { continue };
                let Some(number) = leading_number(head) else { continue };
                let tape = if state.starts_with("Full") {
                    let from_slot = state
                        .find("(Storage Element ")
                        .and_then(|i| leading_number(&state[i + "(Storage Element ".len()..]));
                    Some(InDrive { from_slot, tag: volume_tag(state) })
                } else if state.starts_with("Empty") {
                    None
                } else {
                    continue;
                };
                st.drives.push(ChangerDrive { number, tape });
            } else if let Some(rest) = line.strip_prefix("Storage Element ") {
                let Some((head, state)) = rest.split_once(':') else { continue };
                let Some(number) = leading_number(head) else { continue };
                let full = if state.starts_with("Full") {
                    true
                } else if state.starts_with("Empty") {
                    false
                } else {
                    continue;
                };
                let tag = if full { volume_tag(state) } else { None };
                st.slots.push(Slot { number, full, tag, import_export: head.contains("IMPORT/EXPORT") });
            }
        }
        st
    }

    /// Drive `number`.
    pub fn drive(&self, number: u32) -> Option<&ChangerDrive> {
        self.drives.iter().find(|d| d.number == number)
    }
}

/// Whether the tape in `drive` is what `want` asks for: to write, blank (or
/// anything when `overwrite`); to read, the tape labelled `want`. Err: what
/// the tape is instead, for a message.
fn check_tape(drive: &dyn Drive, want: &str, writing: bool, overwrite: bool, block: u64) -> Result<(), String> {
    if writing && overwrite {
        return Ok(());
    }
    let found = read_first(drive, block).map_err(|e| format!("does not read ({e})"))?;
    match (found, writing) {
        (Found::Blank, true) => Ok(()),
        (Found::Lifeboat(l), false) if l.name() == want => Ok(()),
        (Found::Lifeboat(l), _) => Err(format!("holds {}", l.name())),
        (Found::Foreign, _) => Err("holds data that is not a lifeboat backup".into()),
        (Found::Blank, false) => Err("is blank".into()),
    }
}

/// Poll `mt status` until a tape is online in `drive` (a changer's load returns before the drive is ready).
fn wait_ready(drive: &dyn Drive, limit: Duration) -> std::io::Result<()> {
    let start = std::time::Instant::now();
    loop {
        let status = drive.status().map(|t| DriveStatus::parse(&t));
        if status.as_ref().is_ok_and(|s| s.online) {
            return Ok(());
        }
        if start.elapsed() >= limit {
            return Err(std::io::Error::other(format!(
                "{}: no tape came online within {} s of loading it ({})",
                drive.url(),
                limit.as_secs(),
                status.map(|_| "mt status says not ONLINE".to_string()).unwrap_or_else(|e| e.to_string())
            )));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// What a changer loader remembers within one run.
#[derive(Debug, Default)]
struct Used {
    /// Slots whose tapes hold this backup already (not to be written again).
    written: BTreeSet<u32>,
    /// The slot of the tape loaded last.
    last: Option<u32>,
}

/// A changer driven with `mtx -f CHANGER` (on the drive's machine, over the
/// same ssh for a remote drive): unloads the drive to its slot and loads
/// the next tape, searching slots for a blank one to write or the labelled
/// one to read.
pub struct ChangerLoader {
    /// Where mtx runs (the drive's host) and the changer device.
    address: Address,
    drive: Arc<dyn Drive>,
    runner: Arc<dyn Runner>,
    overwrite: bool,
    block: u64,
    /// The changer's drive number that is `drive` (0 in a one-drive library).
    number: u32,
    used: Mutex<Used>,
    ready_wait: Duration,
}

impl Debug for ChangerLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangerLoader").field("changer", &self.address).finish_non_exhaustive()
    }
}

impl ChangerLoader {
    /// The changer `changer` (`/dev/sgN`) on the machine of `drive_address`, loading drive 0 of
    /// it, which is `drive`; mtx runs through `runner`.
    pub fn new(
        drive_address: &Address,
        changer: &str,
        drive: Arc<dyn Drive>,
        runner: Arc<dyn Runner>,
        overwrite: bool,
        block: u64,
    ) -> Result<ChangerLoader, String> {
        if !super::plain_device(changer) {
            return Err(format!(
                "backup.tape.changer = {changer:?}: give the changer's device as a plain absolute path such as /dev/sg3"
            ));
        }
        Ok(ChangerLoader {
            address: Address { host: drive_address.host.clone(), device: changer.to_string() },
            drive,
            runner,
            overwrite,
            block,
            number: 0,
            used: Mutex::new(Used::default()),
            ready_wait: READY_WAIT,
        })
    }

    /// How long a loaded tape may take to come online (tests shorten it).
    pub fn with_ready_wait(mut self, limit: Duration) -> ChangerLoader {
        self.ready_wait = limit;
        self
    }

    fn name(&self) -> String {
        match &self.address.host {
            Some(h) => format!("changer {} on {h}", self.address.device),
            None => format!("changer {}", self.address.device),
        }
    }

    fn mtx(&self, args: &[String]) -> Cmd {
        let mut all = vec!["-f".to_string(), self.address.device.clone()];
        all.extend(args.iter().cloned());
        self.address.command("mtx", &all)
    }

    /// `mtx status`, read.
    pub fn status(&self) -> std::io::Result<ChangerStatus> {
        let out = self
            .runner
            .probe(&self.mtx(&["status".into()]))
            .map_err(|e| std::io::Error::other(format!("{}: mtx status failed: {e}", self.name())))?;
        Ok(ChangerStatus::parse(&out.text()))
    }

    fn move_tape(&self, op: &str, slot: u32) -> std::io::Result<()> {
        if op == "unload" {
            // Many libraries take a tape from a drive only once the drive has ejected it.
            if let Err(e) = self.drive.eject() {
                log::info!("{}: the drive did not eject its tape before the unload ({e})", self.drive.url());
            }
        }
        let cmd = self.mtx(&[op.into(), slot.to_string(), self.number.to_string()]);
        self.runner
            .apply(&cmd)
            .map(|_| ())
            .map_err(|e| std::io::Error::other(format!("{}: mtx {op} {slot} failed: {e}", self.name())))
    }

    /// Slots to try, full and not a mail slot, in order starting after `after` (wrapping), `first` first.
    fn candidates(st: &ChangerStatus, after: Option<u32>, first: Option<u32>) -> Vec<u32> {
        let mut full: Vec<u32> = st.slots.iter().filter(|s| s.full && !s.import_export).map(|s| s.number).collect();
        full.sort_unstable();
        full.dedup();
        let split = after.map(|a| full.partition_point(|&n| n <= a)).unwrap_or(0);
        full.rotate_left(split);
        if let Some(f) = first {
            if let Some(i) = full.iter().position(|&n| n == f) {
                let n = full.remove(i);
                full.insert(0, n);
            }
        }
        full
    }
}

/// Which tape of the same backup `want` (`HOST/BACKUP tape K`) is, when `label` is of that backup.
fn tape_number_of(want: &str, label: &super::Label) -> Option<u32> {
    let (backup, k) = want.rsplit_once(" tape ")?;
    (backup == format!("{}/{}", label.host, label.backup)).then(|| k.parse().ok()).flatten()
}

impl Loader for ChangerLoader {
    fn load(&self, want: &str, writing: bool) -> std::io::Result<()> {
        let mut used = self.used.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        let st = self.status()?;
        let Some(d) = st.drive(self.number) else {
            return Err(std::io::Error::other(format!(
                "{}: mtx status lists no drive {} (is backup.tape.changer the changer of this drive?)",
                self.name(),
                self.number
            )));
        };
        let mut skipped: Vec<String> = Vec::new();
        let mut after = used.last;
        let mut guess = None;
        if let Some(t) = &d.tape {
            let home = t.from_slot.or_else(|| st.slots.iter().find(|s| !s.full && !s.import_export).map(|s| s.number));
            // The tape in the drive may be the one wanted (reading); else it goes back to its slot.
            if !writing {
                if let Ok(Found::Lifeboat(l)) = read_first(self.drive.as_ref(), self.block) {
                    if l.name() == want {
                        return Ok(());
                    }
                    // Tape K of a backup is most likely K - J slots from tape J.
                    guess = tape_number_of(want, &l)
                        .zip(home)
                        .and_then(|(k, h)| (i64::from(h) + i64::from(k) - i64::from(l.tape)).try_into().ok());
                    skipped.push(format!("the drive holds {}", l.name()));
                }
            }
            let Some(home) = home else {
                return Err(std::io::Error::other(format!(
                    "{}: the tape in the drive came from no known slot and no slot is empty to put it in",
                    self.name()
                )));
            };
            self.move_tape("unload", home)?;
            if writing {
                used.written.insert(home);
            }
            after = Some(home);
        }
        for slot in Self::candidates(&st, after, guess) {
            if writing && used.written.contains(&slot) {
                continue;
            }
            self.move_tape("load", slot)?;
            wait_ready(self.drive.as_ref(), self.ready_wait)?;
            match check_tape(self.drive.as_ref(), want, writing, self.overwrite, self.block) {
                Ok(()) => {
                    if writing {
                        used.written.insert(slot);
                    }
                    used.last = Some(slot);
                    log::info!("{}: slot {slot} loaded for {want}", self.name());
                    return Ok(());
                }
                Err(why) => {
                    skipped.push(format!("slot {slot} {why}"));
                    self.move_tape("unload", slot)?;
                }
            }
        }
        let what = if writing { format!("a blank tape for {want}") } else { format!("tape {want}") };
        let fix = if writing {
            "put a blank tape into a slot, or give --overwrite-tape to write over the tapes there"
        } else {
            "put the tape into a slot"
        };
        let looked = if skipped.is_empty() { "no full slot to try".to_string() } else { skipped.join("; ") };
        Err(std::io::Error::other(format!("{}: no slot holds {what} ({looked}): {fix}", self.name())))
    }
}

/// A person at the terminal: asked to insert the tape and press Enter; the
/// tape is checked and, when it is not the one asked for, asked for again.
pub struct PromptLoader {
    drive: Arc<dyn Drive>,
    overwrite: bool,
    block: u64,
    io: Mutex<(Box<dyn BufRead + Send>, Box<dyn Write + Send>)>,
}

impl Debug for PromptLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptLoader").field("drive", &self.drive).finish_non_exhaustive()
    }
}

impl PromptLoader {
    /// Ask on `output`, read the answers from `input`.
    pub fn new(
        drive: Arc<dyn Drive>,
        overwrite: bool,
        block: u64,
        input: Box<dyn BufRead + Send>,
        output: Box<dyn Write + Send>,
    ) -> PromptLoader {
        PromptLoader { drive, overwrite, block, io: Mutex::new((input, output)) }
    }

    /// Ask on stderr, read the answers from stdin.
    pub fn terminal(drive: Arc<dyn Drive>, overwrite: bool, block: u64) -> PromptLoader {
        let input = Box::new(std::io::BufReader::new(std::io::stdin()));
        PromptLoader::new(drive, overwrite, block, input, Box::new(std::io::stderr()))
    }
}

impl Loader for PromptLoader {
    fn load(&self, want: &str, writing: bool) -> std::io::Result<()> {
        let mut io = self.io.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        let (input, output) = &mut *io;
        let url = self.drive.url();
        let kind = if writing { " (a blank tape: it is written)" } else { "" };
        loop {
            // One write: the prompt arrives whole (a script that answers it reads it so).
            output.write_all(format!("insert tape {want}{kind} into {url} and press Enter: ").as_bytes())?;
            output.flush()?;
            let mut line = String::new();
            if input.by_ref().take(4096).read_line(&mut line)? == 0 {
                return Err(std::io::Error::other(format!(
                    "no answer (end of input) when asked for {want}: load {want} into {url} and run again"
                )));
            }
            match wait_ready(self.drive.as_ref(), Duration::from_secs(30))
                .map_err(|e| e.to_string())
                .and_then(|_| check_tape(self.drive.as_ref(), want, writing, self.overwrite, self.block))
            {
                Ok(()) => return Ok(()),
                Err(why) => writeln!(output, "the tape in {url} {why}, not what is asked for")?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `mtx status` of tgt's changer in the tape VM (one drive, three slots, a tape loaded from slot 1).
    const TGT: &str = "  Storage Changer /dev/sg1:1 Drives, 3 Slots ( 0 Import/Export )
Data Transfer Element 0:Full (Storage Element 1 Loaded):VolumeTag = LB0001                          
      Storage Element 1:Empty:VolumeTag=                                
      Storage Element 2:Full :VolumeTag=LB0002                          
      Storage Element 3:Full :VolumeTag=LB0003                          
";

    /// A larger library: two drives, a mail slot, tapes without barcodes, an unknown source.
    const LIBRARY: &str = "  Storage Changer /dev/sg4:2 Drives, 5 Slots ( 1 Import/Export )
Data Transfer Element 0:Empty
Data Transfer Element 1:Full (Unknown Storage Element Loaded)
      Storage Element 1:Full 
      Storage Element 2:Empty
      Storage Element 3:Full :VolumeTag=A00003L6:AlternateVolumeTag=X
      Storage Element 4:Full :VolumeTag=A00004L6
      Storage Element 5 IMPORT/EXPORT:Full :VolumeTag=MAIL01
";

    #[test]
    fn mtx_status_tells_drives_slots_and_volume_tags() {
        let st = ChangerStatus::parse(TGT);
        assert_eq!(
            st.drives,
            vec![ChangerDrive { number: 0, tape: Some(InDrive { from_slot: Some(1), tag: Some("LB0001".into()) }) }]
        );
        assert_eq!(st.slots.len(), 3);
        assert_eq!(st.slots[0], Slot { number: 1, full: false, tag: None, import_export: false });
        assert_eq!(st.slots[2], Slot { number: 3, full: true, tag: Some("LB0003".into()), import_export: false });

        let st = ChangerStatus::parse(LIBRARY);
        assert_eq!(st.drive(0).unwrap().tape, None);
        assert_eq!(st.drive(1).unwrap().tape, Some(InDrive { from_slot: None, tag: None }));
        assert_eq!(st.slots[0].tag, None);
        assert!(st.slots[0].full && !st.slots[1].full);
        assert_eq!(st.slots[2].tag.as_deref(), Some("A00003L6"));
        assert!(st.slots[4].import_export && st.slots[4].number == 5);
        // Mail slots are not loaded from; the search starts after the last slot used and wraps.
        assert_eq!(ChangerLoader::candidates(&st, None, None), vec![1, 3, 4]);
        assert_eq!(ChangerLoader::candidates(&st, Some(3), None), vec![4, 1, 3]);
        assert_eq!(ChangerLoader::candidates(&st, Some(3), Some(1)), vec![1, 4, 3]);
    }

    #[test]
    fn odd_and_hostile_mtx_output_never_panics() {
        for text in [
            "",
            "garbage\n\0\u{fffd}",
            "Data Transfer Element :Full",
            "Data Transfer Element 99999999999999999999:Empty",
            "Data Transfer Element 0:Full (Storage Element ",
            "Data Transfer Element 0:Full (Storage Element x Loaded):VolumeTag",
            "Data Transfer Element 0:Full :VolumeTag = ",
            "Storage Element 1:Full :VolumeTag=\u{7}\u{1b}[2J",
            "Storage Element 1:Sideways",
            "Storage Element -1:Full",
            "Storage Element 1",
        ] {
            let st = ChangerStatus::parse(text);
            assert!(st.slots.iter().all(|s| s.tag.as_deref().is_none_or(|t| t.chars().all(|c| !c.is_control()))));
        }
        assert_eq!(ChangerStatus::parse("Storage Element 1:Full :VolumeTag=\u{1b}[2J").slots[0].tag, None);
        let long = format!("Storage Element 1:Full :VolumeTag={}", "A".repeat(10_000));
        assert_eq!(ChangerStatus::parse(&long).slots[0].tag, None);
        let many = "Storage Element 1:Full\n".repeat(50_000);
        assert!(ChangerStatus::parse(&many).slots.len() <= MAX_ELEMENTS);
    }
}
