//! One run: the setup attached, the tool listening, the generator
//! started; a window measured after the warm-up; then, after the
//! generator has stopped and the tool has drained, the whole run's
//! counters.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::bpf_stats::BpfStats;
use super::cpu::{cpu_sample, ns_per_tick, other_delta, other_ticks, our_task_ns, CpuSample};
use super::netns::{Counters, Netns, CAP_IF};
use super::setups::{attach, capture_cmd, detach, Objects, Setup};
use super::tool::{Tool, ToolStats};
use super::traffic::{trafgen_conf, Generator};
use crate::stats::median_min_max;

/// From the generator's exit to the closing counters: longer than
/// tcpdump's 1 s buffer timeout (TPACKET_V3 hands over a partly filled
/// block only when it expires) and xcap's 50 ms poll.
pub(super) const DRAIN: Duration = Duration::from_millis(1200);

/// A measurement, or why it failed (the text of its table cell).
pub(super) type Measured<T> = std::result::Result<T, String>;

/// A failure as a table cell: one line, no `|`.
pub(super) fn cell(e: &anyhow::Error) -> String {
    format!("failed: {e:#}")
        .replace('|', "/")
        .replace('\n', " ")
}

/// A per-run figure.
pub(super) type Metric = fn(&Run) -> f64;

/// Median, min and max of `f` over `runs`.
pub(super) fn median_min_max_of(runs: &[Run], f: impl Fn(&Run) -> f64) -> (f64, f64, f64) {
    median_min_max(runs.iter().map(f).collect())
}

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
    fn new(w: Window, sent: Option<u64>, whole: Counters, every: usize) -> Run {
        let (c0, c1) = (&w.open.cpu, &w.close.cpu);
        let cpu_busy = c1
            .busy
            .iter()
            .zip(&c0.busy)
            .zip(c1.all.iter().zip(&c0.all))
            .map(|((b1, b0), (a1, a0))| (b1 - b0) as f64 / (a1 - a0).max(1) as f64)
            .collect();
        Run {
            secs: w.close.at.duration_since(w.open.at).as_secs_f64(),
            busy_ticks: c1.busy.iter().sum::<u64>() - c0.busy.iter().sum::<u64>(),
            rx_window: w.close.rx - w.open.rx,
            cpu_busy,
            steal_ticks: c1.steal - c0.steal,
            other_ticks: w.other_ticks,
            task_ns: w.close.task_ns.saturating_sub(w.open.task_ns),
            ncpu: c1.busy.len(),
            sent,
            whole,
            tool: None,
            every: every as u64,
            prog: w.prog,
        }
    }

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

    /// One line for the log.
    pub(super) fn summary(&self) -> String {
        format!(
            "{:.0} kpps, {:.0} ns/packet (/proc/stat), {:.0} ns/packet (tasks), busy {}, other {:.2}%, steal {:.2}%{}",
            self.kpps(),
            self.ns_per_packet(),
            self.task_ns_per_packet(),
            self.cpu_busy
                .iter()
                .map(|b| format!("{:.0}%", b * 100.0))
                .collect::<Vec<_>>()
                .join("/"),
            self.other_share() * 100.0,
            self.steal_share() * 100.0,
            self.tool.map_or(String::new(), |t| format!(
                ", {} captured, {} received, {} dropped, {} reached",
                t.captured, t.received, t.dropped, self.whole.rx_packets
            ))
        )
    }
}

/// What one run runs: the setup, the traffic and the window.
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

/// Attaches the setup, runs, detaches (also after a failed run).
pub(super) fn run_one(n: &mut Netns, p: &Plan, objs: &Objects) -> Result<Run> {
    attach(n, p.setup, objs)?;
    let r = run_attached(n, p);
    let d = detach(n, p.setup);
    let r = r?;
    d?;
    Ok(r)
}

/// With the setup attached: the tool started and listening, the traffic,
/// then the tool's counters. The tool is stopped whatever happened.
fn run_attached(n: &mut Netns, p: &Plan) -> Result<Run> {
    let tool = match capture_cmd(p.setup) {
        Some(cmd) => Some(Tool::start(&n.cap, &cmd)?),
        None => None,
    };
    let conf = conf_path(p.every);
    std::fs::write(&conf, trafgen_conf(p.every))?;
    let r = run_traffic(n, p, &conf);
    let _ = std::fs::remove_file(&conf);
    let counters = tool.map(Tool::stop);
    let mut run = r?;
    if let Some(c) = counters {
        run.tool = c?;
        if run.tool.is_none() {
            bail!("the capture tool printed no counters");
        }
    }
    Ok(run)
}

fn conf_path(every: usize) -> PathBuf {
    std::env::temp_dir().join(format!("xcap-bench-{}-{every}.cfg", std::process::id()))
}

/// The generator running around the window (stopped whatever the window
/// did), then the drain and the whole run's counters.
fn run_traffic(n: &mut Netns, p: &Plan, conf: &Path) -> Result<Run> {
    let before = n.counters()?;
    let gen = Generator::start(&n.gen, conf, p.rate)?;
    let window = Window::measure(n, p);
    let sent = gen.stop();
    let window = window?;
    let sent = sent?;
    // Let the tool drain what is in its buffers before the counters
    // close the run.
    std::thread::sleep(DRAIN);
    let after = n.counters()?;
    Ok(Run::new(window, sent, after.delta(&before), p.every))
}

/// What the window measured.
struct Window {
    open: Edge,
    close: Edge,
    /// Ticks of other processes in the window.
    other_ticks: u64,
    /// With [`Plan::prog_stats`]: the programs' runs and run time (ns).
    prog: Option<(u64, u64)>,
}

impl Window {
    /// Waits out the warm-up, then measures a window of `p.window`.
    fn measure(n: &mut Netns, p: &Plan) -> Result<Window> {
        std::thread::sleep(p.warmup);
        let bpf_stats = if p.prog_stats {
            Some(BpfStats::start()?)
        } else {
            None
        };
        let other0 = other_ticks();
        let open = Edge::read(n)?;
        std::thread::sleep(p.window);
        let close = Edge::read(n)?;
        let other1 = other_ticks();
        let prog = bpf_stats.map(BpfStats::finish).transpose()?;
        Ok(Window {
            open,
            close,
            other_ticks: other_delta(&other0, &other1),
            prog,
        })
    }
}

/// The readings at one edge of the window. Both edges read them in the
/// same order, so the task, CPU and frame windows have the same length.
struct Edge {
    task_ns: u64,
    cpu: CpuSample,
    /// The receiving veth's rx_packets.
    rx: u64,
    at: Instant,
}

impl Edge {
    fn read(n: &mut Netns) -> Result<Edge> {
        Ok(Edge {
            task_ns: our_task_ns(),
            cpu: cpu_sample()?,
            rx: n.cap_view.dev(CAP_IF)?[0],
            at: Instant::now(),
        })
    }
}
