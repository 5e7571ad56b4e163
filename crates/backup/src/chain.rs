//! Incremental backups in backup jobs: the parent a new increment is made
//! against (the host's newest backup, when the policy or `--incremental`
//! asks for one), and the chain every reader resolves
//! ([`lifeboat_archive::chain::resolve`]) with each parent found beside
//! the increment on its target and checked like the increment itself:
//! signature, then decryption with the same identity.

use crate::find::{readable, Find, Source};
use crate::location::Location;
use crate::{keys, Error, Feedback};
use lifeboat_archive::chain::{self, Opened, ParentState};
use lifeboat_archive::read::Backup;
use lifeboat_archive::target::{self, DirObjects, Objects, Target};
use lifeboat_runner::Runner;
use std::sync::Arc;

/// Whether a backup is full or incremental.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// As `backup.full_every` says: incremental until the chain's full backup is that old.
    #[default]
    Policy,
    /// A full backup (`--full`).
    Full,
    /// An increment on the newest backup (`--incremental`), full when there is none to build on.
    Incremental,
}

/// The objects of backup `name` beside the backup `head` (of `host`), as stored.
fn sibling(
    f: &Find,
    head: &Arc<dyn Objects>,
    host: &str,
    name: &str,
    r: &dyn Runner,
) -> Result<Arc<dyn Objects>, String> {
    if let Some(dir) = head.local_dir() {
        let parent = dir.parent().ok_or_else(|| format!("{} has no parent directory", dir.display()))?;
        return Ok(Arc::new(DirObjects::new(&parent.join(name))));
    }
    let url = match &f.source {
        Source::Url(url) | Source::Location(Location::Url { url }) => url.clone(),
        _ => return Err("the backup is not on a target lifeboat can list".into()),
    };
    let t = target::open_configured(&url, r, &f.settings).map_err(|e| e.to_string())?;
    match t.backup(host, name) {
        Ok(o) => Ok(o),
        // The URL named the increment itself: its target is two levels up.
        Err(e) => {
            let head_name = chain::name_of(&head.location());
            let Some(base) = url.trim_end_matches('/').strip_suffix(&format!("/{host}/{head_name}")) else {
                return Err(e.to_string());
            };
            let t = target::open_configured(base, r, &f.settings).map_err(|e| e.to_string())?;
            t.backup(host, name).map_err(|e| e.to_string())
        }
    }
}

/// The objects of backup `at` (its name, `2026-12-01T020000.123Z`) of the
/// host whose backups `f` finds: `restore --at`.
pub fn locate_at(f: &Find, at: &str, r: &dyn Runner, feedback: &mut dyn Feedback) -> Result<Arc<dyn Objects>, Error> {
    let head = crate::find::locate(f, r, feedback)?;
    if chain::name_of(&head.location()) == at {
        return Ok(head);
    }
    let bad = |why: String| Error::Target(lifeboat_archive::ArchiveError::Target(head.location(), why));
    if at.is_empty() || at.contains('/') || at.starts_with('.') {
        return Err(bad(format!("--at {at:?} is not a backup name (such as 2026-12-01T020000.123Z)")));
    }
    let host = head
        .read(target::CATALOG, lifeboat_archive::read::MAX_CATALOG_BYTES)
        .ok()
        .and_then(|t| serde_json::from_slice::<lifeboat_archive::Catalog>(&t).ok())
        .map(|c| c.host)
        .unwrap_or_else(|| f.host.clone());
    sibling(f, &head, &host, at, r).map_err(|e| bad(format!("no backup {at} of {host} beside it: {e}")))
}

/// Open one parent: signature checked, decrypted with `f`'s identity, its whole catalog.
fn open_parent(
    f: &Find,
    head: &Arc<dyn Objects>,
    host: &str,
    name: &str,
    r: &dyn Runner,
    feedback: &mut dyn Feedback,
) -> Result<Opened, String> {
    let raw = sibling(f, head, host, name, r)?;
    let objects = readable(f, raw).map_err(|e| crate::error::chain(&e))?;
    let (stored, _) = keys::checked(&f.trust, &objects, feedback, lifeboat_archive::trust::verified_catalog)
        .map_err(|e| crate::error::chain(&e))?;
    let catalog = lifeboat_archive::read::unseal(objects.as_ref(), &stored).map_err(|e| e.to_string())?;
    Ok((objects, catalog))
}

/// Resolve an opened backup's chain (a full backup is returned as it is):
/// every reader goes through here, so restore, verify, compare and recover
/// see the state of an increment with every parent checked.
pub fn resolve(f: &Find, b: Backup, r: &dyn Runner, feedback: &mut dyn Feedback) -> Result<Backup, Error> {
    if !b.is_incremental() {
        return Ok(b);
    }
    let head = Arc::clone(b.objects());
    let host = b.catalog.host.clone();
    let name = chain::name_of(&head.location());
    Ok(chain::resolve(b, &name, &mut |p| open_parent(f, &head, &host, p, r, feedback))?)
}

/// The parent of a new backup of `host` on `t`, or None (and why, for the
/// notice) when it is a full backup: as `kind` and `full_every` decide, the
/// host's newest complete backup, opened with `f`'s trust and identity.
pub fn parent_for(
    kind: Kind,
    full_every: Option<std::time::Duration>,
    t: &dyn Target,
    f: &Find,
    host: &str,
    r: &dyn Runner,
    feedback: &mut dyn Feedback,
) -> Result<Option<ParentState>, String> {
    let policy = match kind {
        Kind::Full => return Ok(None),
        Kind::Policy => match full_every {
            None => return Ok(None),
            Some(d) => Some(d),
        },
        Kind::Incremental => None,
    };
    let newest = match t.newest(host) {
        Ok(l) => l,
        Err(_) => return Err(format!("there is no complete backup of {host} on {} to build on", t.url())),
    };
    let raw = t.backup(host, &newest.name).map_err(|e| e.to_string())?;
    if f.identity.is_none() && target::encrypt::is_encrypted(raw.as_ref()) {
        return Err(format!(
            "the newest backup {} is encrypted and backup.identity_file is not set, so its manifest cannot be read",
            newest.name
        ));
    }
    let objects = readable(f, raw).map_err(|e| crate::error::chain(&e))?;
    // Its catalog only (signature checked): the manifest is streamed into the parent's index below.
    let (stored, _) = keys::checked(&f.trust, &objects, feedback, lifeboat_archive::trust::verified_catalog)
        .map_err(|e| crate::error::chain(&e))?;
    let catalog = lifeboat_archive::read::unseal(objects.as_ref(), &stored).map_err(|e| e.to_string())?;
    let b = Backup::from_parts(Arc::clone(&objects), catalog.clone(), Vec::new()).map_err(|e| e.to_string())?;
    if let (Some(every), Some(p)) = (policy, &b.catalog.parent) {
        let old = crate::retention::time_of_name(&p.full).and_then(|t| t.elapsed().ok()).is_none_or(|age| age >= every);
        if old {
            return Err(format!("the chain's full backup {} is older than backup.full_every", p.full));
        }
    } else if let (Some(every), None) = (policy, &b.catalog.parent) {
        let old =
            crate::retention::time_of_name(&newest.name).and_then(|t| t.elapsed().ok()).is_none_or(|age| age >= every);
        if old {
            return Err(format!("the full backup {} is older than backup.full_every", newest.name));
        }
    }
    // The parent's own chain must resolve: an increment on a broken chain would be broken too.
    resolve(f, b, r, feedback).map_err(|e| crate::error::chain(&e))?;
    ParentState::read(&newest.name, objects, &catalog).map(Some)
}
