//! The lock of one host's backups on a target, so that a prune and a
//! backup never race: `HOST/.lock`, a small marker object created
//! create-only ([`Target::create_marker`]) that names its holder (what it
//! does, the machine, the pid, since when, a random token).
//!
//! A backup holds it from `begin` to the commit, a prune while it deletes.
//! It is released by removing the marker, only when it still holds our token.
//! A holder that died leaves the marker behind; it is stale, and taken over,
//! when
//! - the transport can tell that its process is gone ([`Target::marker_alive`]:
//!   a directory target keeps a `flock` on the marker for as long as it is
//!   held, released by the kernel when the process dies), or
//! - it names this machine and a pid that no longer runs, or
//! - it is older than [`STALE_LOCK`] and no upload of the host is running
//!   (over SFTP a running upload is one written to recently).
//!
//! A takeover removes only the marker it judged stale
//! ([`Target::remove_stale_marker`] compares its bytes, token included),
//! then creates its own create-only: of two runs that judged one marker
//! stale, one holds the lock, the other waits for it. The default
//! comparison and removal leave a window of one round trip (a directory
//! target: two system calls) in which a third run's marker could be moved.

use super::Target;
use crate::ArchiveError;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The marker's name inside a host's directory.
pub const LOCK: &str = ".lock";

/// A lock older than this whose host has no running upload is stale.
pub const STALE_LOCK: Duration = Duration::from_secs(6 * 3600);

/// How often a backup rewrites its lock's marker while it writes ([`TargetLock::heartbeat`]).
pub const HEARTBEAT: Duration = Duration::from_secs(5 * 60);

/// A backup's lock whose heartbeat is younger than this is alive ([`backup_alive`]).
pub const FRESH_LOCK: Duration = Duration::from_secs(30 * 60);

/// The largest marker read.
pub const MAX_MARKER: u64 = 64 << 10;

/// Who holds a lock, as its marker says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// What it does (`backup`, `prune`).
    pub purpose: String,
    /// The machine it runs on (its host name).
    pub machine: String,
    /// Its process id there.
    pub pid: u32,
    /// When it took the lock, in seconds since 1970 (UTC).
    pub since: u64,
    /// A token only this holder knows, so that it removes its own marker only.
    pub token: String,
    /// When it last said it is alive (its heartbeat, [`TargetLock::heartbeat`]), in
    /// seconds since 1970 (UTC); 0 in markers of older versions.
    #[serde(default)]
    pub seen: u64,
}

impl Holder {
    /// This process, taking a lock for `purpose`.
    fn this(purpose: &str) -> Holder {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let machine = rustix::system::uname().nodename().to_string_lossy().into_owned();
        let token = format!("{}-{}-{}", std::process::id(), now.as_nanos(), random_word());
        Holder { purpose: purpose.into(), machine, pid: std::process::id(), since: now.as_secs(), token, seen: 0 }
    }

    /// How long ago it took the lock or last said it is alive.
    fn quiet_for(&self, now: SystemTime) -> Duration {
        now.duration_since(UNIX_EPOCH + Duration::from_secs(self.since.max(self.seen))).unwrap_or_default()
    }

    /// The holder for people: `a backup (pid 4711 on web1, since 2026-12-01T10:10:10Z)`.
    pub fn describe(&self) -> String {
        let since = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(self.since));
        format!("a {} (pid {} on {}, since {since})", self.purpose, self.pid, self.machine)
    }

    /// Whether it names a process of this machine that no longer runs.
    fn dead_here(&self) -> bool {
        let here = rustix::system::uname().nodename().to_string_lossy().into_owned();
        here == self.machine && self.pid != 0 && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// Some bytes that differ between runs started in the same nanosecond.
fn random_word() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    format!("{:016x}", h.finish())
}

/// The key of a host's lock.
pub fn lock_key(host: &str) -> String {
    format!("{host}/{LOCK}")
}

/// Whether `key` names a marker: `NAME` or `HOST/NAME`, plain components,
/// the last one hidden (so it is never a host or a backup), the host not.
pub fn marker_key(key: &str) -> bool {
    let plain = |c: &str| !c.is_empty() && c != "." && c != ".." && !c.contains('\0');
    let parts: Vec<&str> = key.split('/').collect();
    match parts.as_slice() {
        [name] => plain(name) && name.starts_with('.'),
        [host, name] => plain(host) && !host.starts_with('.') && plain(name) && name.starts_with('.'),
        _ => false,
    }
}

