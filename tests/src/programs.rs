//! What a capture leaves in the kernel: BPF programs still loaded that no
//! process holds.
//!
//! A running xcap holds its programs and links through file descriptors,
//! and an exited one holds nothing, so a program of xcap's that is loaded
//! and held by no process was left behind: attached by netlink, pinned, or
//! leaked. Counting programs by name alone would also count those of other
//! xcaps running on the machine at the time (a long run, another test
//! binary), which come and go as they please.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use crate::process::run_text;

/// Loaded programs whose `bpftool prog show` line names one of `names`
/// (`"name xcap_tc"`; the kernel cuts names to 15 characters): id → line.
pub fn loaded_programs(names: &[&str]) -> BTreeMap<u64, String> {
    run_text(Command::new("bpftool").args(["prog", "show"]))
        .lines()
        .filter(|l| names.iter().any(|n| l.contains(n)))
        .filter_map(|l| Some((l.split(':').next()?.trim().parse().ok()?, l.to_owned())))
        .collect()
}

/// Those of [`loaded_programs`] that no process holds.
pub fn programs_left(names: &[&str]) -> BTreeMap<u64, String> {
    let held = held_programs();
    let mut left = loaded_programs(names);
    left.retain(|id, _| !held.contains(id));
    left
}

/// Programs some process holds: the `prog_id` of every BPF program or
/// link fd, from `/proc/*/fdinfo`.
fn held_programs() -> BTreeSet<u64> {
    let mut held = BTreeSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return held;
    };
    for p in procs.flatten() {
        let Ok(fds) = std::fs::read_dir(p.path().join("fdinfo")) else {
            continue;
        };
        for fd in fds.flatten() {
            let text = std::fs::read_to_string(fd.path()).unwrap_or_default();
            held.extend(text.lines().filter_map(|l| {
                l.strip_prefix("prog_id:")
                    .and_then(|id| id.trim().parse::<u64>().ok())
            }));
        }
    }
    held
}
