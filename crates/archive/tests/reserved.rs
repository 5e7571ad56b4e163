//! lifeboat's own entries (`.lifeboat/`, the images of foreign partitions):
//! stored from a staging directory after the tree, verified like any file,
//! left out of a restored tree and of compare, restored when a pattern
//! names them, and read back whole (holes included) by `read_entry`.

#![allow(clippy::unwrap_used)]

use lifeboat_archive::backup::{is_reserved, write_backup};
use lifeboat_archive::frames::Codec;
use lifeboat_archive::read::Backup;
use lifeboat_archive::restore::{read_entry, restore, verify};
use lifeboat_archive::BackupOptions;
use std::os::unix::fs::FileExt;

#[test]
fn images_are_stored_verified_kept_out_of_the_tree_and_read_back_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, stage, out) = (tmp.path().join("root"), tmp.path().join("stage"), tmp.path().join("backup"));
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hostname"), "h\n").unwrap();
    std::fs::create_dir_all(stage.join(".lifeboat/images")).unwrap();
    // A sparse image: data at the start and near the end of 8 MiB.
    let img = stage.join(".lifeboat/images/sda3.img");
    let f = std::fs::File::create(&img).unwrap();
    f.write_all_at(b"start of the image", 0).unwrap();
    f.write_all_at(b"end", (8 << 20) - 3).unwrap();
    drop(f);
    std::fs::create_dir_all(&out).unwrap();
    let opts = BackupOptions {
        root: root.clone(),
        paths: vec![".".into()],
        exclude: Vec::new(),
        volume_size: 1 << 20,
        codec: Codec::Zstd(1),
        exclude_dirs: Vec::new(),
        read_from: Vec::new(),
        reserved: Some(stage.clone()),
    };
    write_backup(&out, &opts, "h", &mut |_, _| {}).unwrap();
    let b = Backup::open(&out).unwrap();
    let m = b.entries.iter().find(|m| m.path == ".lifeboat/images/sda3.img").expect("the image is an entry");
    assert!(m.sparse && m.size == 8 << 20 && m.blake3.is_some(), "{m:?}");
    assert!(verify(&b).ok(), "verify covers it");
    assert!(is_reserved(".lifeboat") && is_reserved(".lifeboat/images/x.img") && !is_reserved(".lifeboatx"));

    let to = tmp.path().join("restored");
    std::fs::create_dir_all(&to).unwrap();
    restore(&b, &to, &[]).unwrap();
    assert!(to.join("etc/hostname").is_file() && !to.join(".lifeboat").exists(), "not part of the tree");
    assert!(lifeboat_archive::compare::compare(&b, &root).is_empty(), "compare leaves it out");
    let named = tmp.path().join("named");
    std::fs::create_dir_all(&named).unwrap();
    restore(&b, &named, &[".lifeboat/images/sda3.img".into()]).unwrap();
    assert_eq!(std::fs::read(named.join(".lifeboat/images/sda3.img")).unwrap(), std::fs::read(&img).unwrap());

    let mut got = vec![0u8; 8 << 20];
    let size = read_entry(&b, ".lifeboat/images/sda3.img", &mut |off, data| {
        got[off as usize..off as usize + data.len()].copy_from_slice(data);
        Ok(())
    })
    .unwrap();
    assert_eq!(size, 8 << 20);
    assert_eq!(got, std::fs::read(&img).unwrap());
    let e = read_entry(&b, ".lifeboat/images/none.img", &mut |_, _| Ok(())).unwrap_err();
    assert!(e.contains("not in the backup"), "{e}");
    let e = read_entry(&b, "etc", &mut |_, _| Ok(())).unwrap_err();
    assert!(e.contains("not a file"), "{e}");
}
