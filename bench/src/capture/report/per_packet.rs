//! Tables 2a and 2b: CPU per packet, at the generator's maximum rate and
//! at the fixed rate, against no capture and against the bare program.

use std::fmt::Write as _;

use super::super::lineup::{Lineup, Row};
use super::super::rates::RateRuns;
use super::super::runs::{median_min_max_of, Metric, Run};
use super::super::traffic::pct;

pub(super) fn write(s: &mut String, lineup: &Lineup, rates: &RateRuns) {
    for max_rate in [true, false] {
        heading(s, rates, max_rate);
        for every in [100usize, 1] {
            for row in &lineup.rows {
                write_row(s, lineup, rates, row, every, max_rate);
            }
        }
        let _ = writeln!(s);
    }
}

fn heading(s: &mut String, rates: &RateRuns, max_rate: bool) {
    let _ = writeln!(
        s,
        "### {}\n",
        if max_rate {
            "2a. At the generator's maximum rate".to_string()
        } else {
            format!(
                "2b. At a fixed offered rate of {} kpps",
                rates.fixed_rate / 1000
            )
        }
    );
    let _ = writeln!(s, "| setup | matching | kpps | CPU ns/packet | min-max | over no capture | over bare | tasks ns/packet | min-max | over no capture | over bare | busy % (cpu0 / cpu1) | other % | steal % |");
    let _ = writeln!(
        s,
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
}

/// One setup's line: its figures, why it failed, or why it was not run.
fn write_row(
    s: &mut String,
    lineup: &Lineup,
    rates: &RateRuns,
    row: &Row,
    every: usize,
    max_rate: bool,
) {
    let p = pct(every);
    if !lineup.measurable(row) {
        let _ = writeln!(
            s,
            "| {} | {p} | | {} | | | | | | | | | | |",
            row.name,
            lineup.xcap_note.as_deref().unwrap_or("")
        );
        return;
    }
    match rates.entry(row.name, every, max_rate) {
        Some(Ok(runs)) => {
            let (kpps, _, _) = median_min_max_of(runs, |r| r.kpps());
            let cols: Vec<String> = [Run::ns_per_packet as Metric, Run::task_ns_per_packet]
                .into_iter()
                .map(|f| figure_columns(rates, row, runs, every, max_rate, f))
                .collect();
            let ncpu = runs[0].cpu_busy.len();
            let busy = (0..ncpu)
                .map(|c| {
                    format!(
                        "{:.0}",
                        median_min_max_of(runs, |r| r.cpu_busy[c] * 100.0).0
                    )
                })
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

/// Median, min-max, over no capture and over bare of one CPU figure.
fn figure_columns(
    rates: &RateRuns,
    row: &Row,
    runs: &[Run],
    every: usize,
    max_rate: bool,
    f: Metric,
) -> String {
    let med = |name: &'static str| rates.median(name, every, max_rate, f);
    let (m, lo, hi) = median_min_max_of(runs, f);
    let over = match (row.name, med("no capture")) {
        ("no capture", _) | (_, None) => String::new(),
        (_, Some(b)) => format!("{:+.0}", m - b),
    };
    let bare = row
        .bare
        .and_then(med)
        .map_or(String::new(), |b| format!("{:+.0}", m - b));
    format!("{m:.0} | {lo:.0}-{hi:.0} | {over} | {bare}")
}
