//! The command line itself: man pages, completions, the effective config, JSON output.

mod common;

use common::{config, run_lifeboat};

#[test]
fn man_pages_and_completions_come_from_the_cli_definition() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("man1");
    let (code, out, err) = run_lifeboat(&["manpage", "--dir", dir.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{out}{err}");
    for page in
        ["lifeboat.1", "lifeboat-check.1", "lifeboat-layout.1", "lifeboat-layout-save.1", "lifeboat-layout-diff.1"]
    {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page} is a man page");
    }
    let save = std::fs::read_to_string(dir.join("lifeboat-layout-save.1")).expect("page");
    assert!(save.contains("output"), "the page documents --output");
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, _) = run_lifeboat(&["completions", shell]);
        assert_eq!(code, 0);
        assert!(out.contains("layout") && out.contains("check"), "{shell} completion names the subcommands");
    }
}

#[test]
fn config_show_prints_every_default_as_valid_toml() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = config(tmp.path(), "[backup]\nlevel = 7\n");
    let (code, out, err) = run_lifeboat(&["--config", cfg.to_str().expect("utf8"), "config", "show"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("level = 7") && out.contains("volume_size = \"dvd\"") && out.contains("format = \"iso\""),
        "{out}"
    );
    let reparsed =
        lifeboat_config::Config::parse(&out, std::path::Path::new("shown.toml")).expect("output is a config");
    assert_eq!(reparsed.backup.level, 7);
    let (code, out, _) = run_lifeboat(&["--config", cfg.to_str().expect("utf8"), "--json", "config", "show"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["backup"]["level"], 7);
}

#[test]
fn every_run_writes_a_log_file_in_the_work_directory() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = config(tmp.path(), "");
    let out = tmp.path().join("l.toml");
    let (code, _, err) = run_lifeboat(&[
        "--config",
        cfg.to_str().expect("utf8"),
        "-q",
        "layout",
        "save",
        "-o",
        out.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "-q prints nothing but errors: {err}");
    let logs: Vec<_> = std::fs::read_dir(tmp.path().join("work/log")).expect("log dir").flatten().collect();
    assert_eq!(logs.len(), 1);
    let text = std::fs::read_to_string(logs[0].path()).expect("log");
    assert!(text.contains("run: lsblk --json"), "the log records every command run:\n{text}");
}

/// A published backup as this version writes its catalog (no volumes), named for `when` (`2026-11-01T100000`).
fn fake_backup(target: &std::path::Path, host: &str, when: &str) -> std::path::PathBuf {
    let d = target.join(host).join(format!("{when}.000Z"));
    std::fs::create_dir_all(&d).expect("mkdir");
    let c = format!(
        r#"{{"format":"lifeboat-archive","version":1,"host":"{host}","created":"2026-01-01T00:00:00Z",
        "compression":"zstd","volume_size":1048576,"volumes":[],"frames":[],
        "manifest":{{"name":"manifest.jsonl","size":0,"blake3":""}},
        "stats":{{"entries":0,"files":0,"bytes_in":0,"bytes_out":0,"sockets_skipped":0,"changed":[],"unreadable":[]}}}}"#
    );
    std::fs::write(d.join("backup.json"), c).expect("catalog");
    d
}

