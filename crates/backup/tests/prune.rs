//! `backup prune --keep-*` on a real directory target: backups named for
//! synthetic dates, pruned by policy (given, or from the configuration),
//! dry runs, a damaged newest backup, and the lock against a running backup.
//! No root needed.

use lifeboat_archive::target::{lock, FileTarget, Target};
use lifeboat_backup::list::{prune, PruneRequest};
use lifeboat_backup::retention::{Action, Policy};
use lifeboat_backup::Error;
use std::path::Path;
use std::time::Duration;

/// A catalog as this version writes it.
fn catalog(created: &str) -> String {
    format!(
        r#"{{"format":"lifeboat-archive","version":1,"host":"web1","created":"{created}",
        "compression":"zstd","volume_size":1048576,"volumes":[],"frames":[],
        "manifest":{{"name":"manifest.jsonl","size":0,"blake3":""}},
        "stats":{{"entries":0,"files":0,"bytes_in":0,"bytes_out":0,"sockets_skipped":0,"changed":[],"unreadable":[]}}}}"#
    )
}

/// Publish a backup of `host` named for `when` (`2026-12-01 10:00`) through the target interface.
fn publish(t: &FileTarget, host: &str, when: &str) -> String {
    let name = format!("{}0000.000Z", when.replace(' ', "T").replace(':', ""));
    let up = t.begin(host, &name).expect("begin");
    let mut w = up.create("vol-0001.tar.zst").expect("create");
    std::io::Write::write_all(&mut w, &[0u8; 1000]).expect("write");
    w.finish().expect("finish");
    up.commit(catalog(&format!("{}:00Z", when.replace(' ', "T"))).as_bytes()).expect("commit");
    name
}

fn setup(days: &[&str]) -> (tempfile::TempDir, FileTarget, lifeboat_config::Config, Vec<String>) {
    let tmp = tempfile::tempdir().expect("tmp");
    let t = FileTarget::new(tmp.path());
    let names = days.iter().map(|d| publish(&t, "web1", d)).collect();
    let mut c = lifeboat_config::Config::default();
    c.backup.target = format!("file://{}", tmp.path().display());
    (tmp, t, c, names)
}

fn left(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("web1"))
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

const DAYS: [&str; 6] = [
    "2026-11-01 10:00",
    "2026-11-02 10:00",
    "2026-11-02 22:00",
    "2026-11-05 10:00",
    "2026-11-09 10:00",
    "2026-11-10 10:00",
];

#[test]
fn a_policy_removes_what_it_does_not_keep_and_a_dry_run_removes_nothing() {
    let (tmp, _t, c, names) = setup(&DAYS);
    let policy = Policy { daily: 3, ..Policy::default() };
    let dry = prune(&c, &PruneRequest { policy, dry_run: true, ..PruneRequest::default() }).expect("dry run");
    assert!(dry.dry_run);
    let would: Vec<&str> = dry.hosts[0]
        .backups
        .iter()
        .filter(|j| j.decision.action == Action::Remove)
        .map(|j| j.listed.name.as_str())
        .collect();
    assert_eq!(would, [&names[0], &names[1], &names[2]], "days 1 and 2 go, 5, 9 and 10 stay");
    assert!(dry.hosts[0].backups.iter().all(|j| !j.removed));
    assert_eq!(left(tmp.path()), names, "a dry run deletes nothing");

    let done = prune(&c, &PruneRequest { policy, ..PruneRequest::default() }).expect("prune");
    assert_eq!(done.hosts[0].backups.iter().filter(|j| j.removed).count(), 3);
    assert_eq!(left(tmp.path()), names[3..].to_vec());
    assert!(!tmp.path().join("web1/.lock").exists(), "the lock is released");
    // Nothing more to remove: idempotent.
    let again = prune(&c, &PruneRequest { policy, ..PruneRequest::default() }).expect("again");
    assert!(again.hosts[0].backups.iter().all(|j| j.decision.action == Action::Keep));
}

#[test]
fn without_options_the_configured_policy_applies_and_without_any_policy_nothing_is_removed() {
    let (tmp, _t, mut c, names) = setup(&DAYS);
    let e = prune(&c, &PruneRequest::default()).expect_err("no policy");
    assert!(matches!(e, Error::NoRetentionPolicy), "{e}");
    assert!(e.to_string().contains("[backup.retention]") && e.to_string().contains("--keep-last"), "{e}");
    assert_eq!(left(tmp.path()), names, "nothing removed");
    c.backup.retention.keep_last = Some(2);
    let r = prune(&c, &PruneRequest::default()).expect("configured policy");
    assert_eq!(r.policy, Policy { last: 2, ..Policy::default() });
    assert_eq!(left(tmp.path()), names[4..].to_vec());
    // The command line wins over the configuration.
    let r = prune(&c, &PruneRequest { policy: Policy { last: 1, ..Policy::default() }, ..PruneRequest::default() })
        .expect("given policy");
    assert_eq!(r.policy.last, 1);
    assert_eq!(left(tmp.path()), names[5..].to_vec());
}

