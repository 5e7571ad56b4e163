//! A GNU sparse 1.0 map, checked against the real and stored size that its
//! header gave: segments that are ordered, inside the file, or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let real = u64::from_le_bytes(data[..8].try_into().unwrap_or_default());
    let stored = u64::from_le_bytes(data[8..16].try_into().unwrap_or_default());
    if let Ok((segs, map)) = lifeboat_archive::read::fuzz_sparse_map(&data[16..], real, stored) {
        let mut end = 0;
        for (off, len) in &segs {
            assert!(*off >= end && off + len <= real);
            end = off + len;
        }
        assert_eq!(map + segs.iter().map(|(_, l)| l).sum::<u64>(), stored);
    }
});
