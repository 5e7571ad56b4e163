//! Checking a backup that [`crate::find`] found: every volume and checksum
//! (`verify`), or a live tree against it (`compare`).

use crate::find::{find, Find, Found};
use crate::{Error, Feedback};
use lifeboat_archive::compare::Difference;
use lifeboat_archive::restore::VerifyReport;
use lifeboat_runner::Runner;
use std::path::Path;

/// Find the backup and read every volume of it, checking every checksum.
pub fn verify(f: &Find, r: &dyn Runner, feedback: &mut dyn Feedback) -> Result<(Found, VerifyReport), Error> {
    let found = find(f, r, feedback)?;
    let report = lifeboat_archive::restore::verify(&found.backup);
    Ok((found, report))
}

/// Find the backup and compare the live tree at `root` with it: what was added, removed and changed.
pub fn compare(
    f: &Find,
    root: &Path,
    r: &dyn Runner,
    feedback: &mut dyn Feedback,
) -> Result<(Found, Vec<Difference>), Error> {
    let found = find(f, r, feedback)?;
    let diffs = lifeboat_archive::compare::compare(&found.backup, root);
    Ok((found, diffs))
}
