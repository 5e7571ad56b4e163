//! The layout file reader: any text is a layout or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lifeboat_layout::Layout::parse(text, std::path::Path::new("layout.toml"));
    }
});