#[test]
fn backup_prune_by_policy_says_what_it_keeps_and_removes_and_applies_the_configured_policy() {
    let tmp = tempfile::tempdir().expect("tmp");
    let target = tmp.path().join("target");
    let b: Vec<_> = ["2026-11-01T100000", "2026-11-02T100000", "2026-11-02T200000", "2026-11-05T100000"]
        .iter()
        .map(|w| fake_backup(&target, "web1", w))
        .collect();
    let extra = format!("[backup]\ntarget = \"file://{}\"\n\n[backup.retention]\nkeep_daily = 2\n", target.display());
    let cfg = config(tmp.path(), &extra);
    let c = cfg.to_str().expect("utf8");

    let (code, out, err) = run_lifeboat(&["--config", c, "backup", "prune", "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("--keep-daily 2") && out.contains("UTC") && out.contains("dry run"), "{out}");
    assert!(out.contains(&format!("would remove {}", b[0].display())), "{out}");
    assert!(
        out.contains(&format!("keep         {}", b[3].display())) && out.contains("the newest complete backup"),
        "{out}"
    );
    assert!(out.contains("web1: 2 backup(s) to remove, 2 kept, "), "{out}");
    assert!(b.iter().all(|d| d.is_dir()), "a dry run removes nothing");

    // The configured policy, applied by a scheduled `lifeboat backup prune`.
    let (code, out, err) = run_lifeboat(&["--config", c, "backup", "prune"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!b[0].exists() && !b[1].exists() && b[2].is_dir() && b[3].is_dir(), "{out}");

    // Options win over the configuration; --json says the same.
    let (code, out, err) = run_lifeboat(&["--config", c, "--json", "backup", "prune", "--keep-last", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["policy"]["last"], 1);
    let backups = v["hosts"][0]["backups"].as_array().expect("backups");
    assert_eq!(backups.len(), 2);
    assert_eq!((backups[0]["action"].as_str(), backups[0]["removed"].as_bool()), (Some("remove"), Some(true)));
    assert_eq!(backups[1]["action"], "keep");
    assert_eq!(backups[1]["created"], "2026-11-05T10:00:00Z", "the time comes from the name");
    assert!(!b[2].exists() && b[3].is_dir());

    // --partial is the other prune; it takes no policy.
    let (code, _, err) = run_lifeboat(&["--config", c, "backup", "prune", "--partial", "--keep-last", "1"]);
    assert_eq!(code, 2, "{err}");
    // No policy anywhere: refused, nothing removed.
    let bare_dir = tmp.path().join("bare");
    std::fs::create_dir(&bare_dir).expect("mkdir");
    let bare = config(&bare_dir, &format!("[backup]\ntarget = \"file://{}\"\n", target.display()));
    let (code, _, err) = run_lifeboat(&["--config", bare.to_str().expect("utf8"), "backup", "prune"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no retention policy") && err.contains("[backup.retention]"), "{err}");
    assert!(b[3].is_dir());
}

/// Run lifeboat with -q; assert it succeeds and prints nothing at all.
fn quiet(cfg: &str, args: &[&str]) {
    let (code, out, err) = run_lifeboat(&[&["--config", cfg, "-q"][..], args].concat());
    assert_eq!(code, 0, "lifeboat -q {args:?}: {out}{err}");
    assert_eq!((out.as_str(), err.as_str()), ("", ""), "lifeboat -q {args:?} prints nothing on success");
}

#[test]
fn quiet_runs_print_nothing_on_success_but_what_was_asked_for() {
    let tmp = tempfile::tempdir().expect("tmp");
    let target = tmp.path().join("target");
    let cfg = config(tmp.path(), &format!("[backup]\ntarget = \"file://{}\"\n", target.display()));
    let c = cfg.to_str().expect("utf8");
    let p = |name: &str| tmp.path().join(name).to_str().expect("utf8").to_string();
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(tree.join("etc")).expect("mkdir");
    std::fs::write(tree.join("etc/hostname"), "web1\n").expect("file");
    std::fs::write(tree.join("data.bin"), vec![7u8; 100_000]).expect("file");
    std::fs::create_dir(&target).expect("target");

    quiet(c, &["config", "init", &p("init.toml")]);
    quiet(c, &["manpage", "--dir", &p("man")]);
    quiet(c, &["layout", "save", "-o", &p("layout.toml")]);
    quiet(c, &["layout", "diff", &p("layout.toml"), "--against", &p("layout.toml")]);
    // The first backup also makes the signing key: said in the run log, not on the terminal.
    quiet(c, &["backup", "--root", tree.to_str().expect("utf8"), "."]);
    quiet(c, &["backup", "--root", tree.to_str().expect("utf8"), "."]);
    quiet(c, &["verify"]);
    quiet(c, &["compare", "--root", tree.to_str().expect("utf8")]);
    quiet(c, &["restore", "--to", &p("restored")]);
    assert!(tmp.path().join("restored/etc/hostname").is_file());
    quiet(c, &["backup", "prune", "--keep-last", "1"]);
    quiet(c, &["backup", "prune", "--partial"]);
    let logs = std::fs::read_dir(tmp.path().join("work/log")).expect("logs").flatten();
    let text: String = logs.map(|e| std::fs::read_to_string(e.path()).expect("log")).collect();
    assert!(text.contains("KeyCreated"), "the new key is in the run log:\n{text}");
    // check passes only on a machine with every tool; when it does, it is quiet too.
    let (code, out, err) = run_lifeboat(&["--config", c, "-q", "check"]);
    if code == 0 {
        assert_eq!((out.as_str(), err.as_str()), ("", ""));
    } else {
        assert!(code == 1 && !out.is_empty(), "a failed check shows the table: {out}{err}");
    }

    // What the command is for is still printed: lists, trees, --json, the config.
    let (code, out, err) = run_lifeboat(&["--config", c, "-q", "--json", "backup", "list"]);
    assert_eq!((code, err.as_str()), (0, ""));
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "one backup left after prune: {out}");
    let (code, out, _) = run_lifeboat(&["--config", c, "-q", "layout", "show", &p("layout.toml")]);
    assert!(code == 0 && !out.is_empty());
    let (code, out, _) = run_lifeboat(&["--config", c, "-q", "config", "show"]);
    assert!(code == 0 && out.contains("[backup]"));
    // A failure is still said, on stderr, with exit 2.
    let (code, out, err) =
        run_lifeboat(&["--config", c, "-q", "verify", "--from", &format!("file://{}", p("nowhere"))]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.starts_with("lifeboat: error: "), "{err}");
}

#[test]
fn commands_that_only_print_leave_no_run_log() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = config(tmp.path(), "");
    let c = cfg.to_str().expect("utf8");
    for args in [&["config", "show"][..], &["completions", "bash"], &["manpage", "--dir", "/dev/null/x"], &["status"]] {
        let _ = run_lifeboat(&[&["--config", c][..], args].concat());
    }
    assert!(!tmp.path().join("work/log").exists(), "config show, completions, manpage and status write no log");
}

#[test]
fn status_reports_the_last_runs_for_people_scripts_nagios_and_prometheus() {
    let tmp = tempfile::tempdir().expect("tmp");
    let target = tmp.path().join("target");
    std::fs::create_dir(&target).expect("target");
    let cfg = config(tmp.path(), &format!("[backup]\ntarget = \"file://{}\"\n", target.display()));
    let c = cfg.to_str().expect("utf8");
    let tree = tmp.path().join("tree");
    std::fs::create_dir(&tree).expect("tree");
    std::fs::write(tree.join("f"), "x").expect("file");
    let (code, _, err) = run_lifeboat(&["--config", c, "status"]);
    assert_eq!(code, 1, "nothing has run: overdue ({err})");
    quiet(c, &["backup", "--root", tree.to_str().expect("utf8"), "."]);
    quiet(c, &["verify"]);
    let (code, _, _) = run_lifeboat(&["--config", c, "verify", "--from", "file:///nonexistent/x"]);
    assert_eq!(code, 2);
    let prom = tmp.path().join("lifeboat.prom");
    let (code, out, err) =
        run_lifeboat(&["--config", c, "--json", "status", "--prometheus", prom.to_str().expect("utf8")]);
    assert_eq!(code, 2, "the last verify failed: critical ({err})");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["state"], "critical");
    let job = |name: &str| v["jobs"].as_array().expect("jobs").iter().find(|j| j["job"] == name).expect(name).clone();
    assert_eq!(job("backup")["result"], "ok");
    assert_eq!(job("backup")["overdue"], false);
    let verify = job("verify");
    assert_eq!((verify["result"].as_str(), verify["failed"].as_bool()), (Some("error"), Some(true)));
    assert!(verify["last_ok"].is_string(), "the earlier success is kept: {verify}");
    assert!(verify["detail"].as_str().is_some_and(|d| d.contains("nonexistent")), "{verify}");
    assert_eq!(job("drill")["last_ok"], serde_json::Value::Null);
    let metrics = std::fs::read_to_string(&prom).expect("metrics");
    assert!(metrics.contains("lifeboat_last_run_ok{host=") && metrics.contains("job=\"verify\"} 0"), "{metrics}");
    let (code, out, _) = run_lifeboat(&["--config", c, "status"]);
    assert_eq!(code, 2);
    assert!(out.contains("CRITICAL") && out.contains("verify") && out.contains("never run"), "{out}");
}

#[test]
fn with_json_an_error_is_json_on_stdout_too() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = config(tmp.path(), "");
    let (code, out, err) =
        run_lifeboat(&["--config", cfg.to_str().expect("utf8"), "--json", "verify", "--from", "file:///nonexistent/x"]);
    assert_eq!(code, 2);
    assert!(err.starts_with("lifeboat: error: "), "the text stays on stderr: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json on stdout");
    assert_eq!(v["exit"], 2);
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()) && v["causes"].is_array(), "{v}");
}
