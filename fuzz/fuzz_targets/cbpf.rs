//! `cbpf` target: see `xcap_fuzzgen::check_cbpf`. The user-space VM only;
//! the replay test (`fuzzgen/tests/fuzz_replay.rs`) adds the kernel.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xcap_runner::Engine;

fuzz_target!(|data: &[u8]| {
    if let Err(report) = xcap_fuzzgen::check_cbpf(data, &[Engine::Vm]) {
        panic!("finding:\n{report}");
    }
});
