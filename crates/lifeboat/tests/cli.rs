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
