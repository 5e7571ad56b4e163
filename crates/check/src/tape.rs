//! The checks of a `tape://` backup target: the drive is there, `mt status`
//! answers, a tape is loaded and writable, and the drive's block size fits
//! `backup.tape.block_size`. Each failure says what to do.

use crate::{fail, pass, warning, Check};
use lifeboat_archive::target::tape::{Address, DriveStatus};
use lifeboat_config::Config;
use lifeboat_runner::{package_hint, Runner};

const PRESENT: &str = "Tape drive present";
const ANSWERS: &str = "Tape drive answers (mt status)";
const WRITABLE: &str = "Tape writable (not write-protected)";
const BLOCK: &str = "Tape block size";

/// The four tape checks of `url` (a `tape://` URL).
pub fn tape_checks(cfg: &Config, url: &str, r: &dyn Runner) -> Vec<Check> {
    let not = |what: &str| fail(what, "cannot be checked: the drive does not answer", format!("see \"{ANSWERS}\""));
    let address = match Address::parse(url) {
        Ok(a) => a,
        Err(e) => {
            return vec![
                fail(PRESENT, e.to_string(), "set backup.target to tape:///dev/nstN or tape://[user@]host/dev/nstN"),
                not(ANSWERS),
                not(WRITABLE),
                not(BLOCK),
            ]
        }
    };
    let dev = &address.device;
    let mut out = Vec::new();
    match &address.host {
        None if !r.has("mt") => {
            out.push(fail(PRESENT, "the program mt is not installed", package_hint("mt")));
            return vec![out.remove(0), not(ANSWERS), not(WRITABLE), not(BLOCK)];
        }
        None => match std::fs::metadata(dev) {
            Ok(m) if std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type()) => {
                out.push(pass(PRESENT, format!("{dev} is a character device")))
            }
            Ok(_) => out.push(fail(PRESENT, format!("{dev} is not a character device"), "give the drive's /dev/nstN")),
            Err(e) => out.push(fail(
                PRESENT,
                format!("{dev}: {e}"),
                "load the st driver (modprobe st), check the drive is attached (lsscsi, dmesg), or give its /dev/nstN",
            )),
        },
        Some(h) => out.push(pass(PRESENT, format!("{dev} on {h}, reached with ssh (checked by mt status)"))),
    }
    let status = match r.probe(&address.mt(&["status"])) {
        Ok(o) => o.text(),
        Err(e) => {
            let fix = match &address.host {
                None => format!("check that {dev} is the drive and no other program holds it open"),
                Some(h) => format!(
                    "check that `ssh {h} mt -f {dev} status` works without a question (mt-st installed there, the login may open the drive)"
                ),
            };
            out.extend([fail(ANSWERS, e.reason(), fix), not(WRITABLE), not(BLOCK)]);
            return out;
        }
    };
    let s = DriveStatus::parse(&status);
    if s.online {
        out.push(pass(ANSWERS, "a tape is loaded and the drive is online"));
    } else {
        out.push(fail(
            ANSWERS,
            "the drive answers, but no tape is loaded (not ONLINE)",
            "load a tape (mtx load SLOT, or by hand)",
        ));
    }
    out.push(if s.write_protected {
        fail(
            WRITABLE,
            "the tape is write-protected (WR_PROT)",
            "slide the tape's write-protect tab off, or load another tape",
        )
    } else if s.online {
        pass(WRITABLE, "not write-protected")
    } else {
        not(WRITABLE)
    });
    let want = cfg.backup.tape.block_size.0;
    out.push(match s.block_size {
        Some(0) => {
            pass(BLOCK, format!("variable: blocks of {want} bytes (backup.tape.block_size) are written as they are"))
        }
        Some(n) if want.is_multiple_of(n) => {
            pass(BLOCK, format!("fixed at {n} bytes; backup.tape.block_size {want} is a multiple"))
        }
        Some(n) => fail(
            BLOCK,
            format!("the drive's block size is fixed at {n} bytes; backup.tape.block_size {want} is not a multiple"),
            format!("mt -f {dev} setblk 0 (variable blocks), or set backup.tape.block_size to a multiple of {n}"),
        ),
        None => {
            warning(BLOCK, "mt status does not say the block size", format!("mt -f {dev} setblk 0 (variable blocks)"))
        }
    });
    out
}
