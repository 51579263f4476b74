//! "Against the targets": the targets, each with its measured
//! figure, the noise and a verdict; then the anchor figures beside
//! this machine's.

use std::fmt::Write as _;

use super::super::lineup::{Lineup, OwnCostGroup};
use super::super::own_cost::OwnCosts;
use super::super::rates::RateRuns;
use super::super::runs::{median_min_max_of, Metric, Run};
use super::super::setups::{Setup, SNAPLEN};
use super::super::traffic::ONE_PCT;

/// The two CPU figures each target is checked with.
const METRICS: [(&str, Metric); 2] = [
    ("/proc/stat", Run::ns_per_packet),
    ("tasks", Run::task_ns_per_packet),
];

pub(super) fn write(s: &mut String, lineup: &Lineup, rates: &RateRuns, own: &OwnCosts) {
    let _ = writeln!(s, "### Against the targets\n");
    let _ = writeln!(
        s,
        "Medians of the runs above, 1% matching unless said; \"noise\" is half the min-max range of each of the two \
         rows compared, added (for the BPF statistics rows: half the interquartile range of the paired \
         differences): a difference smaller than that is not resolved by this many runs.\n"
    );
    let _ = writeln!(s, "| target | rate | measured | noise | verdict |");
    let _ = writeln!(s, "|---|---|---|--:|---|");
    for max_rate in [true, false] {
        let rate_name = rates.rate_name(max_rate);
        tc_against_tcpdump(s, rates, max_rate, &rate_name);
        tc_loses_nothing(s, rates, max_rate, &rate_name);
        xdp_over_bare(s, rates, max_rate, &rate_name);
        xcap_losses(s, lineup, rates, max_rate, &rate_name);
    }
    own_cost(s, &lineup.groups, own, rates.fixed_rate);
    let _ = writeln!(s);
    anchors(s, rates);
}

/// Half the min-max range: the noise of a median of a few runs.
fn half((_, lo, hi): (f64, f64, f64)) -> f64 {
    (hi - lo) / 2.0
}

/// xcap --tc: at most a third of tcpdump's overhead.
fn tc_against_tcpdump(s: &mut String, rates: &RateRuns, max_rate: bool, rate_name: &str) {
    if let (Some(none), Some(td), Some(tc)) = (
        rates.runs("no capture", 100, max_rate),
        rates.runs("tcpdump", 100, max_rate),
        rates.runs("`xcap --tc`", 100, max_rate),
    ) {
        for (mname, f) in METRICS {
            let (b, t, x) = (
                median_min_max_of(none, f),
                median_min_max_of(td, f),
                median_min_max_of(tc, f),
            );
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
}

/// xcap --tc loses no matching packet.
fn tc_loses_nothing(s: &mut String, rates: &RateRuns, max_rate: bool, rate_name: &str) {
    if let Some(tc) = rates.runs("`xcap --tc`", 100, max_rate) {
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
}

/// xcap --xdp: at most 10 ns over the bare XDP program of its mode.
fn xdp_over_bare(s: &mut String, rates: &RateRuns, max_rate: bool, rate_name: &str) {
    for (x, bare) in [
        ("`xcap --xdp` native", "bare native-XDP pass program, frags"),
        (
            "`xcap --xdp` generic",
            "bare generic-XDP pass program, frags",
        ),
    ] {
        if let (Some(xr), Some(br)) = (
            rates.runs(x, 100, max_rate),
            rates.runs(bare, 100, max_rate),
        ) {
            for (mname, f) in METRICS {
                let (a, b) = (median_min_max_of(xr, f), median_min_max_of(br, f));
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
}

/// Each xcap setup at 100% matching: losses under 0.1%, counted exactly.
fn xcap_losses(s: &mut String, lineup: &Lineup, rates: &RateRuns, max_rate: bool, rate_name: &str) {
    for row in lineup
        .rows
        .iter()
        .filter(|r| matches!(r.setup, Setup::Xcap(..)))
    {
        let Some(runs) = rates.runs(row.name, 1, max_rate) else {
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

/// Each xcap program's own cost over its bare program (BPF statistics),
/// with what the filter alone costs beside it.
fn own_cost(s: &mut String, groups: &[OwnCostGroup], own: &OwnCosts, fixed_rate: u64) {
    for g in groups {
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
}

/// The figures from its build machine beside this machine's.
fn anchors(s: &mut String, rates: &RateRuns) {
    let _ = writeln!(
        s,
        "The issue's anchors (build machine, 1% matching, maximum rate) against this machine:\n"
    );
    let _ = writeln!(
        s,
        "| setup | issue's anchor ns/packet | here, max rate | here, {} kpps |",
        rates.fixed_rate / 1000
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
            rates.runs(name, 100, m).map_or("–".to_string(), |r| {
                format!("{:.0}", median_min_max_of(r, Run::ns_per_packet).0)
            })
        };
        let _ = writeln!(s, "| {name} | {anchor} | {} | {} |", f(true), f(false));
    }
    let _ = writeln!(s);
}
