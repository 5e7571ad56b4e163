//! Checking a backup that [`crate::find`] found: every volume and checksum
//! (`verify`), or a live tree against it (`compare`).

use crate::find::{find_streamed, locate, readable, Find, Found};
use crate::keys;
use crate::{Error, Feedback};
use lifeboat_archive::compare::Difference;
use lifeboat_archive::restore::VerifyReport;
use lifeboat_archive::target::encrypt;
use lifeboat_archive::trust::Verdict;
use lifeboat_runner::Runner;
use std::path::Path;

/// What `verify` checked.
#[derive(Debug)]
pub struct Verified {
    /// Where the backup is.
    pub location: String,
    /// Whether its catalog is authenticated.
    pub verdict: Verdict,
    /// How many volumes it has.
    pub volumes: usize,
    /// How many entries its manifest lists (None: an encrypted backup checked without its identity).
    pub entries: Option<usize>,
    /// What was found.
    pub report: VerifyReport,
    /// The backup an incremental one was made against.
    pub parent: Option<String>,
    /// Its chain as resolved, nearest parent first (empty: a full backup, or not resolved without the identity).
    pub chain: Vec<String>,
}

/// Find the backup and read every volume of it, checking every checksum.
/// An encrypted backup without an identity is checked as stored: the
/// signature, and every stored object against its size and BLAKE3 (damage
/// and tampering are found; contents are not read).
pub fn verify(f: &Find, r: &dyn Runner, feedback: &mut dyn Feedback) -> Result<Verified, Error> {
    let raw = locate(f, r, feedback)?;
    if f.identity.is_none() && encrypt::is_encrypted(raw.as_ref()) {
        let (catalog, verdict) = keys::checked(&f.trust, &raw, feedback, lifeboat_archive::trust::verified_catalog)?;
        let report = encrypt::verify_stored(raw.as_ref(), &catalog);
        return Ok(Verified {
            location: raw.location(),
            verdict,
            volumes: catalog.volumes.len(),
            entries: None,
            report,
            parent: catalog.parent.as_ref().map(|p| p.name.clone()),
            chain: Vec::new(),
        });
    }
    let (backup, verdict) = keys::open_streamed(&f.trust, &readable(f, raw)?, feedback)?;
    // An increment: its parents are checked (present, signed, the ones it was made against).
    let backup = crate::chain::resolve(f, backup, r, feedback)?;
    // A tape: every volume hashed and every entry checked in one forward pass.
    let report = match backup.objects().sequential() {
        Some(volumes) => lifeboat_archive::restore::verify_sequential(&backup, volumes),
        None => lifeboat_archive::restore::verify(&backup),
    };
    Ok(Verified {
        location: backup.location(),
        verdict,
        volumes: backup.catalog.volumes.len(),
        entries: Some(backup.entry_count()),
        report,
        parent: backup.catalog.parent.as_ref().map(|p| p.name.clone()),
        chain: backup.ancestor_names(),
    })
}

/// Find the backup and compare the live tree at `root` with it: what was added, removed and changed.
pub fn compare(
    f: &Find,
    root: &Path,
    r: &dyn Runner,
    feedback: &mut dyn Feedback,
) -> Result<(Found, Vec<Difference>), Error> {
    let found = find_streamed(f, r, feedback)?;
    let diffs = lifeboat_archive::compare::compare(&found.backup, root);
    Ok((found, diffs))
}
