//! The tar stream's pax/ustar headers and GNU sparse maps, read from memory
//! as restore reads them from a backup: entries or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lifeboat_archive::read::fuzz_headers(data);
});
