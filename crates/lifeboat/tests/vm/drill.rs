//! `lifeboat drill` end to end, in QEMU: the E2E's Debian 12 source system
//! (BIOS/MBR) makes its rescue medium and a backup on a backup disk
//! (`mkbackup`), then the real `lifeboat drill` boots that medium with a
//! blank disk sized from the saved layout and the backup disk read-only,
//! recovers unattended, compares the recovered files with the backup from
//! the host, boots the recovered disk alone to multi-user, and writes its
//! report, which is checked field by field. Then a drill of the same medium
//! whose catalog lost its signature fails, with the reason in the report.

use crate::common::{lifeboat, root_or_skip, sh, LoopDisk};
use lifeboat_vmtest::{boot, Boot, Firmware, Media};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// First boot of the source: make the medium and the backup, then power off
/// (the unit does); the recovered system's boot only says it is up.
const STEP_SCRIPT: &str = r#"#!/bin/sh
if [ -e /etc/lifeboat-e2e.run ]; then
  rm -f /etc/lifeboat-e2e.run; sync
  mountpoint -q /mnt/backup || mount LABEL=BACKUP /mnt/backup
  if lifeboat mkbackup > /mnt/backup/mkbackup.log 2>&1; then
    cp /etc/lifeboat/signing.pub /mnt/backup/signing.pub
    echo "E2E-MKBACKUP-OK"
  else
    tail -n 30 /mnt/backup/mkbackup.log; echo "E2E-MKBACKUP-FAILED"
  fi
  sync
else
  echo "E2E-BOOTED multi-user=$(systemctl is-active multi-user.target)"
fi
"#;

fn prepare_source(img: &Path, work: &Path) {
    let mut a = LoopDisk::attach(img, false);
    let m = work.join("prep");
    a.mount(&a.part(1), &m, "");
    let bin = m.join("usr/local/sbin/lifeboat");
    std::fs::create_dir_all(bin.parent().expect("parent")).expect("mkdir");
    // The static build when there is one, as the E2E scenarios (what `make install` installs).
    let built = crate::common::guest_lifeboat();
    sh(&format!("strip -o {} {}", bin.display(), built.display()));
    std::fs::create_dir_all(m.join("etc/lifeboat")).expect("mkdir");
    std::fs::write(
        m.join("etc/lifeboat/lifeboat.toml"),
        "[paths]\noutput_dir = \"/mnt/backup/rescue\"\n[backup]\ntarget = \"file:///mnt/backup\"\nvolume_size = \"64M\"\n\
         [mkbackup]\nmode = \"target\"\n",
    )
    .expect("config");
    std::fs::write(m.join("etc/lifeboat-e2e.sh"), STEP_SCRIPT).expect("script");
    std::fs::write(m.join("etc/lifeboat-e2e.run"), "").expect("flag");
}

