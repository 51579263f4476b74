//! "Where every frame went": the whole-run counters of every stage a
//! frame passes, summed per row and then per run, so that a lost frame is
//! found where it was lost.

use std::fmt::Write as _;

use super::super::config::Config;
use super::super::lineup::{Lineup, Row};
use super::super::rates::RateRuns;
use super::super::runs::{Run, DRAIN};
use super::super::setups::SNAPLEN;
use super::super::tool::ToolStats;
use super::super::traffic::pct;

pub(super) fn write(
    s: &mut String,
    cfg: &Config,
    lineup: &Lineup,
    rates: &RateRuns,
    ethtool_readable: bool,
) {
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
        if !ethtool_readable {
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
    let mut losses = Losses::default();
    for max_rate in [true, false] {
        for every in [100usize, 1] {
            for row in lineup.measurable_rows() {
                let Some(runs) = rates.runs(row.name, every, max_rate) else {
                    continue;
                };
                let rate_name = rates.rate_name(max_rate);
                write_row(s, row, runs, &rate_name, every, &mut losses);
            }
        }
    }
    let _ = writeln!(s);
    per_run(s, lineup, rates);
    losses.write(s);
}

/// Where frames were lost, over all rows, for the closing summary.
#[derive(Default)]
struct Losses {
    /// Frames lost between trafgen and the hook, and frames sent.
    before_hook: u64,
    sent: u64,
    /// The rows whose tools lost matching frames, as sentences.
    in_tools: Vec<String>,
    /// The rows with runs not counted exactly.
    inexact: Vec<String>,
}

impl Losses {
    fn write(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "**Where losses happen.** Before any hook: {} of {} frames sent in all runs{}. In the tools: {}. \
             Counting: {}.\n",
            self.before_hook,
            self.sent,
            if self.before_hook == 0 {
                " (the veth pair, the backlog and the NAPI ring lost nothing)"
            } else {
                " (see the drop columns above for the stage)"
            },
            if self.in_tools.is_empty() {
                "none; every matching frame that reached the hook was captured".to_string()
            } else {
                self.in_tools.join("; ")
            },
            if self.inexact.is_empty() {
                "in every run captured + dropped == received by filter == matching frames at the hook".to_string()
            } else {
                format!("not exact in some runs of {}", self.inexact.join("; "))
            }
        );
    }
}

/// One (setup, rate, matching): its counters summed over its runs.
fn write_row(
    s: &mut String,
    row: &Row,
    runs: &[Run],
    rate_name: &str,
    every: usize,
    losses: &mut Losses,
) {
    let sum = |f: &dyn Fn(&Run) -> u64| runs.iter().map(f).sum::<u64>();
    let sent = runs.iter().map(|r| r.sent).sum::<Option<u64>>();
    let reached = sum(&|r| r.whole.rx_packets);
    losses.sent += sent.unwrap_or(0);
    losses.before_hook += runs
        .iter()
        .map(|r| r.lost_before_hook().unwrap_or(0))
        .sum::<u64>();
    let veth = runs
        .iter()
        .map(|r| r.whole.veth_drops)
        .sum::<Option<u64>>()
        .map_or("n/a".to_string(), |v| v.to_string());
    let (tool_cols, exact) = if row.setup.is_tool() && runs.iter().all(|r| r.tool.is_some()) {
        tool_columns(row, runs, rate_name, every, losses)
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

/// A tool's columns (matching at hook to lost in tool) and its "exact"
/// cell; its losses and inexact runs go to `losses`.
fn tool_columns(
    row: &Row,
    runs: &[Run],
    rate_name: &str,
    every: usize,
    losses: &mut Losses,
) -> (String, String) {
    let t = |f: &dyn Fn(&ToolStats) -> u64| {
        runs.iter()
            .map(|r| f(r.tool.as_ref().unwrap()))
            .sum::<u64>()
    };
    let at_hook = runs.iter().map(|r| r.matching_at_hook()).sum::<u64>();
    let captured = t(&|t| t.captured);
    let lost = at_hook as i64 - captured as i64;
    let ok = runs.iter().filter(|r| r.exact() == Some(true)).count();
    if lost != 0 {
        losses.in_tools.push(format!(
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
        losses.inexact.push(format!(
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
}

/// 100% matching at the maximum rate, each run: the hardest case.
fn per_run(s: &mut String, lineup: &Lineup, rates: &RateRuns) {
    let _ = writeln!(
        s,
        "100% matching at the maximum rate, snaplen {SNAPLEN}, each run (\"unaccounted\": reached veth minus \
         captured minus dropped; 0 means every frame that reached the hook is either captured or counted as \
         dropped):\n"
    );
    let _ = writeln!(s, "| setup | run | sent | reached veth | lost before hook | received by filter | captured | dropped (tool) | unaccounted | captured % of reached |");
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for row in lineup.measurable_rows().filter(|r| r.setup.is_tool()) {
        let Some(runs) = rates.runs(row.name, 1, true) else {
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
}
