//! The `bpf(2)` commands of a live capture ([`bpf_sys`]); loading a
//! program adds the verifier's reason to a refusal.

use std::os::fd::OwnedFd;

use bpf_sys::ProgLoad;
pub use bpf_sys::{
    link_create, link_update, map_create, map_freeze, map_lookup, map_update, map_update_batch,
    tracing_attach, MapSpec, BPF_F_MMAPABLE, BPF_F_XDP_HAS_FRAGS, BPF_TCX_EGRESS, BPF_TCX_INGRESS,
    BPF_TRACE_FENTRY, BPF_TRACE_FEXIT, BPF_TRACE_RAW_TP, BPF_XDP, MAP_TYPE_ARRAY,
    MAP_TYPE_ARRAY_OF_MAPS, MAP_TYPE_RINGBUF, PROG_TYPE_SCHED_CLS, PROG_TYPE_TRACING,
    PROG_TYPE_XDP,
};

/// Loads a program. On a refusal the verifier runs again with its log on,
/// and the error carries the log's last meaningful line.
pub fn prog_load(load: &ProgLoad<'_>) -> Result<OwnedFd, String> {
    // The fast path runs the verifier once, without a log.
    let first = match bpf_sys::prog_load(load, None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut log = vec![0u8; 16 << 20];
    let second = bpf_sys::prog_load(load, Some(&mut log));
    let text = bpf_sys::log_text(&log);
    save_verifier_log(&text);
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.starts_with("processed "))
        .map(str::trim);
    Err(match (second, last) {
        (Ok(_), _) => format!("{first} (the kernel accepted it with the verifier log on)"),
        (Err(e), Some(line)) => format!("{e}: verifier: {line}"),
        (Err(e), None) => e.to_string(),
    })
}

/// With `XCAP_VERIFIER_LOG=FILE` in the environment, a refused program's
/// whole verifier log goes to FILE (errors show its last line only).
pub(crate) fn save_verifier_log(text: &str) {
    if let Some(path) = std::env::var_os("XCAP_VERIFIER_LOG") {
        let _ = std::fs::write(path, text.as_bytes());
    }
}