/// A marker key refused by a transport.
pub(crate) fn bad_key(url: &str, key: &str) -> ArchiveError {
    ArchiveError::Target(url.into(), format!("{key:?} is not a marker name (refused)"))
}

/// A held lock; released when dropped (or by [`TargetLock::release`], which says whether that worked).
#[derive(Debug)]
pub struct TargetLock<'a> {
    target: &'a dyn Target,
    key: String,
    holder: Holder,
    held: bool,
    beat: std::time::Instant,
}

/// Whether a backup of `host` holds its lock and said so within [`FRESH_LOCK`]
/// (false when the marker is missing, unreadable or a prune's): its
/// uploads are running, however long since their last object.
pub fn backup_alive(t: &dyn Target, host: &str) -> bool {
    let Ok(Some(bytes)) = t.read_marker(&lock_key(host)) else { return false };
    serde_json::from_slice::<Holder>(&bytes)
        .is_ok_and(|h| h.purpose == "backup" && h.quiet_for(SystemTime::now()) < FRESH_LOCK)
}

impl TargetLock<'_> {
    /// Say the holder is alive: at most every [`HEARTBEAT`], rewrite the
    /// marker with the time (where the transport needs it,
    /// [`Target::refresh_marker`]), only while it still holds our token.
    /// Cheap to call often (from a progress callback). The check and the
    /// rewrite are a round trip apart: a run that took the lock over just then
    /// (only possible after [`STALE_LOCK`] without a heartbeat) is overwritten.
    pub fn heartbeat(&mut self) -> Result<(), ArchiveError> {
        if !self.held || self.beat.elapsed() < HEARTBEAT {
            return Ok(());
        }
        self.beat = std::time::Instant::now();
        self.beat_now()
    }

    fn beat_now(&mut self) -> Result<(), ArchiveError> {
        let ours = match self.target.read_marker(&self.key)? {
            Some(bytes) => serde_json::from_slice::<Holder>(&bytes).is_ok_and(|h| h.token == self.holder.token),
            None => false,
        };
        if !ours {
            log::warn!("{}/{}: the lock was taken over by another run meanwhile", self.target.url(), self.key);
            return Ok(());
        }
        self.holder.seen = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let data =
            serde_json::to_vec(&self.holder).map_err(|e| ArchiveError::Target(self.target.url(), e.to_string()))?;
        self.target.refresh_marker(&self.key, &data)
    }

    /// Who holds it (this process).
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// Release it now.
    pub fn release(mut self) -> Result<(), ArchiveError> {
        self.unlock()
    }

    fn unlock(&mut self) -> Result<(), ArchiveError> {
        if !std::mem::replace(&mut self.held, false) {
            return Ok(());
        }
        // Remove the marker only when it is still ours (a holder that took it over as stale keeps its own).
        let ours = match self.target.read_marker(&self.key)? {
            Some(bytes) => serde_json::from_slice::<Holder>(&bytes).is_ok_and(|h| h.token == self.holder.token),
            None => false,
        };
        if ours {
            self.target.remove_marker(&self.key)?;
        } else {
            log::warn!(
                "{}/{}: the lock was taken over by another run meanwhile; left as it is",
                self.target.url(),
                self.key
            );
        }
        Ok(())
    }
}

impl Drop for TargetLock<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.unlock() {
            log::warn!("cannot release the lock {}/{}: {e}", self.target.url(), self.key);
        }
    }
}

/// What is known about the marker someone else holds.
enum Found {
    /// Gone meanwhile: try again.
    Gone,
    /// Held by a live (or possibly live) holder.
    Held(Option<Holder>),
    /// Left by a dead holder, with the marker's bytes as read (only that marker is removed).
    Stale(Option<Holder>, Vec<u8>),
}

