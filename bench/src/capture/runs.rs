//! One run: attach the setup, start the tool, run the generator, measure
//! a window after the warm-up, then the whole run's counters.

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::cpu::{cpu_sample, ns_per_tick, other_delta, other_ticks, our_task_ns};
use super::netns::{Counters, Netns, CAP_IF};
use super::setups::{attach, capture_cmd, detach, Objects, Setup};
use super::shell::sh;
use super::tool::{Tool, ToolStats};
use super::traffic::{trafgen_conf, Generator};

/// From the generator's exit to the closing counters: longer than
/// tcpdump's 1 s buffer timeout (TPACKET_V3 hands over a partly filled
/// block only when it expires) and xcap's 50 ms poll.
pub(super) const DRAIN: Duration = Duration::from_millis(1200);

/// What one run measured.
#[derive(Clone)]
pub(super) struct Run {
    // The window.
    pub(super) secs: f64,
    pub(super) busy_ticks: u64,
    /// Frames the receiving veth processed in the window.
    pub(super) rx_window: u64,
    /// Busy share of each CPU in the window.
    pub(super) cpu_busy: Vec<f64>,
    pub(super) steal_ticks: u64,
    pub(super) other_ticks: u64,
    /// [`our_task_ns`] over the window.
    pub(super) task_ns: u64,
    pub(super) ncpu: usize,
    // The whole run.
    /// trafgen's own count of frames sent.
    pub(super) sent: Option<u64>,
    pub(super) whole: Counters,
    pub(super) tool: Option<ToolStats>,
    /// Matching frames per `every` sent.
    pub(super) every: u64,
    /// With [`Plan::prog_stats`]: runs of the setup's BPF programs in the
    /// window and their summed run time (ns), from the kernel's statistics.
    pub(super) prog: Option<(u64, u64)>,
}

impl Run {
    pub(super) fn ns_per_packet(&self) -> f64 {
        self.busy_ticks as f64 * ns_per_tick() / self.rx_window.max(1) as f64
    }
    pub(super) fn task_ns_per_packet(&self) -> f64 {
        self.task_ns as f64 / self.rx_window.max(1) as f64
    }
    pub(super) fn kpps(&self) -> f64 {
        self.rx_window as f64 / self.secs / 1e3
    }
    /// Other processes' share of all CPU time in the window.
    pub(super) fn other_share(&self) -> f64 {
        let all = self.secs * 1e9 / ns_per_tick() * self.ncpu as f64;
        self.other_ticks as f64 / all
    }
    pub(super) fn steal_share(&self) -> f64 {
        let all = self.secs * 1e9 / ns_per_tick() * self.ncpu as f64;
        self.steal_ticks as f64 / all
    }
    /// Frames lost between trafgen and the receiving veth.
    pub(super) fn lost_before_hook(&self) -> Option<u64> {
        Some(self.sent?.saturating_sub(self.whole.rx_packets))
    }
    /// Matching frames that reached the hook: every frame at 100%; at 1%
    /// ceil(frames / 100), exact when no frame was lost on the way (trafgen
    /// sends round robin from the matching frame).
    pub(super) fn matching_at_hook(&self) -> u64 {
        self.whole.rx_packets.div_ceil(self.every)
    }
    /// captured + dropped == received by filter == matching at the hook.
    pub(super) fn exact(&self) -> Option<bool> {
        let t = self.tool?;
        Some(t.captured + t.dropped == t.received && t.received == self.matching_at_hook())
    }
}

pub(super) struct Plan<'a> {
    pub(super) setup: &'a Setup,
    pub(super) every: usize,
    pub(super) rate: Option<u64>,
    /// Turn the kernel's BPF run-time statistics on for the window (they
    /// cost every BPF program two clock reads, so only in their own runs).
    pub(super) prog_stats: bool,
    /// The generator runs `warmup`, then the window opens for `window`.
    pub(super) warmup: Duration,
    pub(super) window: Duration,
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

