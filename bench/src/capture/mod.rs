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
//!
//! `run` takes the steps in this order, each in its module: the
//! namespaces and veth pair (`netns`), the owner of the matching packets'
//! socket (`socket_owner`, for the attribution rows), the lineup of setups and whether
//! xcap can be measured (`lineup`), the runs of tables 2a and 2b
//! (`rates`), the programs' own cost (`own_cost`), the report of both
//! (`report`), then the fixed cost in isolation (`isolated`) and the
//! startup times (`startup`), each measured and written at once. One run
//! (`runs`) draws on the CPU accounting (`cpu`), the generator's
//! traffic (`traffic`), the capture side (`setups`, `tool`) and the
//! BPF statistics (`bpf_stats`); the figures come from `crate::stats`.

mod bpf_stats;
mod config;
mod cpu;
mod ethtool;
mod isolated;
mod lineup;
pub mod long_run;
mod netns;
mod own_cost;
mod rates;
mod report;
mod runs;
mod setups;
mod shell;
mod socket_owner;
mod startup;
mod tool;
mod traffic;

use anyhow::Result;

pub use config::Config;
use lineup::{xcap_unavailable, Lineup};
use netns::Netns;
use setups::Objects;

/// Runs section 2 and returns its markdown.
pub fn run(cfg: &Config, log: &mut dyn FnMut(&str)) -> Result<String> {
    let mut n = Netns::new()?;
    let objs = Objects::build(&cfg.c_dir)?;
    // Kept for all of section 2: the matching packets' socket exists for
    // every setup alike. Without it, no attribution rows.
    let owner = match socket_owner::SocketOwner::start(&n.cap) {
        Ok(o) => Some(o),
        Err(e) => {
            log(&format!("capture: no attribution rows: {e:#}"));
            None
        }
    };
    let lineup = Lineup::new(cfg, xcap_unavailable(cfg, &n)?, owner.as_ref());
    let rates = rates::measure(&mut n, &objs, cfg, &lineup, log);
    let own = own_cost::measure(&mut n, &objs, cfg, &lineup.groups, rates.fixed_rate, log);
    let mut s = report::write(cfg, &lineup, &rates, &own, n.ethtool.is_some());
    isolated::measure_and_write(&mut s, cfg, lineup.xcap_note.as_deref(), &n, log);
    startup::measure_and_write(&mut s, cfg, &lineup, &n, log)?;
    // The namespaces go before the objects they had attached.
    drop(owner);
    drop(n);
    Ok(s)
}
