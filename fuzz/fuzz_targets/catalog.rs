//! backup.json: any bytes are a checked catalog or an error naming the field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat_archive::read::{parse_catalog, Backup};

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = parse_catalog(data, "backup.json") {
        // A checked catalog is safe to use: its numbers, names and frames.
        let b = Backup::from_parts(std::sync::Arc::new(lifeboat_archive::target::DirObjects::new(std::path::Path::new("/nonexistent"))), c, Vec::new()).expect("checked twice");
        let len = b.stream_len();
        for f in &b.catalog.frames {
            assert!(f.start + f.dlen <= len);
            let name = b.volume_name(f.volume);
            assert!(!name.contains('/') && name.starts_with("vol-"), "{name}");
        }
        let mut s = lifeboat_archive::read::Stream::new(&b);
        s.seek_to(len / 2);
        let _ = lifeboat_archive::read::next_header(&mut s);
    }
});
