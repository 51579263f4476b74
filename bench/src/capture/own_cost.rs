//! The programs' own cost: BPF run-time statistics of each setup, measured
//! in rounds right next to the bare pass program of its hook.

use std::collections::HashMap;
use std::time::Duration;

use super::setups::{Setup, FILTER_NONE};
use crate::stats::{median_and_half_iqr, median_min_max};

/// Generator time before the window of an own-cost run: the BPF
/// statistics need no settled throughput, only the setup in place.
pub(super) const OWN_COST_WARMUP: Duration = Duration::from_millis(500);

/// A setup of the own-cost phase, measured next to its group's bare program.
pub(super) struct Member {
    pub(super) name: &'static str,
    /// The name in the targets table's "the filter alone" list.
    pub(super) short: &'static str,
    pub(super) setup: Setup,
    /// Runs with 1% matching traffic only (the filter-alone setups).
    pub(super) only_at_1pct: bool,
    /// xcap's capture program (a row of the targets table).
    pub(super) xcap_program: bool,
}

/// A hook's bare pass program (name, setup) and what is measured next to it.
pub(super) struct OwnCostGroup {
    pub(super) bare: (&'static str, Setup),
    pub(super) members: Vec<Member>,
}

/// The own-cost phase's setups: per hook, xcap's program, and at 1%
/// xcap with a filter matching nothing and the hand-written C filter.
pub(super) fn own_cost_groups(
    xcap: &dyn Fn(&[&str]) -> Setup,
    xcap_ok: bool,
    only: Option<&[String]>,
) -> Vec<OwnCostGroup> {
    let nothing = |args: &[&str]| match xcap(args) {
        Setup::Xcap(v, _) => Setup::Xcap(v, FILTER_NONE),
        other => other,
    };
    let member = |name, short, setup, only_at_1pct, xcap_program| Member {
        name,
        short,
        setup,
        only_at_1pct,
        xcap_program,
    };
    let native = ["--xdp", "--xdp-mode", "native"];
    let generic = ["--xdp", "--xdp-mode", "generic"];
    let groups = vec![
        OwnCostGroup {
            bare: (
                "bare native-XDP pass program, frags",
                Setup::BareXdp("xdpdrv", "xdp.frags"),
            ),
            members: vec![
                member("`xcap --xdp` native", "", xcap(&native), false, true),
                member(
                    "`xcap --xdp` native, filter matching nothing",
                    "xcap",
                    nothing(&native),
                    true,
                    false,
                ),
                member(
                    "hand-written C filter, native XDP (frags)",
                    "hand-written C",
                    Setup::HandXdp("xdpdrv"),
                    true,
                    false,
                ),
            ],
        },
        OwnCostGroup {
            bare: (
                "bare generic-XDP pass program, frags",
                Setup::BareXdp("xdpgeneric", "xdp.frags"),
            ),
            members: vec![member(
                "`xcap --xdp` generic",
                "",
                xcap(&generic),
                false,
                true,
            )],
        },
        OwnCostGroup {
            bare: ("bare TC pass program", Setup::BareTc),
            members: vec![
                member("`xcap --tc`", "", xcap(&["--tc"]), false, true),
                member(
                    "`xcap --tc`, filter matching nothing",
                    "xcap",
                    nothing(&["--tc"]),
                    true,
                    false,
                ),
                member(
                    "hand-written C filter, TC",
                    "hand-written C",
                    Setup::HandTc,
                    true,
                    false,
                ),
            ],
        },
    ];
    let wanted = |name: &str| only.is_none_or(|o| o.iter().any(|w| name.contains(w.as_str())));
    groups
        .into_iter()
        .map(|mut g| {
            g.members
                .retain(|m| (xcap_ok || !matches!(m.setup, Setup::Xcap(..))) && wanted(m.name));
            g
        })
        .filter(|g| !g.members.is_empty())
        .collect()
}

/// One own-cost run: (program runs, ns per run), or why it failed.
pub(super) type OwnCost = std::result::Result<(u64, f64), String>;

/// The own-cost runs: per (setup, matching), each round's result.
#[derive(Default)]
pub(super) struct OwnCosts {
    pub(super) runs: HashMap<(&'static str, usize), Vec<(usize, OwnCost)>>,
}

impl OwnCosts {
    pub(super) fn record(&mut self, name: &'static str, every: usize, round: usize, r: OwnCost) {
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
