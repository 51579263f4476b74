//! Section 2: capture overhead.
//!
//! A veth pair between two private network namespaces (`xbg<pid>` sends
//! with trafgen, `xbc<pid>` receives and captures). 72-byte UDP frames, 1%
//! or 100% of them matching the filter, sent by one trafgen worker either
//! at its maximum rate (PACKET_MMAP) or at a fixed offered rate (`-b`).
//!
//! Each run measures:
//! - over a fixed window after a warm-up: busy CPU time of all cores from
//!   /proc/stat (everything but idle and iowait) divided by the frames the
//!   receiving veth processed in the window (its rx_packets), the per-core
//!   busy share, and the CPU time of processes that are neither ours nor
//!   kernel threads (a gate: runs disturbed by other work are repeated,
//!   never corrected);
//! - over the whole run (tool started and listening before the generator
//!   starts; counters read after the generator has exited and the tool has
//!   had time to drain): every stage a frame passes, from trafgen's own
//!   count to the tool's three counter lines, so a lost frame is found where
//!   it was lost.

mod cpu;
mod ethtool;
mod isolated;
mod netns;
mod own_cost;
mod runs;
mod setups;
mod shell;
mod tool;
mod traffic;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use cpu::wait_quiet;
use netns::{Netns, CAP_IF};
use own_cost::{own_cost_groups, OwnCosts, OWN_COST_WARMUP};
use runs::{run_one, Plan, Run, DRAIN};
use setups::{capture_cmd, Objects, Setup, FILTER, FILTER_NONE, SNAPLEN};
use tool::{Tool, ToolStats};
use traffic::{frame, pct, ONE_PCT};

use crate::stats::{median_min_max, median_ms};

/// The fixed offered rate unless `--rate` says otherwise (lowered when a
/// setup's maximum throughput is not comfortably above it).
const DEFAULT_RATE: u64 = 150_000;

pub struct Config {
    /// Measurement window per run.
    pub window: Duration,
    /// Generator running before the window opens.
    pub warmup: Duration,
    /// Runs per (setup, matching, rate); the report gives the median and
    /// the spread.
    pub runs: usize,
    /// Fixed offered rate in packets/s; `None`: `DEFAULT_RATE`, lowered
    /// to 60% of the slowest setup's maximum throughput if that is less.
    pub rate: Option<u64>,
    pub xcap: Option<PathBuf>,
    pub startup_runs: usize,
    /// bench/c, for pass.c.
    pub c_dir: PathBuf,
    /// A run whose window saw more than this share of the machine's CPU
    /// time spent by other processes is repeated once.
    pub max_other_share: f64,
    /// Only the setups whose names contain one of these (for trying the
    /// method out; the report is then partial).
    pub only: Option<Vec<String>>,
    /// Rounds of the own-cost phase (BPF statistics, each setup next to
    /// its bare program) and the window of each run.
    pub prog_rounds: usize,
    pub prog_window: Duration,
}

/// A per-run figure.
type Metric = fn(&Run) -> f64;

/// Median, min and max of `f` over `runs`.
fn stats(runs: &[Run], f: impl Fn(&Run) -> f64) -> (f64, f64, f64) {
    median_min_max(runs.iter().map(f).collect())
}

fn cell(e: &anyhow::Error) -> String {
    format!("failed: {e:#}")
        .replace('|', "/")
        .replace('\n', " ")
}

struct Row {
    name: &'static str,
    setup: Setup,
    /// The row whose pass program this setup adds to (for "over bare").
    bare: Option<&'static str>,
}

