//! The Debian package (packaging/deb.sh): what it holds, that its units
//! verify, that its configuration file is every documented key with the
//! default the code has, that its man pages render, and that dpkg installs
//! and removes it cleanly in a throwaway root.
//!
//! The package is built once per run from the test build of lifeboat, into
//! `target/tmp/package`. Needs dpkg-deb and systemd-analyze (`make
//! test-deps`); the install test needs root.

mod common;

use lifeboat_config::Config;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The built package and the tree it extracts to.
struct Built {
    deb: PathBuf,
    root: PathBuf,
}

/// Build the package once (and extract it with dpkg-deb -x).
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("package");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let out = Command::new(repo().join("packaging/deb.sh"))
            .args(["--binary", env!("CARGO_BIN_EXE_lifeboat"), "--out"])
            .arg(&dir)
            .output()
            .expect("run packaging/deb.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "deb.sh: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stderr.is_empty(), "deb.sh is quiet: {}", String::from_utf8_lossy(&out.stderr));
        let deb = PathBuf::from(stdout.trim());
        assert!(deb.starts_with(&dir) && deb.extension().is_some_and(|e| e == "deb"), "{stdout}");
        let root = dir.join("root");
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
        Built { deb, root }
    })
}

/// Run a command; its stdout, or a panic with its output.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The unit files the package ships.
const UNITS: &[&str] = &[
    "lifeboat-mkbackup.service",
    "lifeboat-mkbackup.timer",
    "lifeboat-checklayout.service",
    "lifeboat-checklayout.timer",
    "lifeboat-prune.service",
    "lifeboat-prune.timer",
    "lifeboat-drill.service",
    "lifeboat-drill.timer",
];

#[test]
fn the_package_holds_the_binary_man_pages_completions_conffile_and_units() {
    let b = built();
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&b.deb));
    // `-rw-r--r-- root/root 1234 2026-12-02 04:48 ./usr/sbin/lifeboat`
    let entries: BTreeMap<String, (String, String)> = listing
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.get(5)?.trim_start_matches('.').to_string(), (f[0].to_string(), f[1].to_string())))
        })
        .collect();
    let mut expected = vec![
        ("/usr/sbin/lifeboat", "-rwxr-xr-x"),
        ("/etc/lifeboat/lifeboat.toml", "-rw-------"),
        ("/usr/share/man/man1/lifeboat.1.gz", "-rw-r--r--"),
        ("/usr/share/man/man1/lifeboat-mkbackup.1.gz", "-rw-r--r--"),
        ("/usr/share/man/man1/lifeboat-backup-prune.1.gz", "-rw-r--r--"),
        ("/usr/share/man/man1/lifeboat-config-init.1.gz", "-rw-r--r--"),
        ("/usr/share/man/man5/lifeboat.toml.5.gz", "-rw-r--r--"),
        ("/usr/share/bash-completion/completions/lifeboat", "-rw-r--r--"),
        ("/usr/share/zsh/vendor-completions/_lifeboat", "-rw-r--r--"),
        ("/usr/share/fish/vendor_completions.d/lifeboat.fish", "-rw-r--r--"),
        ("/usr/share/doc/lifeboat/copyright", "-rw-r--r--"),
        ("/usr/share/doc/lifeboat/operations.md", "-rw-r--r--"),
        ("/usr/share/doc/lifeboat/configuration.md", "-rw-r--r--"),
    ];
    let units: Vec<String> = UNITS.iter().map(|u| format!("/usr/lib/systemd/system/{u}")).collect();
    expected.extend(units.iter().map(|u| (u.as_str(), "-rw-r--r--")));
    for (path, mode) in expected {
        let got = entries.get(path).unwrap_or_else(|| panic!("{path} is not in the package:\n{listing}"));
        assert_eq!((got.0.as_str(), got.1.as_str()), (mode, "root/root"), "{path}");
    }
    assert!(
        !entries.keys().any(|p| p.starts_with("/etc/systemd") || p.starts_with("/usr/local") || p.starts_with("/lib/")),
        "nothing enabled, nothing under /usr/local, nothing outside merged /usr:\n{listing}"
    );

    let info = run(Command::new("dpkg-deb").arg("-I").arg(&b.deb));
    for want in ["Package: lifeboat", "Architecture: ", "Section: admin", "libc6 (>= ", "busybox-static", "xorriso"] {
        assert!(info.contains(want), "control has {want}:\n{info}");
    }
    let depends = run(Command::new("dpkg-deb").args(["-f"]).arg(&b.deb).arg("Depends"));
    assert!(!depends.contains("qemu"), "the drill's QEMU is recommended, not required: {depends}");
    let ctl = Path::new(env!("CARGO_TARGET_TMPDIR")).join("package/control");
    let _ = std::fs::remove_dir_all(&ctl);
    run(Command::new("dpkg-deb").arg("-e").arg(&b.deb).arg(&ctl));
    let conffiles = std::fs::read_to_string(ctl.join("conffiles")).expect("conffiles");
    assert_eq!(conffiles, "/etc/lifeboat/lifeboat.toml\n");
    for script in ["postinst", "prerm", "postrm"] {
        run(Command::new("sh").arg("-n").arg(ctl.join(script)));
    }
    // The files are those of the md5sums (the conffile aside: dpkg tracks it apart).
    let md5 = std::fs::read_to_string(ctl.join("md5sums")).expect("md5sums");
    let listed: BTreeSet<&str> = md5.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    let files: BTreeSet<String> = entries
        .iter()
        .filter(|(p, (mode, _))| mode.starts_with('-') && !p.starts_with("/etc/"))
        .map(|(p, _)| p.trim_start_matches('/').to_string())
        .collect();
    assert_eq!(listed, files.iter().map(String::as_str).collect());

    // The shipped binary is lifeboat and runs.
    let (code, out, _) = {
        let o = Command::new(b.root.join("usr/sbin/lifeboat")).arg("--version").output().expect("run");
        (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned(), o.stderr)
    };
    assert_eq!(code, Some(0));
    assert!(out.starts_with("lifeboat "), "{out}");
}

