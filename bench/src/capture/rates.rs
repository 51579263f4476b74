//! The runs of tables 2a and 2b: every row, at the generator's maximum
//! rate and then at a fixed rate, with 1% and 100% matching traffic,
//! `runs` times each, interleaved (every setup once, then again), so a
//! slow drift of the machine spreads over all setups alike.

use std::collections::HashMap;
use std::time::Duration;

use super::config::Config;
use super::cpu::wait_quiet;
use super::lineup::Lineup;
use super::netns::Netns;
use super::runs::{cell, median_min_max_of, run_one, Measured, Metric, Plan, Run};
use super::setups::Objects;
use super::traffic::pct;

/// The fixed offered rate unless `--rate` says otherwise (lowered when a
/// setup's maximum throughput is not comfortably above it).
const DEFAULT_RATE: u64 = 150_000;

/// Time the rate tables may spend waiting for the machine to go quiet.
const QUIET_BUDGET: Duration = Duration::from_secs(120);

/// What the rate tables measured.
pub(super) struct RateRuns {
    /// Per (setup, matching, maximum rate?): the kept runs, or why there
    /// are none.
    results: HashMap<(&'static str, usize, bool), Measured<Vec<Run>>>,
    /// The offered rate of table 2b, in packets/s.
    pub(super) fixed_rate: u64,
    /// Kept runs whose window other processes still disturbed.
    pub(super) contaminated: usize,
    /// The largest steal share of a kept window.
    pub(super) max_steal: f64,
}

impl RateRuns {
    /// The kept runs of (setup, matching, maximum rate?), or why there
    /// are none; `None` if it was not run.
    pub(super) fn entry(
        &self,
        name: &'static str,
        every: usize,
        max_rate: bool,
    ) -> Option<&Measured<Vec<Run>>> {
        self.results.get(&(name, every, max_rate))
    }

    /// The kept runs, if any.
    pub(super) fn runs(
        &self,
        name: &'static str,
        every: usize,
        max_rate: bool,
    ) -> Option<&Vec<Run>> {
        self.entry(name, every, max_rate)?.as_ref().ok()
    }

    /// The median of `f` over the kept runs.
    pub(super) fn median(
        &self,
        name: &'static str,
        every: usize,
        max_rate: bool,
        f: Metric,
    ) -> Option<f64> {
        Some(median_min_max_of(self.runs(name, every, max_rate)?, f).0)
    }

    /// The rate as the tables name it.
    pub(super) fn rate_name(&self, max_rate: bool) -> String {
        if max_rate {
            "max".to_string()
        } else {
            format!("{} kpps", self.fixed_rate / 1000)
        }
    }

    /// 60% of the slowest maximum throughput, at most the default, in
    /// steps of 10 kpps: a rate every setup sustains without saturating.
    fn rate_below_slowest(&self) -> u64 {
        let slowest = self
            .results
            .iter()
            .filter(|((_, _, m), _)| *m)
            .filter_map(|(_, r)| r.as_ref().ok())
            .map(|runs| median_min_max_of(runs, |r| r.kpps()).0 * 1e3)
            .fold(f64::INFINITY, f64::min);
        let cap = (0.6 * slowest / 10_000.0).floor() as u64 * 10_000;
        DEFAULT_RATE.min(cap.max(10_000))
    }

    fn record(&mut self, key: (&'static str, usize, bool), run: Measured<Run>, cfg: &Config) {
        match run {
            Ok(r) => {
                if r.other_share() > cfg.max_other_share {
                    self.contaminated += 1;
                }
                self.max_steal = self.max_steal.max(r.steal_share());
                if let Ok(v) = self.results.entry(key).or_insert_with(|| Ok(Vec::new())) {
                    v.push(r);
                }
            }
            Err(f) => {
                self.results.insert(key, Err(f));
            }
        }
    }
}

/// Runs the rate tables: the maximum rate first, since the fixed rate
/// is chosen below the slowest setup's maximum.
pub(super) fn measure(
    n: &mut Netns,
    objs: &Objects,
    cfg: &Config,
    lineup: &Lineup,
    log: &mut dyn FnMut(&str),
) -> RateRuns {
    let mut t = RateRuns {
        results: HashMap::new(),
        fixed_rate: 0,
        contaminated: 0,
        max_steal: 0.0,
    };
    let mut quiet_budget = QUIET_BUDGET;
    for max_rate in [true, false] {
        let rate = if max_rate {
            None
        } else {
            t.fixed_rate = cfg.rate.unwrap_or_else(|| t.rate_below_slowest());
            Some(t.fixed_rate)
        };
        for rep in 0..cfg.runs {
            for every in [100usize, 1] {
                for row in lineup.measurable_rows() {
                    let key = (row.name, every, max_rate);
                    // A setup that failed once is not tried again.
                    if matches!(t.results.get(&key), Some(Err(_))) {
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
                    let run =
                        least_disturbed_run(n, objs, &plan, cfg, &mut quiet_budget, &what, log);
                    t.record(key, run, cfg);
                }
            }
        }
    }
    t
}

/// One run, repeated once if other work disturbed it (after waiting for
/// the machine to go quiet); the less disturbed of the two is kept. Runs
/// are repeated, never corrected.
fn least_disturbed_run(
    n: &mut Netns,
    objs: &Objects,
    plan: &Plan,
    cfg: &Config,
    quiet_budget: &mut Duration,
    what: &str,
    log: &mut dyn FnMut(&str),
) -> Measured<Run> {
    let first = match run_one(n, plan, objs) {
        Ok(r) => r,
        Err(e) => {
            log(&format!("capture: {what}: {e:#}"));
            return Err(cell(&e));
        }
    };
    log(&format!("capture:   {}", first.summary()));
    if first.other_share() <= cfg.max_other_share {
        return Ok(first);
    }
    log_disturbed(&first, "; repeating", log);
    if !quiet_budget.is_zero() {
        let waited = wait_quiet((*quiet_budget).min(Duration::from_secs(10)));
        *quiet_budget = quiet_budget.saturating_sub(waited);
    }
    let second = match run_one(n, plan, objs) {
        Ok(r) => r,
        Err(e) => {
            log(&format!("capture: {what}: {e:#}"));
            return Ok(first);
        }
    };
    log(&format!("capture:   {}", second.summary()));
    if second.other_share() > cfg.max_other_share {
        log_disturbed(&second, "", log);
    }
    Ok(if second.other_share() < first.other_share() {
        second
    } else {
        first
    })
}

fn log_disturbed(r: &Run, then: &str, log: &mut dyn FnMut(&str)) {
    log(&format!(
        "capture: other processes took {:.1}% of the CPU in the window{then}",
        r.other_share() * 100.0
    ));
}