#[test]
fn a_damaged_newest_backup_is_not_the_newest_complete_one_and_is_not_removed() {
    let (tmp, _t, c, names) = setup(&DAYS);
    let newest = tmp.path().join("web1").join(&names[5]);
    std::fs::write(newest.join("backup.json"), b"{\"format\": tru").expect("damage");
    let r = prune(&c, &PruneRequest { policy: Policy { last: 1, ..Policy::default() }, ..PruneRequest::default() })
        .expect("prune");
    let kept: Vec<&str> = r.hosts[0]
        .backups
        .iter()
        .filter(|j| j.decision.action == Action::Keep)
        .map(|j| j.listed.name.as_str())
        .collect();
    assert_eq!(kept, [&names[4], &names[5]], "the newest complete one (day 9) and the damaged one stay");
    let reasons: Vec<String> = r.hosts[0].backups[4].decision.reasons.iter().map(ToString::to_string).collect();
    assert!(reasons.contains(&"the newest complete backup".to_string()), "{reasons:?}");
    assert_eq!(left(tmp.path()), names[4..].to_vec());
}

#[test]
fn a_running_upload_is_never_touched() {
    let (tmp, t, c, names) = setup(&DAYS[..2]);
    let running = t.begin("web1", "2026-11-11T100000.000Z").expect("begin");
    let r = prune(
        &c,
        &PruneRequest {
            policy: Policy { last: 1, ..Policy::default() },
            host: Some("web1".into()),
            ..PruneRequest::default()
        },
    );
    // The running backup holds no host lock here (begin alone), so prune runs, and leaves the upload alone.
    let r = r.expect("prune");
    assert_eq!(left(tmp.path()), [names[1].clone(), "2026-11-11T100000.000Z.partial".into()]);
    let running_j = r.hosts[0].backups.iter().find(|j| j.listed.name.ends_with(".partial")).expect("listed");
    assert_eq!(running_j.decision.action, Action::Keep);
    drop(running);
}

#[test]
fn a_prune_racing_a_backup_refuses_naming_it_and_a_backup_waits_for_a_prune() {
    let (tmp, t, c, names) = setup(&DAYS);
    // A backup of web1 is running: it holds web1's lock from begin to commit, as job::make does.
    let backup_side = FileTarget::new(tmp.path());
    let held = lock::acquire(&backup_side, "web1", "backup", Duration::ZERO).expect("backup's lock");
    let upload = backup_side.begin("web1", "2026-11-11T100000.000Z").expect("begin");
    let policy = Policy { last: 1, ..Policy::default() };
    let r = prune(&c, &PruneRequest { policy, ..PruneRequest::default() }).expect("prune runs, per host");
    let why = r.hosts[0].refused.as_deref().expect("refused");
    assert!(
        why.contains("locked by a backup (pid") && why.contains("run it again when that one has finished"),
        "{why}"
    );
    assert_eq!(left(tmp.path()).len(), names.len() + 1, "nothing removed while the backup runs");
    upload.abort();
    drop(held);
    prune(&c, &PruneRequest { policy, ..PruneRequest::default() }).expect("after the backup");
    assert_eq!(left(tmp.path()), names[5..].to_vec());

    // The other way round: a backup waits for a prune's lock to be released.
    let prune_side = lock::acquire(&t, "web1", "prune", Duration::ZERO).expect("prune's lock");
    std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(700));
            drop(prune_side);
        });
        let waited = lock::acquire(&backup_side, "web1", "backup", Duration::from_secs(20)).expect("waited");
        assert_eq!(waited.holder().purpose, "backup");
    });
}

#[test]
fn a_lock_left_by_a_dead_process_on_a_directory_target_is_taken_over_at_once() {
    let (tmp, _t, c, names) = setup(&DAYS);
    // A marker nobody holds a flock on (its process died), from another machine, written a minute ago.
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("now").as_secs() - 60;
    let marker = format!(r#"{{"purpose":"backup","machine":"elsewhere","pid":1,"since":{since},"token":"x"}}"#);
    std::fs::write(tmp.path().join("web1/.lock"), marker).expect("marker");
    // Written a minute ago (a marker seconds old may be one not locked yet).
    let f = std::fs::File::options().write(true).open(tmp.path().join("web1/.lock")).expect("open");
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(60)).expect("mtime");
    let r = prune(&c, &PruneRequest { policy: Policy { last: 1, ..Policy::default() }, ..PruneRequest::default() })
        .expect("prune");
    assert!(r.hosts[0].refused.is_none(), "{:?}", r.hosts[0].refused);
    assert_eq!(left(tmp.path()), names[5..].to_vec());
    assert!(!tmp.path().join("web1/.lock").exists());
}
