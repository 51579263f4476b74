//! The programs' own cost: the kernel's BPF run-time statistics of each
//! setup at the fixed rate, measured in rounds right next to the bare pass
//! program of its hook (one run moves by several ns from the next on this
//! VM; the difference within a round moves far less).

use std::collections::HashMap;
use std::time::Duration;

use super::config::Config;
use super::lineup::OwnCostGroup;
use super::netns::Netns;
use super::runs::{cell, run_one, Measured, Plan};
use super::setups::{Objects, Setup};
use super::traffic::{pct, ONE_PCT};
use crate::stats::{median_and_half_iqr, median_min_max};

/// Generator time before the window of an own-cost run: the BPF
/// statistics need no settled throughput, only the setup in place.
pub(super) const OWN_COST_WARMUP: Duration = Duration::from_millis(500);

/// Runs every group's setups next to its bare program, `prog_rounds`
/// times, at 1% and then 100% matching (BPF statistics on).
pub(super) fn measure(
    n: &mut Netns,
    objs: &Objects,
    cfg: &Config,
    groups: &[OwnCostGroup],
    fixed_rate: u64,
    log: &mut dyn FnMut(&str),
) -> OwnCosts {
    let mut own = OwnCosts::default();
    for every in [ONE_PCT, 1] {
        for round in 0..cfg.prog_rounds {
            for g in groups {
                let mut setups: Vec<(&'static str, &Setup)> = g.measured(every).collect();
                // Nothing to pair the bare program with.
                if setups.len() < 2 {
                    continue;
                }
                // Alternate the order: drift within a round cancels out.
                if round % 2 == 1 {
                    setups.reverse();
                }
                for (name, setup) in setups {
                    log(&format!(
                        "capture: {name}, {} matching, {} kpps, BPF statistics on, round {}/{}",
                        pct(every),
                        fixed_rate / 1000,
                        round + 1,
                        cfg.prog_rounds
                    ));
                    let r = own_cost_run(n, objs, cfg, setup, every, fixed_rate);
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
    own
}

/// One run with the BPF statistics on: (program runs, ns per run).
fn own_cost_run(
    n: &mut Netns,
    objs: &Objects,
    cfg: &Config,
    setup: &Setup,
    every: usize,
    fixed_rate: u64,
) -> OwnCost {
    let plan = Plan {
        setup,
        every,
        rate: Some(fixed_rate),
        prog_stats: true,
        warmup: OWN_COST_WARMUP,
        window: cfg.prog_window,
    };
    let r = run_one(n, &plan, objs).map_err(|e| cell(&e))?;
    match r.prog {
        Some((runs, ns)) if runs > 0 => Ok((runs, ns as f64 / runs as f64)),
        _ => Err("no program runs counted".to_string()),
    }
}

/// One own-cost run: (program runs, ns per run), or why it failed.
type OwnCost = Measured<(u64, f64)>;

/// The own-cost runs: per (setup, matching), each round's result.
#[derive(Default)]
pub(super) struct OwnCosts {
    runs: HashMap<(&'static str, usize), Vec<(usize, OwnCost)>>,
}

impl OwnCosts {
    fn record(&mut self, name: &'static str, every: usize, round: usize, r: OwnCost) {
        self.runs.entry((name, every)).or_default().push((round, r));
    }

    fn ok<'a>(
        &'a self,
        name: &'a str,
        every: usize,
    ) -> impl Iterator<Item = (usize, u64, f64)> + 'a {
        self.runs
            .iter()
            .filter(move |((n, e), _)| *n == name && *e == every)
            .flat_map(|(_, v)| v.iter())
            .filter_map(|(round, r)| r.as_ref().ok().map(|(runs, ns)| (*round, *runs, *ns)))
    }

    /// Median, min and max ns per run over the rounds, and the program
    /// runs counted in all of them.
    pub(super) fn ns_per_run(&self, name: &str, every: usize) -> Option<(f64, f64, f64, u64)> {
        let v: Vec<f64> = self.ok(name, every).map(|(_, _, ns)| ns).collect();
        if v.is_empty() {
            return None;
        }
        let runs = self.ok(name, every).map(|(_, r, _)| r).sum();
        let (m, lo, hi) = median_min_max(v);
        Some((m, lo, hi, runs))
    }

    /// The median of the per-round differences with `bare`, half their
    /// interquartile range, and how many rounds had both.
    pub(super) fn over_bare(
        &self,
        name: &str,
        bare: &str,
        every: usize,
    ) -> Option<(f64, f64, usize)> {
        let bare: HashMap<usize, f64> = self.ok(bare, every).map(|(r, _, ns)| (r, ns)).collect();
        let d: Vec<f64> = self
            .ok(name, every)
            .filter_map(|(r, _, ns)| Some(ns - bare.get(&r)?))
            .collect();
        if d.is_empty() {
            return None;
        }
        let pairs = d.len();
        let (m, spread) = median_and_half_iqr(d);
        Some((m, spread, pairs))
    }

    /// The first failure of (setup, matching), for a table cell.
    pub(super) fn error(&self, name: &str, every: usize) -> Option<String> {
        self.runs
            .get(&(name, every))?
            .iter()
            .find_map(|(_, r)| r.as_ref().err().cloned())
    }
}
