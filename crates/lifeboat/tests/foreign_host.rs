//! Foreign partitions on loop devices: a GPT disk with an ext4 root, an
//! NTFS partition made by mkntfs (files put in with ntfscp, one of them
//! multi-MiB random data) and a partition of a type no tool knows, filled
//! with a pattern. The layout records the two as images, the backup stores
//! them (and verify checks them), and `recover --map` onto a blank larger
//! disk writes them back: the NTFS files read back identical (ntfscat, no
//! kernel NTFS driver needed) and the raw partition's bytes are equal.

mod common;

use common::tree::{differences, snapshot};
use common::{config, root_or_skip, run_lifeboat, sh, LoopDisk};
use lifeboat_layout::model::ImageKind;
use lifeboat_layout::Layout;

const MIB: u64 = 1 << 20;
/// A partition type GUID no tool knows (a vendor's).
const VENDOR_TYPE: &str = "6A945A3B-1DD2-11B2-99A6-080020736631";
const NTFS_TYPE: &str = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7";

/// Unmounts everything below a directory however the test ends (before the loop devices go).
struct UnmountAll(std::path::PathBuf);

impl Drop for UnmountAll {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-R").arg(&self.0).output();
    }
}

/// The sha256 of the first `bytes` bytes of a device.
fn sha_of(dev: &str, bytes: u64) -> String {
    sh(&format!("head -c {bytes} {dev} | sha256sum")).split_whitespace().next().unwrap_or_default().to_string()
}

/// The sha256 of a file on an NTFS volume, read with ntfscat.
fn ntfs_sha(dev: &str, file: &str) -> String {
    sh(&format!("ntfscat {dev} {file} | sha256sum")).split_whitespace().next().unwrap_or_default().to_string()
}

