//! manifest.jsonl: any bytes are entries or an error naming the line; paths
//! unescape without panicking, and escaping round-trips any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat_archive::backup::escape_path;
use lifeboat_archive::read::{parse_manifest, unescape_path};

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = parse_manifest(data, "manifest.jsonl", 1 << 40) {
        for e in &entries {
            let _ = unescape_path(&e.path);
            if let Some(l) = &e.link {
                let _ = unescape_path(l);
            }
        }
    }
    assert_eq!(unescape_path(&escape_path(data)), data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = unescape_path(s);
    }
});
