//! `lifeboat burn` onto loop devices standing in for USB sticks: the image
//! is written and read back; mounted, too small and unconfirmed targets are
//! refused and left untouched.

mod common;

use common::{config, root_or_skip, run_lifeboat, sh, LoopDisk};

const MIB: u64 = 1 << 20;

fn image(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("lifeboat-test.iso");
    sh(&format!("head -c {} /dev/urandom > {}", 10 * MIB, p.display()));
    p
}

#[test]
fn burn_writes_and_verifies_a_usb_stick() {
    if !root_or_skip("loop devices") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let img = image(tmp.path());
    let stick = LoopDisk::new(tmp.path(), "stick", 32 * MIB);
    let cfg = config(tmp.path(), "");
    let (code, out, err) = run_lifeboat(&[
        "--config",
        cfg.to_str().expect("utf8"),
        "burn",
        "--device",
        &stick.dev,
        "--yes",
        img.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("plan: erase {}", stick.dev)), "{out}");
    assert!(out.contains("read back and verified"), "{out}");
    sh(&format!("cmp -n {} {} {}", 10 * MIB, img.display(), stick.dev));
    // --json: the result as one object on stdout; -q: nothing at all.
    let c = cfg.to_str().expect("utf8");
    let i = img.to_str().expect("utf8");
    let (code, out, err) = run_lifeboat(&["--config", c, "--json", "burn", "--device", &stick.dev, "--yes", i]);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (v["written"].as_bool(), v["verified"].as_bool(), v["kind"].as_str()),
        (Some(true), Some(true), Some("disk"))
    );
    assert_eq!(v["bytes"], 10 * MIB);
    let (code, out, err) = run_lifeboat(&["--config", c, "-q", "burn", "--device", &stick.dev, "--yes", i]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
}

#[test]
fn burn_refuses_mounted_small_and_unconfirmed_devices() {
    if !root_or_skip("loop devices") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let img = image(tmp.path());
    let cfg = config(tmp.path(), "");
    let cfg = cfg.to_str().expect("utf8");
    let img = img.to_str().expect("utf8");

    let mut mounted = LoopDisk::new(tmp.path(), "mounted", 64 * MIB);
    sh(&format!("mkfs.ext4 -q {}", mounted.dev));
    let dev = mounted.dev.clone();
    mounted.mount(&dev, &tmp.path().join("mnt"), "");
    let (code, _, err) = run_lifeboat(&["--config", cfg, "burn", "--device", &dev, "--yes", img]);
    assert_eq!(code, 2);
    assert!(err.contains(&format!("{dev} is mounted on")), "{err}");

    let small = LoopDisk::new(tmp.path(), "small", 4 * MIB);
    let (code, _, err) = run_lifeboat(&["--config", cfg, "burn", "--device", &small.dev, "--yes", img]);
    assert_eq!(code, 2);
    assert!(err.contains("use a larger stick"), "{err}");

    let blank = LoopDisk::new(tmp.path(), "blank", 32 * MIB);
    let (code, _, err) = run_lifeboat(&["--config", cfg, "burn", "--device", &blank.dev, img]);
    assert_eq!(code, 2);
    assert!(err.contains("without confirmation") && err.contains("--yes"), "{err}");
    let zeros = sh(&format!("cmp -n {} {} /dev/zero && echo untouched", 32 * MIB, blank.dev));
    assert!(zeros.contains("untouched"));

    let (code, _, err) = run_lifeboat(&["--config", cfg, "burn", "--device", "/dev/nonexistent", "--yes", img]);
    assert_eq!(code, 2);
    assert!(err.contains("/dev/nonexistent"), "{err}");
}