/// `BPF_ENABLE_STATS(BPF_STATS_RUN_TIME)`: statistics stay on while the
/// returned fd is open.
fn enable_bpf_stats() -> Result<OwnedFd> {
    let attr: [u32; 4] = [0, 0, 0, 0];
    // SAFETY: attr is a zeroed bpf_attr prefix (enable_stats.type = 0).
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 32, attr.as_ptr(), 16u32) };
    if fd < 0 {
        bail!("BPF_ENABLE_STATS: {}", std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

pub(super) fn run_one(n: &mut Netns, p: &Plan, objs: &Objects) -> Result<Run> {
    attach(n, p.setup, objs)?;
    let r = run_attached(n, p);
    let d = detach(n, p.setup);
    let r = r?;
    d?;
    Ok(r)
}

fn run_attached(n: &mut Netns, p: &Plan) -> Result<Run> {
    let tool = match capture_cmd(p.setup) {
        Some(cmd) => Some(Tool::start(&n.cap, &cmd)?),
        None => None,
    };
    let conf =
        std::env::temp_dir().join(format!("xcap-bench-{}-{}.cfg", std::process::id(), p.every));
    std::fs::write(&conf, trafgen_conf(p.every))?;
    let mut inner = || -> Result<Run> {
        let a = n.counters()?;
        let gen = Generator::start(&n.gen, &conf, p.rate)?;
        let mut prog = None;
        let window = (|| -> Result<_> {
            std::thread::sleep(p.warmup);
            let stats_on = p.prog_stats.then(enable_bpf_stats).transpose()?;
            let progs0 = if p.prog_stats {
                prog_runtimes()?
            } else {
                HashMap::new()
            };
            let o0 = other_ticks();
            let (k0, c0, w0, t0) = (
                our_task_ns(),
                cpu_sample()?,
                n.cap_view.dev(CAP_IF)?[0],
                Instant::now(),
            );
            std::thread::sleep(p.window);
            // Same order as at the opening, so the three windows have the
            // same length.
            let (k1, c1, w1, secs) = (
                our_task_ns(),
                cpu_sample()?,
                n.cap_view.dev(CAP_IF)?[0],
                t0.elapsed().as_secs_f64(),
            );
            let o1 = other_ticks();
            if let Some(on) = stats_on {
                let progs1 = prog_runtimes()?;
                drop(on);
                let (mut runs, mut ns) = (0, 0);
                for (id, (r1, t1)) in progs1 {
                    let (r0, t0) = progs0.get(&id).copied().unwrap_or((0, 0));
                    runs += r1.saturating_sub(r0);
                    ns += t1.saturating_sub(t0);
                }
                prog = Some((runs, ns));
            }
            Ok((o0, o1, c0, c1, w0, w1, secs, k1.saturating_sub(k0)))
        })();
        let sent = gen.stop();
        let (o0, o1, c0, c1, w0, w1, secs, task_ns) = window?;
        let sent = sent?;
        // Let the tool drain what is in its buffers before the counters
        // close the run.
        std::thread::sleep(DRAIN);
        let b = n.counters()?;
        let cpu_busy = c1
            .busy
            .iter()
            .zip(&c0.busy)
            .zip(c1.all.iter().zip(&c0.all))
            .map(|((b1, b0), (a1, a0))| (b1 - b0) as f64 / (a1 - a0).max(1) as f64)
            .collect();
        Ok(Run {
            secs,
            busy_ticks: c1.busy.iter().sum::<u64>() - c0.busy.iter().sum::<u64>(),
            rx_window: w1 - w0,
            cpu_busy,
            steal_ticks: c1.steal - c0.steal,
            other_ticks: other_delta(&o0, &o1),
            task_ns,
            ncpu: c1.busy.len(),
            sent,
            whole: b.delta(&a),
            tool: None,
            every: p.every as u64,
            prog,
        })
    };
    let r = inner();
    let _ = std::fs::remove_file(&conf);
    // The tool is stopped whatever happened.
    let stats = tool.map(Tool::stop);
    let mut run = r?;
    if let Some(st) = stats {
        run.tool = st?;
        if run.tool.is_none() {
            bail!("the capture tool printed no counters");
        }
    }
    Ok(run)
}
