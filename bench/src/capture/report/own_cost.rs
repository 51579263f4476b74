//! The table of the programs' own cost per packet (BPF statistics).

use std::fmt::Write as _;

use super::super::config::Config;
use super::super::lineup::OwnCostGroup;
use super::super::own_cost::{OwnCosts, OWN_COST_WARMUP};
use super::super::setups::FILTER_NONE;
use super::super::traffic::pct;

pub(super) fn write(
    s: &mut String,
    cfg: &Config,
    groups: &[OwnCostGroup],
    own: &OwnCosts,
    fixed_rate: u64,
) {
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
        for g in groups {
            for (name, _) in g.measured(every) {
                write_row(s, own, g.bare.0, name, every);
            }
        }
    }
    let _ = writeln!(s);
}

/// A setup's ns per run and, beside its bare program, the paired
/// difference; or its first failure.
fn write_row(s: &mut String, own: &OwnCosts, bare: &str, name: &str, every: usize) {
    let Some((per, lo, hi, runs)) = own.ns_per_run(name, every) else {
        if let Some(e) = own.error(name, every) {
            let _ = writeln!(s, "| {name} | {} | {e} | | | |", pct(every));
        }
        return;
    };
    let over = if name == bare {
        String::new()
    } else {
        own.over_bare(name, bare, every)
            .map_or(String::new(), |(d, q, _)| format!("{d:+.1} ±{q:.1}"))
    };
    let _ = writeln!(
        s,
        "| {name} | {} | {runs} | {per:.1} | {lo:.1}-{hi:.1} | {over} |",
        pct(every)
    );
}