#[test]
fn the_units_verify_and_run_lifeboat_quietly_and_nothing_is_enabled() {
    let b = built();
    let shipped = b.root.join("usr/lib/systemd/system");
    let sbin = b.root.join("usr/sbin/lifeboat");
    // systemd-analyze checks that ExecStart's program exists and that each
    // Documentation= man page is there: point both at the extracted package.
    let check = Path::new(env!("CARGO_TARGET_TMPDIR")).join("package/units");
    let _ = std::fs::remove_dir_all(&check);
    std::fs::create_dir_all(&check).expect("mkdir");
    let has_drill = Command::new(&sbin).args(["drill", "--help"]).output().is_ok_and(|o| o.status.success());
    for u in UNITS {
        let text = std::fs::read_to_string(shipped.join(u)).unwrap_or_else(|e| panic!("{u}: {e}"));
        if u.ends_with(".timer") {
            assert!(text.contains("\n[Install]\nWantedBy=timers.target\n"), "{u} is enabled as a timer:\n{text}");
            assert!(text.contains("Persistent=true"), "{u} catches up on a missed run");
        } else {
            assert!(text.contains("Type=oneshot") && !text.contains("[Install]"), "{u} is started by its timer only");
            for exec in text.lines().filter(|l| l.starts_with("ExecStart=")) {
                assert!(exec.contains("/usr/sbin/lifeboat -q "), "{u}: every run is quiet on success: {exec}");
            }
        }
        let mut text = text.replace("/usr/sbin/lifeboat", &sbin.display().to_string());
        if !has_drill {
            // `lifeboat drill` has not landed yet: its unit is shipped, its man page comes with it.
            text = text.replace("man:lifeboat-drill(1) ", "");
        }
        std::fs::write(check.join(u), text).expect("write unit");
    }
    let which = Command::new("systemd-analyze").arg("--version").output();
    assert!(which.is_ok(), "systemd-analyze is missing: apt-get install systemd (make test-deps)");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(UNITS.iter().map(|u| check.join(u)))
        .env("MANPATH", b.root.join("usr/share/man"))
        .output()
        .expect("systemd-analyze");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "systemd-analyze verify:\n{err}");
    let timers: Vec<_> = UNITS.iter().filter(|u| u.ends_with(".timer")).collect();
    assert_eq!(timers.len(), 4, "mkbackup, checklayout, prune, drill");
    assert!(!b.root.join("etc/systemd").exists(), "no timer is enabled by the package");
}

