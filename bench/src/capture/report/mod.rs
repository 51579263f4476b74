//! Section 2's text and tables up to the targets, written from what the
//! rate tables and the own-cost phase measured, in the report's order.

mod frames;
mod method;
mod own_cost;
mod per_packet;
mod targets;

use super::config::Config;
use super::lineup::Lineup;
use super::own_cost::OwnCosts;
use super::rates::RateRuns;

pub(super) fn write(
    cfg: &Config,
    lineup: &Lineup,
    rates: &RateRuns,
    own: &OwnCosts,
    ethtool_readable: bool,
) -> String {
    let mut s = String::from("## 2. Capture overhead\n\n");
    method::write(&mut s, cfg, rates);
    per_packet::write(&mut s, lineup, rates);
    frames::write(&mut s, cfg, lineup, rates, ethtool_readable);
    own_cost::write(&mut s, cfg, &lineup.groups, own, rates.fixed_rate);
    targets::write(&mut s, lineup, rates, own);
    s
}
