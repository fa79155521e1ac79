//! Any text given to `Plan::parse` yields a plan or `Error::Plan`, never a
//! panic and never another error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match vmssh::plan::Plan::parse(text, "fuzz.kdl", std::path::Path::new(".")) {
            Ok(_) | Err(vmssh::Error::Plan { .. }) => {}
            Err(e) => panic!("unexpected error kind: {e:?}"),
        }
    }
});