/// The measurements of one (rate, matching) table: per setup name, the
/// kept runs or why there are none.
type Results = HashMap<(&'static str, usize, bool), std::result::Result<Vec<Run>, String>>;

/// Runs section 2 and returns its markdown.
pub fn run(cfg: &Config, log: &mut dyn FnMut(&str)) -> Result<String> {
    let mut s = String::new();
    let _ = writeln!(s, "## 2. Capture overhead\n");
    let mut n = Netns::new()?;
    let objs = Objects::build(&cfg.c_dir)?;
    // Is xcap's live capture there?
    let xcap_note = match &cfg.xcap {
        None => Some("not measured: xcap live capture unavailable (no binary)".to_string()),
        Some(x) => {
            let cmd: Vec<String> = vec![
                x.display().to_string(),
                "-i".into(),
                CAP_IF.into(),
                "--xdp".into(),
                "-w".into(),
                "/dev/null".into(),
                FILTER.into(),
            ];
            match Tool::start(&n.cap, &cmd) {
                Ok(t) => {
                    t.stop()?;
                    None
                }
                Err(e) => Some(format!(
                    "not measured: xcap live capture unavailable ({})",
                    format!("{e:#}").replace('|', "/")
                )),
            }
        }
    };
    let xcap = |extra: &[&str]| -> Setup {
        let mut v = vec![cfg
            .xcap
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()];
        v.extend(extra.iter().map(|s| s.to_string()));
        Setup::Xcap(v, FILTER)
    };
    let rows: Vec<Row> = vec![
        Row {
            name: "no capture",
            setup: Setup::None,
            bare: None,
        },
        Row {
            name: "bare TC pass program",
            setup: Setup::BareTc,
            bare: None,
        },
        Row {
            name: "bare generic-XDP pass program",
            setup: Setup::BareXdp("xdpgeneric", "xdp"),
            bare: None,
        },
        Row {
            name: "bare generic-XDP pass program, frags",
            setup: Setup::BareXdp("xdpgeneric", "xdp.frags"),
            bare: None,
        },
        Row {
            name: "bare native-XDP pass program",
            setup: Setup::BareXdp("xdpdrv", "xdp"),
            bare: None,
        },
        Row {
            name: "bare native-XDP pass program, frags",
            setup: Setup::BareXdp("xdpdrv", "xdp.frags"),
            bare: None,
        },
        Row {
            name: "tcpdump",
            setup: Setup::Tcpdump,
            bare: None,
        },
        Row {
            name: "`xcap --tc`",
            setup: xcap(&["--tc"]),
            bare: Some("bare TC pass program"),
        },
        Row {
            name: "`xcap --xdp` generic",
            setup: xcap(&["--xdp", "--xdp-mode", "generic"]),
            bare: Some("bare generic-XDP pass program, frags"),
        },
        Row {
            name: "`xcap --xdp` native",
            setup: xcap(&["--xdp", "--xdp-mode", "native"]),
            bare: Some("bare native-XDP pass program, frags"),
        },
    ];
    let rows: Vec<Row> = rows
        .into_iter()
        .filter(|r| {
            cfg.only
                .as_ref()
                .is_none_or(|o| o.iter().any(|w| r.name.contains(w.as_str())))
        })
        .collect();
    let measurable = |r: &Row| !(matches!(r.setup, Setup::Xcap(..)) && xcap_note.is_some());
    let mut results: Results = HashMap::new();
    let mut quiet_budget = Duration::from_secs(120);
    let mut contaminated = 0usize;
    let mut max_steal: f64 = 0.0;
    let mut fixed_rate = cfg.rate;
    for max_rate in [true, false] {
        let rate = if max_rate {
            None
        } else {
            let r = fixed_rate.unwrap_or_else(|| {
                // 60% of the slowest maximum throughput, at most the
                // default, in steps of 10 kpps.
                let slowest = results
                    .iter()
                    .filter(|((_, _, m), _)| *m)
                    .filter_map(|(_, r)| r.as_ref().ok())
                    .map(|runs| stats(runs, |r| r.kpps()).0 * 1e3)
                    .fold(f64::INFINITY, f64::min);
                let cap = (0.6 * slowest / 10_000.0).floor() as u64 * 10_000;
                DEFAULT_RATE.min(cap.max(10_000))
            });
            fixed_rate = Some(r);
            Some(r)
        };
        for rep in 0..cfg.runs {
            for every in [100usize, 1] {
                for row in rows.iter().filter(|r| measurable(r)) {
                    let key = (row.name, every, max_rate);
                    if matches!(results.get(&key), Some(Err(_))) {
                        continue;
                    }
                    let what = format!(
                        "{}, {} matching, {}, run {}/{}",
                        row.name,
                        pct(every),
                        rate.map_or("max rate".to_string(), |r| format!("{} kpps", r / 1000)),
                        rep + 1,
                        cfg.runs
                    );
                    log(&format!("capture: {what}"));
                    let plan = Plan {
                        setup: &row.setup,
                        every,
                        rate,
                        prog_stats: false,
                        warmup: cfg.warmup,
                        window: cfg.window,
                    };
                    // Repeat a run that other work disturbed (at most twice,
                    // after waiting for the machine to go quiet); keep the
                    // least disturbed one.
                    let mut best: Option<Run> = None;
                    let mut failure = None;
                    for attempt in 0..2 {
                        match run_one(&mut n, &plan, &objs) {
                            Ok(r) => {
                                log(&format!(
                                    "capture:   {:.0} kpps, {:.0} ns/packet (/proc/stat), {:.0} ns/packet (tasks), busy {}, other {:.2}%, steal {:.2}%{}",
                                    r.kpps(),
                                    r.ns_per_packet(),
                                    r.task_ns_per_packet(),
                                    r.cpu_busy
                                        .iter()
                                        .map(|b| format!("{:.0}%", b * 100.0))
                                        .collect::<Vec<_>>()
                                        .join("/"),
                                    r.other_share() * 100.0,
                                    r.steal_share() * 100.0,
                                    r.tool.map_or(String::new(), |t| format!(
                                        ", {} captured, {} received, {} dropped, {} reached",
                                        t.captured, t.received, t.dropped, r.whole.rx_packets
                                    ))
                                ));
                                let share = r.other_share();
                                let better = best.as_ref().is_none_or(|b| share < b.other_share());
                                if better {
                                    best = Some(r);
                                }
                                if share <= cfg.max_other_share {
                                    break;
                                }
                                log(&format!(
                                    "capture: other processes took {:.1}% of the CPU in the window{}",
                                    share * 100.0,
                                    if attempt < 1 { "; repeating" } else { "" }
                                ));
                                if attempt < 1 && !quiet_budget.is_zero() {
                                    let waited =
                                        wait_quiet(quiet_budget.min(Duration::from_secs(10)));
                                    quiet_budget = quiet_budget.saturating_sub(waited);
                                }
                            }
                            Err(e) => {
                                log(&format!("capture: {what}: {e:#}"));
                                failure = Some(cell(&e));
                                break;
                            }
                        }
                    }
                    match (best, failure) {
                        (Some(r), _) => {
                            if r.other_share() > cfg.max_other_share {
                                contaminated += 1;
                            }
                            max_steal = max_steal.max(r.steal_share());
                            if let Ok(v) = results.entry(key).or_insert_with(|| Ok(Vec::new())) {
                                v.push(r);
                            }
                        }
                        (None, Some(f)) => {
                            results.insert(key, Err(f));
                        }
                        (None, None) => unreachable!(),
                    }
                }
            }
        }
    }
    let fixed_rate = fixed_rate.unwrap_or(DEFAULT_RATE);

    // The programs' own run time, with the kernel's statistics on: as many
    // runs per (setup, matching) at the fixed rate as the other tables,
    // interleaved (one run moves by 10 ns from the next on this VM).
    // --- The programs' own cost: each setup measured next to its bare
    // program, round after round (BPF statistics on).
    let groups = own_cost_groups(&xcap, xcap_note.is_none(), cfg.only.as_deref());
    let mut own = OwnCosts::default();
    for every in [ONE_PCT, 1] {
        for round in 0..cfg.prog_rounds {
            for g in &groups {
                let mut members: Vec<(&'static str, &Setup)> =
                    std::iter::once((g.bare.0, &g.bare.1))
                        .chain(
                            g.members
                                .iter()
                                .filter(|m| every == ONE_PCT || !m.only_at_1pct)
                                .map(|m| (m.name, &m.setup)),
                        )
                        .collect();
                if members.len() < 2 {
                    continue;
                }
                // Alternate the order: drift within a round cancels out.
                if round % 2 == 1 {
                    members.reverse();
                }
                for (name, setup) in members {
                    log(&format!(
                        "capture: {name}, {} matching, {} kpps, BPF statistics on, round {}/{}",
                        pct(every),
                        fixed_rate / 1000,
                        round + 1,
                        cfg.prog_rounds
                    ));
                    let plan = Plan {
                        setup,
                        every,
                        rate: Some(fixed_rate),
                        prog_stats: true,
                        warmup: OWN_COST_WARMUP,
                        window: cfg.prog_window,
                    };
                    let r = run_one(&mut n, &plan, &objs).map_err(|e| cell(&e));
                    let r = r.and_then(|r| match r.prog {
                        Some((runs, ns)) if runs > 0 => Ok((runs, ns as f64 / runs as f64)),
                        _ => Err("no program runs counted".to_string()),
                    });
                    if let Ok((runs, per)) = &r {
                        log(&format!(
                            "capture:   {runs} program runs, {per:.1} ns per run"
                        ));
                    }
                    own.record(name, every, round, r);
                }
            }
        }
    }

    // --- Method.
    let _ = writeln!(
        s,
        "veth pair between two private namespaces (IPv6 off; the receiver owns the destination address \
         10.99.0.2/32 but has no route back, so nothing crosses the pair but the generator's frames). \
         trafgen (netsniff-ng, one worker: `-P 1`) sends 72-byte Ethernet/IPv4/UDP frames (valid IP checksum) \
         to the receiver's MAC and address, either at its maximum rate (PACKET_MMAP ring) or at a fixed offered \
         rate of {} kpps (`-b {}pps`: one `sendto` per frame and a sleep between). Filter `{FILTER}`, snaplen \
         {SNAPLEN}, captures written to /dev/null (`-w`). Matching traffic: 1% (one frame in 100 to port 9, \
         the rest to port 10) or 100%. Each (setup, matching, rate) is run {} times, interleaved (every setup \
         once, then again), and the tables give the median and the spread (min-max).\n",
        fixed_rate / 1000,
        fixed_rate,
        cfg.runs
    );
    let _ = writeln!(
        s,
        "**CPU ns/packet** (the issue's measure): busy time of all cores from /proc/stat (user, nice, system, \
         irq, softirq: everything but idle, iowait and steal) over a {:.0} s window opened {:.0} s after the \
         generator started, divided by the frames the receiving veth processed in that window (its rx_packets; \
         \"kpps\" is the same count per second). Nothing is subtracted. The generator, the receive path and the \
         capture tool all run on this 2-core machine, so the figure is the cost of sending, receiving and \
         capturing one frame. trafgen's worker is pinned to cpu0, and the veth receive path and the hooks run in \
         softirq on that same CPU; at the maximum rate cpu0 is saturated (\"busy %\", per core) and the figure \
         mostly follows throughput; at the fixed rate no core is saturated and differences between setups are \
         the extra CPU each spends per frame. /proc/stat counts in 10 ms units and is machine-wide. \
         **tasks ns/packet**: the same window and frames, but the CPU time is the run time (ns, \
         /proc/PID/task/TID/schedstat) of trafgen, the capture tool (all threads) and ksoftirqd: this kernel \
         charges softirq work to the task it interrupts, so that holds the send path, the receive path and the \
         hooks; it misses only interrupt work landing on idle or on other tasks, and other processes do not \
         enter it (in undisturbed runs it is within a few % of the /proc/stat figure). **Other work**: each \
         window also sums the CPU time of every process that is neither ours nor a kernel thread \
         (utime+stime+cutime+cstime from /proc/PID/stat); a run where that exceeds {:.0}% of the machine's CPU \
         time is repeated once, after waiting (up to 10 s) for the machine to go quiet, and the less disturbed \
         run is kept. \"other %\" is the largest such share among the kept runs; {} kept runs were still above \
         the limit (their /proc/stat figure includes that work; the tasks figure does not). Steal (time this \
         VM's CPUs were runnable while the host ran something else) is left out of busy: it is not CPU this \
         machine spent, and it comes and goes with the host's load; \"steal %\" is its largest share in a kept \
         window (at most {:.1}% overall).\n",
        cfg.window.as_secs_f64(),
        cfg.warmup.as_secs_f64(),
        cfg.max_other_share * 100.0,
        contaminated,
        max_steal * 100.0
    );
    let _ = writeln!(
        s,
        "**Over no capture** is the setup's median minus the no-capture median of the same table; **over bare** \
         is an xcap setup's median minus the median of the bare pass program at the same hook and mode (clang -O2 \
         `return XDP_PASS` / `return TC_ACT_OK`; the bare TC program is attached with `tc ... clsact bpf da`, xcap \
         uses TCX on ingress and egress). xcap's XDP program is multi-buffer aware (`xdp.frags`, \
         BPF_F_XDP_HAS_FRAGS: packets larger than one buffer reach it whole instead of being refused or \
         linearised), and for such a program generic XDP and veth copy a non-linear skb into page-pool \
         pages where a plain program gets it linearised: the bare XDP programs are measured both ways, and \
         xcap's XDP rows are compared with the `frags` one of their mode.\n"
    );

    for max_rate in [true, false] {
        let _ = writeln!(
            s,
            "### {}\n",
            if max_rate {
                "2a. At the generator's maximum rate".to_string()
            } else {
                format!("2b. At a fixed offered rate of {} kpps", fixed_rate / 1000)
            }
        );
        let _ = writeln!(s, "| setup | matching | kpps | CPU ns/packet | min-max | over no capture | over bare | tasks ns/packet | min-max | over no capture | over bare | busy % (cpu0 / cpu1) | other % | steal % |");
        let _ = writeln!(
            s,
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
        );
        for every in [100usize, 1] {
            let med = |name: &str, f: fn(&Run) -> f64| -> Option<f64> {
                results
                    .get(&(name, every, max_rate))?
                    .as_ref()
                    .ok()
                    .map(|runs| stats(runs, f).0)
            };
            for row in &rows {
                let p = pct(every);
                if !measurable(row) {
                    let _ = writeln!(
                        s,
                        "| {} | {p} | | {} | | | | | | | | | | |",
                        row.name,
                        xcap_note.as_deref().unwrap_or("")
                    );
                    continue;
                }
                match results.get(&(row.name, every, max_rate)) {
                    Some(Ok(runs)) => {
                        let (kpps, _, _) = stats(runs, |r| r.kpps());
                        let mut cols = Vec::new();
                        for f in [
                            Run::ns_per_packet as fn(&Run) -> f64,
                            Run::task_ns_per_packet,
                        ] {
                            let (m, lo, hi) = stats(runs, f);
                            let over = match (row.name, med("no capture", f)) {
                                ("no capture", _) | (_, None) => String::new(),
                                (_, Some(b)) => format!("{:+.0}", m - b),
                            };
                            let bare = row
                                .bare
                                .and_then(|b| med(b, f))
                                .map_or(String::new(), |b| format!("{:+.0}", m - b));
                            cols.push(format!("{m:.0} | {lo:.0}-{hi:.0} | {over} | {bare}"));
                        }
                        let ncpu = runs[0].cpu_busy.len();
                        let busy = (0..ncpu)
                            .map(|c| format!("{:.0}", stats(runs, |r| r.cpu_busy[c] * 100.0).0))
                            .collect::<Vec<_>>()
                            .join(" / ");
                        let other = runs.iter().map(|r| r.other_share()).fold(0.0, f64::max);
                        let steal = runs.iter().map(|r| r.steal_share()).fold(0.0, f64::max);
                        let _ = writeln!(
                            s,
                            "| {} | {p} | {kpps:.0} | {} | {busy} | {:.1} | {:.1} |",
                            row.name,
                            cols.join(" | "),
                            other * 100.0,
                            steal * 100.0
                        );
                    }
                    Some(Err(e)) => {
                        let _ = writeln!(s, "| {} | {p} | | {e} | | | | | | | | | | |", row.name);
                    }
                    None => {}
                }
            }
        }
        let _ = writeln!(s);
    }

    // --- Accounting.
    let _ = writeln!(s, "### Where every frame went\n");
    let _ = writeln!(
        s,
        "Whole-run counters, summed over the {} runs of each row: from before the generator starts (the tool is \
         already listening) to {:.1} s after it has exited, the tool still running; the tool's counters are the \
         three lines it prints on SIGINT right after. **sent**: trafgen's own count (\"packets outgoing\"). \
         **reached veth**: the receiving veth's rx_packets (the frames it processed; in NAPI mode, with XDP \
         attached, the frames its poll took off the ring, each of which XDP ran on). Losses before the hook, each \
         counted where it happens: the sender veth's tx_dropped (veth could not hand the frame over), the receiving \
         veth's rx_dropped, netif_rx backlog drops (/proc/net/softnet_stat column 2, all CPUs) and veth's own \
         ring and XDP counters (`ethtool -S`: every `*drops`/`*errors` counter, read with SIOCETHTOOL{}). \
         **matching at hook**: at 100% every frame that reached the veth; at 1% ceil(reached / 100), since trafgen \
         sends its 100 frames round robin from the matching one. **lost in tool**: matching at hook minus \
         captured. **exact**: runs where captured + dropped == received by filter == matching at hook.\n",
        cfg.runs,
        DRAIN.as_secs_f64(),
        if n.ethtool.is_none() {
            "; unreadable here, shown as n/a"
        } else {
            ""
        }
    );
    let _ = writeln!(s, "| setup | rate | matching | sent | reached veth | sender tx_dropped | receiver rx_dropped | backlog drops | veth ring/XDP drops | matching at hook | received by filter | captured | dropped (tool) | lost in tool | exact |");
    let _ = writeln!(
        s,
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    let mut before_hook_total = 0u64;
    let mut sent_total = 0u64;
    let mut tool_lost: Vec<String> = Vec::new();
    let mut inexact: Vec<String> = Vec::new();
    for max_rate in [true, false] {
        let rate_name = if max_rate {
            "max".to_string()
        } else {
            format!("{} kpps", fixed_rate / 1000)
        };
        for every in [100usize, 1] {
            for row in rows.iter().filter(|r| measurable(r)) {
                let Some(Ok(runs)) = results.get(&(row.name, every, max_rate)) else {
                    continue;
                };
                let sum = |f: &dyn Fn(&Run) -> u64| runs.iter().map(f).sum::<u64>();
                let sent = runs.iter().map(|r| r.sent).sum::<Option<u64>>();
                let reached = sum(&|r| r.whole.rx_packets);
                sent_total += sent.unwrap_or(0);
                before_hook_total += runs
                    .iter()
                    .map(|r| r.lost_before_hook().unwrap_or(0))
                    .sum::<u64>();
                let veth = runs
                    .iter()
                    .map(|r| r.whole.veth_drops)
                    .sum::<Option<u64>>()
                    .map_or("n/a".to_string(), |v| v.to_string());
                let (tool_cols, exact) = if row.setup.is_tool()
                    && runs.iter().all(|r| r.tool.is_some())
                {
                    let t = |f: &dyn Fn(&ToolStats) -> u64| {
                        runs.iter()
                            .map(|r| f(r.tool.as_ref().unwrap()))
                            .sum::<u64>()
                    };
                    let at_hook = sum(&|r| r.matching_at_hook());
                    let captured = t(&|t| t.captured);
                    let lost = at_hook as i64 - captured as i64;
                    let ok = runs.iter().filter(|r| r.exact() == Some(true)).count();
                    if lost != 0 {
                        tool_lost.push(format!(
                            "{} at {}, {} matching: {} of {} ({:.3}%; the tool reported {} dropped)",
                            row.name,
                            rate_name,
                            pct(every),
                            lost,
                            at_hook,
                            lost as f64 * 100.0 / at_hook.max(1) as f64,
                            t(&|t| t.dropped)
                        ));
                    }
                    if ok != runs.len() {
                        inexact.push(format!(
                            "{} at {}, {} matching",
                            row.name,
                            rate_name,
                            pct(every)
                        ));
                    }
                    (
                        format!(
                            "{at_hook} | {} | {captured} | {} | {lost}",
                            t(&|t| t.received),
                            t(&|t| t.dropped)
                        ),
                        format!("{ok}/{}", runs.len()),
                    )
                } else {
                    (" | | | | ".to_string(), String::new())
                };
                let _ = writeln!(
                    s,
                    "| {} | {rate_name} | {} | {} | {reached} | {} | {} | {} | {veth} | {tool_cols} | {exact} |",
                    row.name,
                    pct(every),
                    sent.map_or("?".to_string(), |v| v.to_string()),
                    sum(&|r| r.whole.tx_dropped),
                    sum(&|r| r.whole.rx_dropped),
                    sum(&|r| r.whole.backlog_drops),
                );
            }
        }
    }
    let _ = writeln!(s);

    // Per run, 100% matching at the maximum rate: the hardest case.
    let _ = writeln!(
        s,
        "100% matching at the maximum rate, snaplen {SNAPLEN}, each run (\"unaccounted\": reached veth minus \
         captured minus dropped; 0 means every frame that reached the hook is either captured or counted as \
         dropped):\n"
    );
    let _ = writeln!(s, "| setup | run | sent | reached veth | lost before hook | received by filter | captured | dropped (tool) | unaccounted | captured % of reached |");
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for row in rows.iter().filter(|r| measurable(r) && r.setup.is_tool()) {
        let Some(Ok(runs)) = results.get(&(row.name, 1, true)) else {
            continue;
        };
        for (i, r) in runs.iter().enumerate() {
            let Some(t) = r.tool else { continue };
            let reached = r.whole.rx_packets;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {reached} | {} | {} | {} | {} | {} | {:.3} |",
                row.name,
                i + 1,
                r.sent.map_or("?".to_string(), |v| v.to_string()),
                r.lost_before_hook()
                    .map_or("?".to_string(), |v| v.to_string()),
                t.received,
                t.captured,
                t.dropped,
                reached as i64 - t.captured as i64 - t.dropped as i64,
                t.captured as f64 * 100.0 / reached.max(1) as f64
            );
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "**Where losses happen.** Before any hook: {} of {} frames sent in all runs{}. In the tools: {}. \
         Counting: {}.\n",
        before_hook_total,
        sent_total,
        if before_hook_total == 0 {
            " (the veth pair, the backlog and the NAPI ring lost nothing)"
        } else {
            " (see the drop columns above for the stage)"
        },
        if tool_lost.is_empty() {
            "none; every matching frame that reached the hook was captured".to_string()
        } else {
            tool_lost.join("; ")
        },
        if inexact.is_empty() {
            "in every run captured + dropped == received by filter == matching frames at the hook".to_string()
        } else {
            format!("not exact in some runs of {}", inexact.join("; "))
        }
    );

    // --- The programs' own cost.
    let _ = writeln!(s, "### The programs' own cost per packet\n");
    let _ = writeln!(
        s,
        "The kernel's BPF run-time statistics (`BPF_ENABLE_STATS`; `run_time_ns` / `run_cnt` of the setup's \
         programs over a {:.0} s window opened {:.1} s after the generator started, read with `bpftool prog show \
         --json`), at {} kpps. This is what the program itself costs per packet, helpers included (for a \
         captured packet, writing its ring buffer record), without the rest of the path; the statistics add \
         two clock reads to every run, the same for every row. The live figures of one setup move by several ns \
         from run to run (the cache and the host), so each setup is measured right next to the bare pass program \
         of its hook, in {} rounds (each round runs the bare program and the setups of its hook back to back, in \
         reverse order every other round). **ns per run**: the median over rounds; **over bare**: the median of \
         the per-round differences with the bare program, ± half their interquartile range. The hand-written C \
         program (bench/c/programs.c, as in the isolated table below) and xcap with a filter that matches nothing \
         (`{FILTER_NONE}`) show what the filter alone costs on this path; they run with 1% matching traffic \
         only.\n",
        cfg.prog_window.as_secs_f64(),
        OWN_COST_WARMUP.as_secs_f64(),
        fixed_rate / 1000,
        cfg.prog_rounds
    );
    let _ = writeln!(
        s,
        "| setup | matching | program runs | ns per run | min-max | over bare |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|");
    for every in [100usize, 1] {
        for g in &groups {
            let names = std::iter::once(g.bare.0).chain(
                g.members
                    .iter()
                    .filter(|m| every == ONE_PCT || !m.only_at_1pct)
                    .map(|m| m.name),
            );
            for name in names {
                let Some((per, lo, hi, runs)) = own.ns_per_run(name, every) else {
                    if let Some(e) = own.error(name, every) {
                        let _ = writeln!(s, "| {name} | {} | {e} | | | |", pct(every));
                    }
                    continue;
                };
                let over = if name == g.bare.0 {
                    String::new()
                } else {
                    own.over_bare(name, g.bare.0, every)
                        .map_or(String::new(), |(d, q, _)| format!("{d:+.1} ±{q:.1}"))
                };
                let _ = writeln!(
                    s,
                    "| {name} | {} | {runs} | {per:.1} | {lo:.1}-{hi:.1} | {over} |",
                    pct(every)
                );
            }
        }
    }
    let _ = writeln!(s);

    // --- Against the targets.
    let _ = writeln!(s, "### Against the targets\n");
    let _ = writeln!(
        s,
        "Medians of the runs above, 1% matching unless said; \"noise\" is half the min-max range of each of the two \
         rows compared, added (for the BPF statistics rows: half the interquartile range of the paired \
         differences): a difference smaller than that is not resolved by this many runs.\n"
    );
    let _ = writeln!(s, "| target | rate | measured | noise | verdict |");
    let _ = writeln!(s, "|---|---|---|--:|---|");
    let get = |name: &'static str, every: usize, max_rate: bool| -> Option<&Vec<Run>> {
        results.get(&(name, every, max_rate))?.as_ref().ok()
    };
    let metrics: [(&str, Metric); 2] = [
        ("/proc/stat", Run::ns_per_packet),
        ("tasks", Run::task_ns_per_packet),
    ];
    let half = |(_, lo, hi): (f64, f64, f64)| (hi - lo) / 2.0;
    for max_rate in [true, false] {
        let rate_name = if max_rate {
            "max".to_string()
        } else {
            format!("{} kpps", fixed_rate / 1000)
        };
        // xcap --tc: at most a third of tcpdump's overhead.
        if let (Some(none), Some(td), Some(tc)) = (
            get("no capture", 100, max_rate),
            get("tcpdump", 100, max_rate),
            get("`xcap --tc`", 100, max_rate),
        ) {
            for (mname, f) in metrics {
                let (b, t, x) = (stats(none, f), stats(td, f), stats(tc, f));
                let (ot, ox) = (t.0 - b.0, x.0 - b.0);
                let _ = writeln!(
                    s,
                    "| `xcap --tc` adds at most 1/3 of tcpdump's overhead | {rate_name}, {mname} | {ox:+.0} ns vs tcpdump {ot:+.0} ns (1/3: {:.0}) | {:.0} | {} |",
                    ot / 3.0,
                    half(b) + half(x),
                    if ox <= ot / 3.0 { "met" } else { "not met" }
                );
            }
        }
        if let Some(tc) = get("`xcap --tc`", 100, max_rate) {
            let lost: i64 = tc
                .iter()
                .filter_map(|r| Some(r.matching_at_hook() as i64 - r.tool?.captured as i64))
                .sum();
            let dropped: u64 = tc.iter().filter_map(|r| Some(r.tool?.dropped)).sum();
            let _ = writeln!(
                s,
                "| `xcap --tc` loses no matching packet | {rate_name} | {lost} lost, {dropped} dropped in {} runs | | {} |",
                tc.len(),
                if lost == 0 && dropped == 0 { "met" } else { "not met" }
            );
        }
        for (x, bare) in [
            ("`xcap --xdp` native", "bare native-XDP pass program, frags"),
            (
                "`xcap --xdp` generic",
                "bare generic-XDP pass program, frags",
            ),
        ] {
            if let (Some(xr), Some(br)) = (get(x, 100, max_rate), get(bare, 100, max_rate)) {
                for (mname, f) in metrics {
                    let (a, b) = (stats(xr, f), stats(br, f));
                    let d = a.0 - b.0;
                    let noise = half(a) + half(b);
                    let _ = writeln!(
                        s,
                        "| {x} adds at most 10 ns over a bare XDP pass program (frags, as xcap's) | {rate_name}, {mname} | {d:+.0} ns ({:.0} vs {:.0}) | {noise:.0} | {}{} |",
                        a.0,
                        b.0,
                        if d <= 10.0 { "met" } else { "not met" },
                        if (d - 10.0).abs() < noise { " (within noise)" } else { "" }
                    );
                }
            }
        }
        for row in rows.iter().filter(|r| matches!(r.setup, Setup::Xcap(..))) {
            let Some(runs) = get(row.name, 1, max_rate) else {
                continue;
            };
            let reached: u64 = runs.iter().map(|r| r.whole.rx_packets).sum();
            let captured: u64 = runs.iter().filter_map(|r| Some(r.tool?.captured)).sum();
            let loss = (reached as f64 - captured as f64) * 100.0 / reached.max(1) as f64;
            let exact = runs.iter().filter(|r| r.exact() == Some(true)).count();
            let _ = writeln!(
                s,
                "| {}, 100% matching, snaplen {SNAPLEN}: losses < 0.1%, counted exactly | {rate_name} | {loss:.3}% lost; exact in {exact}/{} runs | | {} |",
                row.name,
                runs.len(),
                if loss < 0.1 && exact == runs.len() { "met" } else { "not met" }
            );
        }
    }
    for g in &groups {
        for m in g.members.iter().filter(|m| m.xcap_program) {
            let Some((d, q, pairs)) = own.over_bare(m.name, g.bare.0, ONE_PCT) else {
                continue;
            };
            let xdp = m.name.contains("--xdp");
            let verdict = if !xdp {
                "(no target; for reference)"
            } else if d <= 10.0 {
                "met"
            } else if d - q <= 10.0 {
                "not met (within noise)"
            } else {
                "not met"
            };
            let filter_alone = g
                .members
                .iter()
                .filter(|o| o.only_at_1pct)
                .filter_map(|o| {
                    let (d, q, _) = own.over_bare(o.name, g.bare.0, ONE_PCT)?;
                    Some(format!("{}: {d:+.1} ±{q:.1}", o.short))
                })
                .collect::<Vec<_>>();
            let _ = writeln!(
                s,
                "| {}: the program's own cost over {} (BPF statistics, {pairs} paired rounds{}) | {} kpps | {d:+.1} ns | {q:.1} | {verdict} |",
                m.name,
                g.bare.0,
                if filter_alone.is_empty() {
                    String::new()
                } else {
                    format!("; the filter alone, {}", filter_alone.join(", "))
                },
                fixed_rate / 1000
            );
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "The issue's anchors (build machine, 1% matching, maximum rate) against this machine:\n"
    );
    let _ = writeln!(
        s,
        "| setup | issue's anchor ns/packet | here, max rate | here, {} kpps |",
        fixed_rate / 1000
    );
    let _ = writeln!(s, "|---|--:|--:|--:|");
    for (name, anchor) in [
        ("no capture", 1230),
        ("tcpdump", 1515),
        ("bare TC pass program", 1300),
        ("bare generic-XDP pass program", 1520),
        ("bare native-XDP pass program", 1750),
    ] {
        let f = |m: bool| {
            get(name, 100, m).map_or("–".to_string(), |r| {
                format!("{:.0}", stats(r, Run::ns_per_packet).0)
            })
        };
        let _ = writeln!(s, "| {name} | {anchor} | {} | {} |", f(true), f(false));
    }
    let _ = writeln!(s);

    // --- The programs' fixed cost in isolation.
    if let (None, Some(x)) = (&xcap_note, &cfg.xcap) {
        log("isolated fixed cost");
        let setup = isolated::Setup {
            cap_ns: &n.cap,
            cap_if: CAP_IF,
            xcap: x,
            filter: FILTER,
            snaplen: SNAPLEN,
            c_dir: &cfg.c_dir,
            frame: &frame(10),
        };
        match isolated::run(&setup, log) {
            Ok(t) => s += &t,
            Err(e) => {
                let _ = writeln!(s, "Fixed cost in isolation: not measured ({}).\n", cell(&e));
            }
        }
    }

    // --- Startup time.
    let _ = writeln!(s, "Startup: command start (spawn of `ip netns exec ... CMD`) to its \"listening on\" line, median of {} runs, no traffic.\n", cfg.startup_runs);
    let _ = writeln!(s, "| command | median ms | min ms | max ms |");
    let _ = writeln!(s, "|---|--:|--:|--:|");
    let mut cmds: Vec<(String, Option<Vec<String>>)> =
        vec![("tcpdump".into(), capture_cmd(&Setup::Tcpdump))];
    for extra in [&["--tc"][..], &["--xdp", "--xdp-mode", "native"][..]] {
        let name = format!("`xcap {}`", extra.join(" "));
        cmds.push((
            name,
            if xcap_note.is_none() {
                capture_cmd(&xcap(extra))
            } else {
                None
            },
        ));
    }
    for (name, cmd) in cmds {
        let Some(cmd) = cmd else {
            let _ = writeln!(
                s,
                "| {name} | {} | | |",
                xcap_note.clone().unwrap_or_default()
            );
            continue;
        };
        log(&format!("startup: {name}"));
        let mut times = Vec::new();
        let mut err = None;
        for _ in 0..cfg.startup_runs {
            match Tool::start(&n.cap, &cmd) {
                Ok(t) => {
                    times.push(t.startup);
                    t.stop()?;
                }
                Err(e) => {
                    err = Some(cell(&e));
                    break;
                }
            }
        }
        if let Some(e) = err {
            let _ = writeln!(s, "| {name} | {e} | | |");
        } else {
            let min = times.iter().min().unwrap().as_secs_f64() * 1e3;
            let max = times.iter().max().unwrap().as_secs_f64() * 1e3;
            let _ = writeln!(
                s,
                "| {name} | {:.1} | {min:.1} | {max:.1} |",
                median_ms(times)
            );
        }
    }
    drop(n);
    Ok(s)
}