#[test]
fn ntfs_and_raw_partitions_are_saved_as_images_and_written_back() {
    if !root_or_skip("foreign partitions on loop devices") {
        return;
    }
    for tool in ["mkntfs", "ntfscp", "ntfscat", "ntfsclone"] {
        assert!(
            lifeboat_runner::which(tool).is_some(),
            "{tool} is missing: apt-get install ntfs-3g (make deps installs it)"
        );
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let src = dir.join("src");
    let mut a = LoopDisk::new(dir, "src", 256 * MIB);
    a.partition(&format!(
        "label: gpt\n\
         start=2048, size=131072, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root\n\
         start=133120, size=131072, type={NTFS_TYPE}, name=windata\n\
         start=264192, size=32768, type={VENDOR_TYPE}, name=vendor"
    ));
    let (ntfs, raw) = (a.part(2), a.part(3));
    sh(&format!("mkfs.ext4 -q -F -L root {}", a.part(1)));
    sh(&format!("mkntfs -Q -F -L WINDATA {ntfs} >/dev/null"));
    let files = dir.join("files");
    std::fs::create_dir_all(&files).expect("mkdir");
    sh(&format!(
        "set -e; cd {0}; head -c 6000000 /dev/urandom > big.bin; seq 1 20000 > numbers.txt; echo 'hello, windows' > hello.txt",
        files.display()
    ));
    for f in ["big.bin", "numbers.txt", "hello.txt"] {
        sh(&format!("ntfscp -f {ntfs} {} {f}", files.join(f).display()));
    }
    let ntfs_before: Vec<String> = ["big.bin", "numbers.txt", "hello.txt"].iter().map(|f| ntfs_sha(&ntfs, f)).collect();
    // The vendor partition: a pattern, zeros, and a marker near its end (no signature blkid knows).
    sh(&format!(
        "set -e; {{ yes lifeboat-vendor-data || true; }} | head -c 3000000 | dd of={raw} conv=notrunc status=none; \
         printf 'the end of the vendor partition' | dd of={raw} bs=1 seek=15000000 conv=notrunc status=none"
    ));
    let raw_bytes = 32768 * 512;
    let raw_before = sha_of(&raw, raw_bytes);
    a.mount(&a.part(1), &src, "");
    sh(&format!("set -e; cd {0}; mkdir -p etc srv; echo root > etc/hostname; seq 1 5000 > srv/data", src.display()));
    let before = snapshot(&src);

    let cfg = config(
        dir,
        &format!(
            "[recover]\nregenerate_initramfs = false\nbootloader = false\n[backup]\nvolume_size = \"8M\"\nimage_devices = [\"{ntfs}\", \"{raw}\"]\n"
        ),
    );
    let cfg = cfg.to_str().expect("utf8");
    let layout_file = dir.join("layout.toml");
    let (code, out, err) =
        run_lifeboat(&["--config", cfg, "layout", "save", "-o", layout_file.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{out}{err}");
    // Mount points below `src` as on a real system.
    let text = std::fs::read_to_string(&layout_file).expect("layout");
    let s = src.display().to_string();
    std::fs::write(&layout_file, text.replace(&format!("\"{s}\""), "\"/\"")).expect("write layout");
    let text = std::fs::read_to_string(&layout_file).expect("layout");
    assert!(text.contains("[[image]]") && text.contains("kind = \"ntfs\""), "readable in the layout file:\n{text}");
    let layout = Layout::load(&layout_file).expect("layout");
    let kinds: Vec<(String, ImageKind)> = layout.images.iter().map(|i| (i.device.clone(), i.kind)).collect();
    assert!(kinds.contains(&(ntfs.clone(), ImageKind::Ntfs)), "{kinds:?}");
    assert!(kinds.contains(&(raw.clone(), ImageKind::Raw)), "{kinds:?}");
    assert!(!kinds.iter().any(|(d, _)| *d == a.part(1)), "ext4 is recreated, not imaged: {kinds:?}");
    let ntfs_image = layout.image_of(&ntfs).expect("ntfs image");
    assert_eq!((ntfs_image.label.as_deref(), ntfs_image.size), (Some("WINDATA"), 64 * MIB));

    std::fs::create_dir_all(dir.join("backups")).expect("mkdir");
    let bk = format!("file://{}/backups", dir.display());
    let t0 = std::time::Instant::now();
    let (code, out, err) =
        run_lifeboat(&["--config", cfg, "backup", "--target", &bk, "--root", src.to_str().expect("utf8"), "."]);
    assert_eq!(code, 0, "backup: {out}{err}");
    eprintln!("backup with two images: {:.1}s", t0.elapsed().as_secs_f64());
    let staged = std::fs::read_dir(dir.join("work"))
        .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("images.")))
        .unwrap_or(false);
    assert!(!staged, "the staged images are removed");
    let (code, out, err) = run_lifeboat(&["--config", cfg, "verify", "--from", &bk]);
    assert_eq!(code, 0, "verify covers the images: {out}{err}");
    let manifest = sh(&format!("cat {}/backups/*/*/manifest.jsonl", dir.display()));
    let name = |dev: &str| dev.rsplit('/').next().unwrap_or_default().to_string();
    for dev in [&ntfs, &raw] {
        assert!(manifest.contains(&format!(".lifeboat/images/{}.img", name(dev))), "{dev} in the backup");
    }
    let old = a.dev.clone();
    drop(a);

    // A blank, larger disk.
    let t = LoopDisk::new(dir, "target", 320 * MIB);
    let root = dir.join("recovered");
    let _unmount = UnmountAll(root.clone());
    let base = [
        "--config",
        cfg,
        "recover",
        "--layout",
        layout_file.to_str().expect("utf8"),
        "--from",
        &bk,
        "--map",
        &format!("{old}={}", t.dev),
        "--root",
        root.to_str().expect("utf8"),
    ];
    let (code, out, err) = run_lifeboat(&[&base[..], &["--plan"]].concat());
    assert_eq!(code, 0, "plan: {out}{err}");
    assert!(out.contains("write the ntfs image") && out.contains("ntfsclone"), "the plan shows the step:\n{out}");
    assert!(out.contains("write the raw image"), "{out}");
    let t1 = std::time::Instant::now();
    let (code, out, err) = run_lifeboat(&[&base[..], &["--yes", "--keep-mounted"]].concat());
    assert_eq!(code, 0, "recover: {out}{err}");
    eprintln!("recovery with two images: {:.1}s", t1.elapsed().as_secs_f64());
    let (new_ntfs, new_raw) = (t.part(2), t.part(3));
    let ntfs_after: Vec<String> =
        ["big.bin", "numbers.txt", "hello.txt"].iter().map(|f| ntfs_sha(&new_ntfs, f)).collect();
    assert_eq!(ntfs_after, ntfs_before, "the NTFS files read back identical");
    assert_eq!(sh(&format!("ntfscat {new_ntfs} hello.txt")), "hello, windows\n");
    let label = sh(&format!("blkid -p -o value -s LABEL {new_ntfs}"));
    assert_eq!(label.trim(), "WINDATA");
    assert_eq!(sha_of(&new_raw, raw_bytes), raw_before, "the raw partition's bytes are equal");
    assert_eq!(sh(&format!("blockdev --getsize64 {new_raw}")).trim(), raw_bytes.to_string(), "kept its size");
    let diffs: Vec<String> =
        differences(&before, &snapshot(&root)).into_iter().filter(|d| !d.starts_with("extra: var")).collect();
    assert!(diffs.is_empty(), "the root restored:\n{}", diffs.join("\n"));
    assert!(!root.join(".lifeboat").exists(), "the images are not restored into the tree");
    drop(_unmount);
}