fn drill(
    work: &Path,
    iso: &Path,
    layout: &Path,
    from: &str,
    backup_disk: &Path,
    report: &Path,
) -> (i32, String, String) {
    let out = lifeboat()
        .arg("--config")
        .arg(work.join("drill.toml"))
        .args(["drill", "--firmware", "bios", "--json", "--from", from])
        .arg("--medium")
        .arg(iso)
        .arg("--layout")
        .arg(layout)
        .arg("--backup-disk")
        .arg(backup_disk)
        .arg("--report")
        .arg(report)
        .output()
        .expect("run drill");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The reports, kept where a person can read them after the run (the work directory goes).
fn keep_reports(reports: &Path) {
    let keep = lifeboat_vmtest::cache_dir().join("runs/drill-reports-last");
    let _ = std::fs::create_dir_all(keep.parent().expect("parent"));
    sh(&format!("rm -rf {0} && cp -a {1} {0}", keep.display(), reports.display()));
}

#[test]
fn a_drill_of_the_bios_source_medium_passes_and_one_of_an_unsigned_backup_fails() {
    if !root_or_skip("QEMU drill") {
        return;
    }
    let tmp = tempfile::tempdir_in("/var/tmp").expect("tmp");
    let w = tmp.path();
    let src = w.join("source.img");
    sh(&format!("cp --sparse=always {} {}", crate::source_image("bookworm", "bios").display(), src.display()));
    prepare_source(&src, w);
    let backup = w.join("backup.img");
    sh(&format!("truncate -s 3G {0} && mkfs.ext4 -q -F -L BACKUP {0}", backup.display()));

    let t = Instant::now();
    let mut b = Boot::new("drill source", Firmware::Bios);
    b.nic = false;
    b.media = vec![
        Media::Disk { image: src.clone(), serial: "system".into(), read_only: false },
        Media::Disk { image: backup.clone(), serial: "backup".into(), read_only: false },
    ];
    let mut c = boot(&b).expect("boot source");
    let end = c.expect("E2E-MKBACKUP-", Duration::from_secs(1800)).expect("mkbackup finishes");
    let tr = c.transcript();
    assert!(tr[end..].starts_with("OK"), "mkbackup failed:\n{}", &tr[tr.len().saturating_sub(4000)..]);
    c.wait_poweroff(Duration::from_secs(120)).expect("source powers off");
    drop(c);
    eprintln!("source boot + mkbackup: {:.0} s", t.elapsed().as_secs_f64());

    // The medium, the saved layout, the signing key and a copy of the backup for the host's compare.
    let iso = w.join("lifeboat-source.iso");
    let layout = w.join("layout.toml");
    let copy = w.join("backup-copy");
    std::fs::create_dir_all(w.join("keys")).expect("mkdir");
    {
        let mut a = LoopDisk::attach(&backup, true);
        let m = w.join("get");
        a.mount(&a.dev.clone(), &m, "ro");
        sh(&format!("cp {}/rescue/lifeboat-source.iso {}", m.display(), iso.display()));
        sh(&format!("cp {}/signing.pub {}/keys/signing.pub", m.display(), w.display()));
        sh(&format!("cp -a {}/source {}", m.display(), copy.display()));
        let mut s = LoopDisk::attach(&src, true);
        let sm = w.join("get-layout");
        s.mount(&s.part(1), &sm, "ro");
        sh(&format!("cp {}/var/lib/lifeboat/layout.toml {}", sm.display(), layout.display()));
    }
    let made: Vec<PathBuf> = std::fs::read_dir(&copy).expect("copy").flatten().map(|e| e.path()).collect();
    assert_eq!(made.len(), 1, "one backup: {made:?}");
    let from = format!("file://{}", made[0].display());
    std::fs::write(
        w.join("drill.toml"),
        format!(
            "[paths]\nkey_dir = \"{0}/keys\"\nwork_dir = \"{0}/work\"\n[drill]\naccel = \"tcg\"\nkeep_reports = 1\n",
            w.display()
        ),
    )
    .expect("config");

    // 1. The drill passes.
    let reports = w.join("reports");
    let t = Instant::now();
    let (code, out, err) = drill(w, &iso, &layout, &from, &backup, &reports);
    let secs = t.elapsed().as_secs_f64();
    keep_reports(&reports);
    let r: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("report JSON ({e}):\n{out}\nstderr:\n{err}"));
    assert_eq!(code, 0, "the drill passes: {}\n{err}", r["reason"]);
    assert_eq!(r["format"], 1);
    assert_eq!(r["verdict"], "passed");
    assert!(r["reason"].is_null());
    assert_eq!(r["host"], "source");
    assert_eq!(r["firmware"], "bios");
    assert_eq!(r["accel"], "tcg");
    assert_eq!(r["disks"].as_array().map(Vec::len), Some(1), "the backup disk is not recreated: {}", r["disks"]);
    assert_eq!(r["disks"][0]["size"], 3u64 << 30);
    let phases: Vec<(String, f64)> = r["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .map(|p| (p["name"].as_str().unwrap_or("").to_string(), p["seconds"].as_f64().unwrap_or(-1.0)))
        .collect();
    for name in ["boot", "partitioning", "filesystems", "restore", "fix", "bootloader", "first boot"] {
        let p = phases.iter().find(|(n, _)| n == name);
        assert!(p.is_some_and(|(_, s)| *s > 0.0), "phase {name} present and timed: {phases:?}");
    }
    let rto = r["rto_seconds"].as_f64().expect("rto");
    let sum: f64 = phases.iter().map(|(_, s)| s).sum();
    assert!((rto - sum).abs() < 2.0 && rto < secs, "RTO {rto} = the phases' sum {sum}, within the drill's {secs}");
    assert_eq!(r["multi_user"]["reached"], true);
    let c = &r["comparison"];
    assert_eq!(c["done"], true);
    assert!(c["entries"].as_u64().unwrap_or(0) > 1000, "{c}");
    assert_eq!(c["differences"].as_array().map(Vec::len), Some(0), "no differences: {}", c["differences"]);
    let fss = c["filesystems"].as_array().expect("filesystems");
    assert!(fss.iter().any(|f| f["mountpoint"] == "/" && f["compared"] == true), "{fss:?}");
    assert!(fss.iter().any(|f| f["mountpoint"] == "/srv" && f["compared"] == true), "{fss:?}");
    assert!(!r["layout_before"].as_array().expect("before").is_empty());
    assert_eq!(r["layout_after"][0]["children"].as_array().map(Vec::len), Some(3), "{}", r["layout_after"]);
    let dirs: Vec<PathBuf> = std::fs::read_dir(&reports).expect("reports").flatten().map(|e| e.path()).collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let html = std::fs::read_to_string(dirs[0].join("report.html")).expect("html");
    assert!(html.contains("PASSED") && html.contains("<svg") && html.contains("measured RTO"));
    assert!(dirs[0].join("console-rescue.log").exists() && dirs[0].join("console-first-boot.log").exists());
    assert!(!dirs[0].join("disks").exists(), "the scratch disks are removed");
    let timings: String = phases.iter().map(|(n, s)| format!("  {n}: {s:.1} s\n")).collect();
    let text = format!("drill (bios, tcg): {secs:.0} s wall, RTO {rto:.0} s\n{timings}");
    eprint!("{text}");
    let _ = std::fs::write(lifeboat_vmtest::cache_dir().join("drill-timings-bios.txt"), &text);

    // 2. A backup whose catalog lost its signature (what an attacker on the
    // backup server could do): the drill fails, and says why. (Refused before
    // a disk is written: a few minutes cheaper than a volume removed, which
    // fails only at the end of the restore.)
    let broken = w.join("broken.img");
    sh(&format!("cp --sparse=always {} {}", backup.display(), broken.display()));
    {
        let mut a = LoopDisk::attach(&broken, false);
        let m = w.join("break");
        a.mount(&a.dev.clone(), &m, "");
        sh(&format!("set -e; rm {0}/source/*/backup.json.minisig; sync", m.display()));
    }
    let t = Instant::now();
    let (code, out, err) = drill(w, &iso, &layout, &from, &broken, &reports);
    keep_reports(&reports);
    let r: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("report JSON ({e}):\n{out}\nstderr:\n{err}"));
    assert_eq!(code, 1, "a drill of a broken backup fails: {out}");
    assert_eq!(r["verdict"], "failed");
    let reason = r["reason"].as_str().unwrap_or("");
    assert!(reason.starts_with("recovery failed"), "{reason}");
    assert!(r["rto_seconds"].is_null());
    let kept: Vec<PathBuf> = std::fs::read_dir(&reports).expect("reports").flatten().map(|e| e.path()).collect();
    assert_eq!(kept.len(), 1, "drill.keep_reports = 1 keeps only the newest: {kept:?}");
    eprintln!("broken backup: failed in {:.0} s: {reason}", t.elapsed().as_secs_f64());
}