/// The conffile's keys: section → key → (value, is an example of an unset key).
fn conffile_keys(text: &str) -> BTreeMap<String, BTreeMap<String, (String, bool)>> {
    let mut keys: BTreeMap<String, BTreeMap<String, (String, bool)>> = BTreeMap::new();
    let mut section = String::new();
    for l in text.lines() {
        if let Some(s) = l.strip_prefix('[') {
            section = s.trim_end_matches(']').to_string();
            keys.entry(section.clone()).or_default();
        } else if let Some(entry) = l.strip_prefix('#').filter(|e| e.starts_with(|c: char| c.is_ascii_lowercase())) {
            let (entry, example) = match entry.strip_suffix("# example") {
                Some(e) => (e.trim_end(), true),
                None => (entry, false),
            };
            let (k, v) = entry.split_once(" = ").unwrap_or_else(|| panic!("not `#key = value`: {l}"));
            let old = keys.entry(section.clone()).or_default().insert(k.to_string(), (v.to_string(), example));
            assert!(old.is_none(), "[{section}] {k} is listed twice");
        } else {
            assert!(l.is_empty() || l.starts_with("# ") || l == "#", "a line that is neither a key nor prose: {l:?}");
        }
    }
    keys
}

/// The keys docs/configuration.md documents (the first column of its tables).
fn documented_keys() -> Vec<String> {
    let doc = std::fs::read_to_string(repo().join("docs/configuration.md")).expect("docs/configuration.md");
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `")?.split_once("` |").map(|(k, _)| k.to_string()))
        .filter(|k| k.contains('.'))
        .collect()
}

#[test]
fn the_shipped_configuration_is_every_documented_key_with_the_default_the_code_has() {
    let b = built();
    let path = b.root.join("etc/lifeboat/lifeboat.toml");
    let text = std::fs::read_to_string(&path).expect("conffile");
    // As shipped it is the defaults, read by lifeboat's own loader.
    assert_eq!(Config::load(&path, true).expect("the shipped file loads"), Config::default());
    // Every documented key is in it, under its section.
    let keys = conffile_keys(&text);
    let documented = documented_keys();
    assert!(documented.len() > 50, "the docs' tables were read: {documented:?}");
    for k in &documented {
        let (section, leaf) = k.rsplit_once('.').expect("dotted");
        let listed = keys.get(section).is_some_and(|s| s.contains_key(leaf)) || keys.contains_key(k.as_str());
        assert!(listed, "`{k}` is documented in docs/configuration.md but not in packaging/lifeboat.toml");
    }
    // ... and nothing else: every key in it is documented.
    for (section, ks) in &keys {
        for k in ks.keys() {
            let full = format!("{section}.{k}");
            assert!(
                documented.contains(&full),
                "`{full}` is in packaging/lifeboat.toml but not in docs/configuration.md"
            );
        }
    }
    // Every `#key = value` is the code's default: uncommented, the file is still the defaults.
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(e) if e.starts_with(|c: char| c.is_ascii_lowercase()) && !e.ends_with("# example") => format!("{e}\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    assert_eq!(
        Config::parse(&uncommented, Path::new("uncommented.toml")).expect("the defaults parse"),
        Config::default(),
        "a `#key = value` line of packaging/lifeboat.toml is not the default"
    );
    // The examples are valid values, and not the defaults.
    let examples: String = text
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(e) if e.ends_with("# example") => format!("{e}\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    let with_examples = Config::parse(&examples, Path::new("examples.toml")).expect("the examples parse");
    assert_ne!(with_examples, Config::default());
    assert_eq!(with_examples.rescue.kernel.as_deref(), Some(Path::new("/boot/vmlinuz-6.1.0-28-amd64")));
    // `lifeboat config init` writes the same file.
    let tmp = tempfile::tempdir().expect("tmp");
    let init = tmp.path().join("etc/lifeboat.toml");
    let (code, out, err) = common::run_lifeboat(&["-q", "config", "init", init.to_str().expect("utf8")]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    assert_eq!(std::fs::read_to_string(&init).expect("written"), text);
    let (code, _, err) = common::run_lifeboat(&["config", "init", init.to_str().expect("utf8")]);
    assert_eq!(code, 2, "an existing file is not replaced without --force");
    assert!(err.contains("--force"), "{err}");
}

#[test]
fn every_man_page_renders_without_warnings() {
    let b = built();
    let mut pages = Vec::new();
    for section in ["man1", "man5"] {
        for e in std::fs::read_dir(b.root.join("usr/share/man").join(section)).expect("man dir").flatten() {
            pages.push(e.path());
        }
    }
    assert!(pages.len() > 20, "{pages:?}");
    for page in &pages {
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(page)
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("man (apt-get install man-db)");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && err.trim().is_empty(), "{}: {err}", page.display());
        assert!(!out.stdout.is_empty(), "{} renders", page.display());
        let text = String::from_utf8_lossy(&out.stdout);
        if page.parent().is_some_and(|d| d.ends_with("man1")) {
            for section in ["\nEXIT STATUS\n", "\nFILES\n", "\nEXAMPLES\n", "\nSEE ALSO\n"] {
                assert!(text.contains(section), "{} has {section:?}", page.display());
            }
        }
        // Every page SEE ALSO names is in the package (read from the source: the rendering hyphenates).
        let source = run(Command::new("gzip").arg("-dc").arg(page));
        let see = source.split(".SH \"SEE ALSO\"\n").nth(1).unwrap_or("").lines().next().unwrap_or("");
        let see = see.replace("\\fB", "").replace("\\fR", "").replace("\\-", "-");
        assert!(!see.is_empty(), "{} has a SEE ALSO line", page.display());
        for r in see.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let (name, sec) = r.trim_end_matches(')').split_once('(').unwrap_or_else(|| panic!("{r:?}"));
            let file = b.root.join(format!("usr/share/man/man{sec}/{name}.{sec}.gz"));
            assert!(file.is_file(), "{} refers to {r}, which is not in the package", page.display());
        }
    }
    let conf = run(Command::new("man")
        .arg("-l")
        .arg(b.root.join("usr/share/man/man5/lifeboat.toml.5.gz"))
        .env("MANWIDTH", "100"));
    for want in
        ["work_dir = \"/var/lib/lifeboat\"", "[backup.retention]", "keep_daily = 7", "unset by default", "FILES"]
    {
        assert!(conf.contains(want), "lifeboat.toml(5) shows {want}:\n{conf}");
    }
}

