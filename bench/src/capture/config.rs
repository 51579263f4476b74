//! What `xcap-bench` passes to section 2.

use std::path::PathBuf;
use std::time::Duration;

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
