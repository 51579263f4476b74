//! `parsers` target: see `xcap_fuzzgen::check_parsers`. Panics and hangs
//! (libFuzzer's `-timeout`) are the findings.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(report) = xcap_fuzzgen::check_parsers(data) {
        panic!("finding:\n{report}");
    }
});