#[test]
fn dpkg_installs_it_into_a_root_and_remove_and_purge_leave_only_what_they_should() {
    if !common::root_or_skip("dpkg --root") {
        return;
    }
    let b = built();
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "var/log"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    for f in ["var/lib/dpkg/status", "var/lib/dpkg/available"] {
        std::fs::write(root.join(f), "").expect("dpkg db");
    }
    // Maintainer scripts run outside the root with DPKG_ROOT set (the root
    // has no shell); the dependencies are not in it.
    let dpkg = |args: &[&str]| {
        run(Command::new("dpkg")
            .arg(format!("--root={}", root.display()))
            .args(["--force-depends", "--force-script-chrootless", "--log=/dev/null"])
            .args(args))
    };
    dpkg(&["-i", b.deb.to_str().expect("utf8")]);
    assert!(root.join("usr/sbin/lifeboat").is_file() && root.join("etc/lifeboat/lifeboat.toml").is_file());
    let status = run(Command::new("dpkg-query")
        .arg(format!("--admindir={}", root.join("var/lib/dpkg").display()))
        .args(["-W", "-f", "${Status}", "lifeboat"]));
    assert_eq!(status, "install ok installed");
    // What the administrator and lifeboat add: an enabled timer, keys, a layout, logs.
    let wants = root.join("etc/systemd/system/timers.target.wants");
    std::fs::create_dir_all(&wants).expect("mkdir");
    std::os::unix::fs::symlink(
        "/usr/lib/systemd/system/lifeboat-mkbackup.timer",
        wants.join("lifeboat-mkbackup.timer"),
    )
    .expect("enable");
    std::fs::write(root.join("etc/lifeboat/signing.pub"), "key").expect("key");
    std::fs::create_dir_all(root.join("var/lib/lifeboat/log")).expect("mkdir");
    std::fs::write(root.join("var/lib/lifeboat/layout.toml"), "layout").expect("layout");
    std::fs::write(root.join("var/lib/lifeboat/log/lifeboat-2026-12-02T000000Z-1.log"), "log").expect("log");

    let files = |root: &Path| -> BTreeSet<String> {
        let out = run(Command::new("find").arg(root).args(["-not", "-type", "d", "-not", "-path", "*/var/lib/dpkg/*"]));
        out.lines().map(|l| l.trim_start_matches(&root.display().to_string()).to_string()).collect()
    };
    dpkg(&["-r", "lifeboat"]);
    let left = files(root);
    let expect: BTreeSet<String> = [
        "/etc/lifeboat/lifeboat.toml",
        "/etc/lifeboat/signing.pub",
        "/etc/systemd/system/timers.target.wants/lifeboat-mkbackup.timer",
        "/var/lib/lifeboat/layout.toml",
        "/var/lib/lifeboat/log/lifeboat-2026-12-02T000000Z-1.log",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(left, expect, "remove leaves the configuration and the data, nothing of the package");

    dpkg(&["-P", "lifeboat"]);
    let left = files(root);
    let expect: BTreeSet<String> =
        ["/etc/lifeboat/signing.pub", "/var/lib/lifeboat/layout.toml"].iter().map(|s| s.to_string()).collect();
    assert_eq!(left, expect, "purge removes the conffile, the timer links and the logs; keys and layout stay");
}