fn look(t: &dyn Target, host: &str, key: &str, now: SystemTime) -> Result<Found, ArchiveError> {
    let Some(bytes) = t.read_marker(key)? else { return Ok(Found::Gone) };
    // An unreadable marker may be one being written (create, then write): held, unless the transport says dead.
    let holder = serde_json::from_slice::<Holder>(&bytes).ok();
    match t.marker_alive(key) {
        Some(false) => return Ok(Found::Stale(holder, bytes)),
        Some(true) => return Ok(Found::Held(holder)),
        None => {}
    }
    let Some(h) = holder else { return Ok(Found::Held(None)) };
    if h.dead_here() {
        return Ok(Found::Stale(Some(h), bytes));
    }
    if h.quiet_for(now) > STALE_LOCK {
        let running = t.scan(host)?.iter().any(|l| l.state == super::State::Running);
        if !running {
            return Ok(Found::Stale(Some(h), bytes));
        }
    }
    Ok(Found::Held(Some(h)))
}

/// Take the lock of `host`'s backups on `t` for `purpose` (`backup`,
/// `prune`), waiting up to `wait` for another holder to release it. A
/// stale lock (see the module's rules) is taken over with a warning. Refused, naming the
/// holder and the fix, when it is still held after `wait`.
pub fn acquire<'a>(
    t: &'a dyn Target,
    host: &str,
    purpose: &str,
    wait: Duration,
) -> Result<TargetLock<'a>, ArchiveError> {
    let key = lock_key(host);
    let start = std::time::Instant::now();
    let mut takeovers = 0;
    loop {
        let holder = Holder::this(purpose);
        let data = serde_json::to_vec(&holder).map_err(|e| ArchiveError::Target(t.url(), e.to_string()))?;
        if t.create_marker(&key, &data)? {
            return Ok(TargetLock { target: t, key, holder, held: true, beat: std::time::Instant::now() });
        }
        match look(t, host, &key, SystemTime::now())? {
            Found::Gone => {}
            Found::Stale(h, seen) if takeovers < 3 => {
                takeovers += 1;
                let who = h.map(|h| h.describe()).unwrap_or_else(|| "an unknown holder".into());
                // Only the marker judged stale goes; another run that took it over first keeps its own,
                // and this one tries the create-only acquire again.
                if t.remove_stale_marker(&key, &seen)? {
                    log::warn!("{}/{key}: taking over the stale lock of {who}", t.url());
                }
            }
            Found::Held(h) | Found::Stale(h, _) => {
                let waited = start.elapsed();
                if waited < wait {
                    std::thread::sleep((wait - waited).min(Duration::from_millis(500)));
                    continue;
                }
                let who =
                    h.as_ref().map(Holder::describe).unwrap_or_else(|| "a run that left no readable marker".into());
                let gone = h
                    .as_ref()
                    .map(|h| format!("if no lifeboat runs as pid {} on {} any more, ", h.pid, h.machine))
                    .unwrap_or_default();
                let hours = STALE_LOCK.as_secs() / 3600;
                return Err(ArchiveError::Target(
                    t.url(),
                    format!(
                        "the backups of {host} are locked by {who}, so this {purpose} does not run now: run it again when \
                         that one has finished ({gone}the lock is stale and is taken over after {hours} h without a \
                         running upload, or remove {key} on the target by hand)"
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::MemoryTarget;

    #[test]
    fn marker_keys_are_hidden_names_never_hosts_or_backups() {
        assert!(marker_key(".lock") && marker_key("web1/.lock") && marker_key(".lifeboat-check-1"));
        for bad in ["lock", "web1/lock", ".h/.lock", "a/b/.c", "../.x", "h/..", "", "/.lock", "h/"] {
            assert!(!marker_key(bad), "{bad} accepted");
        }
    }

    #[test]
    fn a_lock_is_exclusive_released_on_drop_and_refusal_names_the_holder() {
        let t = MemoryTarget::new();
        let held = acquire(&t, "web1", "backup", Duration::ZERO).expect("first");
        assert_eq!(held.holder().purpose, "backup");
        let e = acquire(&t, "web1", "prune", Duration::from_millis(600)).expect_err("held").to_string();
        assert!(e.contains("locked by a backup (pid") && e.contains("this prune does not run now"), "{e}");
        assert!(acquire(&t, "db1", "prune", Duration::ZERO).is_ok(), "another host's lock is another lock");
        drop(held);
        let again = acquire(&t, "web1", "prune", Duration::ZERO).expect("released");
        again.release().expect("release");
        assert!(t.keys().is_empty(), "no marker left: {:?}", t.keys());
        assert!(t.hosts().expect("hosts").is_empty(), "a marker is not a host");
    }

    #[test]
    fn a_lock_of_a_dead_process_or_an_old_one_without_a_running_upload_is_taken_over() {
        let t = MemoryTarget::new();
        let mut dead = Holder::this("backup");
        dead.pid = u32::MAX - 1;
        t.create_marker("web1/.lock", &serde_json::to_vec(&dead).expect("json")).expect("marker");
        let l = acquire(&t, "web1", "prune", Duration::ZERO).expect("dead pid here: stale");
        drop(l);
        let mut old = Holder::this("backup");
        old.machine = "elsewhere".into();
        old.since -= STALE_LOCK.as_secs() + 60;
        t.create_marker("web1/.lock", &serde_json::to_vec(&old).expect("json")).expect("marker");
        let up = t.begin("web1", "b1").expect("begin");
        up.create("vol-0001.tar.zst").expect("create").finish().expect("write");
        assert!(acquire(&t, "web1", "prune", Duration::ZERO).is_err(), "an upload is running: not stale");
        drop(up);
        assert!(acquire(&t, "web1", "prune", Duration::ZERO).is_ok(), "old and nothing running: stale");
    }

    #[test]
    fn two_takeovers_of_one_stale_lock_leave_exactly_one_holder() {
        let t = MemoryTarget::new();
        let mut dead = Holder::this("backup");
        dead.pid = u32::MAX - 1;
        let stale = serde_json::to_vec(&dead).expect("json");
        t.create_marker("web1/.lock", &stale).expect("marker");
        // A and B both judged it stale; A took over first.
        let a = acquire(&t, "web1", "prune", Duration::ZERO).expect("A takes over");
        assert!(!t.remove_stale_marker("web1/.lock", &stale).expect("B"), "B removes only the stale marker");
        let e = acquire(&t, "web1", "backup", Duration::ZERO).expect_err("B waits for A").to_string();
        assert!(e.contains("locked by a prune"), "{e}");
        assert_eq!(a.holder().purpose, "prune");
        let now = t.read_marker("web1/.lock").expect("read").expect("A's marker");
        assert_eq!(serde_json::from_slice::<Holder>(&now).expect("json").token, a.holder().token);
    }

    #[test]
    fn a_heartbeat_keeps_an_old_lock_and_its_host_s_uploads_alive() {
        let t = MemoryTarget::new();
        let mut l = acquire(&t, "web1", "backup", Duration::ZERO).expect("lock");
        assert!(backup_alive(&t, "web1"), "just taken");
        l.holder.since -= STALE_LOCK.as_secs() + 60;
        l.holder.machine = "elsewhere".into();
        l.beat_now().expect("beat");
        let h: Holder =
            serde_json::from_slice(&t.read_marker("web1/.lock").expect("read").expect("marker")).expect("json");
        assert!(h.seen >= h.since + STALE_LOCK.as_secs(), "{h:?}");
        assert!(backup_alive(&t, "web1"), "the heartbeat is fresh");
        assert!(acquire(&t, "web1", "prune", Duration::ZERO).is_err(), "old, but its heartbeat is fresh: held");
        l.heartbeat().expect("too soon: nothing written");
        let old = Holder { seen: 0, ..h };
        t.refresh_marker("web1/.lock", &serde_json::to_vec(&old).expect("json")).expect("rewrite");
        assert!(!backup_alive(&t, "web1"), "no heartbeat for hours");
        assert!(acquire(&t, "web1", "prune", Duration::ZERO).is_ok(), "stale without a heartbeat or an upload");
    }

    #[test]
    fn a_lock_taken_over_is_not_removed_by_its_first_holder() {
        let t = MemoryTarget::new();
        let first = acquire(&t, "h", "backup", Duration::ZERO).expect("first");
        t.remove_marker("h/.lock").expect("taken over");
        let second = acquire(&t, "h", "prune", Duration::ZERO).expect("second");
        drop(first);
        assert!(t.read_marker("h/.lock").expect("read").is_some(), "the second holder's marker stays");
        drop(second);
        assert!(t.read_marker("h/.lock").expect("read").is_none());
    }
}
