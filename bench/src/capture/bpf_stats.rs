//! The kernel's BPF run-time statistics of the setups' programs over a
//! window (the own-cost phase). They cost every BPF program two clock
//! reads, so they are on only in their own runs.

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use anyhow::{Context, Result};

use super::shell::sh;

/// The kernel's BPF run-time statistics, on from `start` to `finish`.
pub(super) struct BpfStats {
    on: OwnedFd,
    before: HashMap<u64, (u64, u64)>,
}

impl BpfStats {
    pub(super) fn start() -> Result<BpfStats> {
        let on = bpf_sys::enable_run_time_stats().context("BPF_ENABLE_STATS")?;
        let before = prog_runtimes()?;
        Ok(BpfStats { on, before })
    }

    /// Runs of the setup's programs since `start` and their summed run
    /// time (ns); the statistics go off.
    pub(super) fn finish(self) -> Result<(u64, u64)> {
        let after = prog_runtimes()?;
        drop(self.on);
        let (mut runs, mut ns) = (0, 0);
        for (id, (r1, t1)) in after {
            let (r0, t0) = self.before.get(&id).copied().unwrap_or((0, 0));
            runs += r1.saturating_sub(r0);
            ns += t1.saturating_sub(t0);
        }
        Ok((runs, ns))
    }
}

/// The programs the setups attach, by the names the kernel knows.
const PROG_NAMES: [&str; 8] = [
    "xcap_xdp",
    "xcap_tc",
    "xcap_tc_egress",
    "xdp_pass",
    "xdp_pass_frags",
    "tc_pass",
    "xdp_udp_port_9",
    "tc_udp_port_9",
];

/// (runs, run time in ns) summed over the loaded programs named in
/// [`PROG_NAMES`], per program id.
fn prog_runtimes() -> Result<HashMap<u64, (u64, u64)>> {
    let out = sh(&["bpftool", "prog", "show", "--json"])?;
    let v: serde_json::Value = serde_json::from_str(&out).context("bpftool's JSON")?;
    let mut m = HashMap::new();
    for p in v.as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or("");
        if PROG_NAMES.contains(&name) {
            let id = p["id"].as_u64().unwrap_or(0);
            let runs = p["run_cnt"].as_u64().unwrap_or(0);
            let ns = p["run_time_ns"].as_u64().unwrap_or(0);
            m.insert(id, (runs, ns));
        }
    }
    Ok(m)
}
