//! Startup time: command start to the "listening on" line, no traffic.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;

use super::config::Config;
use super::lineup::Lineup;
use super::netns::Netns;
use super::runs::{cell, Measured};
use super::setups::{capture_cmd, Setup};
use super::tool::Tool;
use crate::stats::median_ms;

/// Measures each tool's startup and writes its table.
pub(super) fn measure_and_write(
    s: &mut String,
    cfg: &Config,
    lineup: &Lineup,
    n: &Netns,
    log: &mut dyn FnMut(&str),
) -> Result<()> {
    let _ = writeln!(s, "Startup: command start (spawn of `ip netns exec ... CMD`) to its \"listening on\" line, median of {} runs, no traffic.\n", cfg.startup_runs);
    let _ = writeln!(s, "| command | median ms | min ms | max ms |");
    let _ = writeln!(s, "|---|--:|--:|--:|");
    for (name, cmd) in commands(lineup) {
        let Some(cmd) = cmd else {
            let _ = writeln!(
                s,
                "| {name} | {} | | |",
                lineup.xcap_note.clone().unwrap_or_default()
            );
            continue;
        };
        log(&format!("startup: {name}"));
        match startup_times(n, &cmd, cfg.startup_runs)? {
            Ok(times) => {
                let min = times.iter().min().unwrap().as_secs_f64() * 1e3;
                let max = times.iter().max().unwrap().as_secs_f64() * 1e3;
                let _ = writeln!(
                    s,
                    "| {name} | {:.1} | {min:.1} | {max:.1} |",
                    median_ms(times)
                );
            }
            Err(e) => {
                let _ = writeln!(s, "| {name} | {e} | | |");
            }
        }
    }
    Ok(())
}

/// Each command's table name and command line (`None`: xcap, unavailable).
fn commands(lineup: &Lineup) -> Vec<(String, Option<Vec<String>>)> {
    let mut cmds = vec![("tcpdump".to_string(), capture_cmd(&Setup::Tcpdump))];
    for options in [&["--tc"][..], &["--xdp", "--xdp-mode", "native"][..]] {
        let name = format!("`xcap {}`", options.join(" "));
        let cmd = if lineup.xcap_note.is_none() {
            capture_cmd(&lineup.xcap(options))
        } else {
            None
        };
        cmds.push((name, cmd));
    }
    cmds
}

/// `runs` startups of `cmd`, or the first failure as a table cell. A tool
/// that started but does not stop is an error of the whole benchmark.
fn startup_times(n: &Netns, cmd: &[String], runs: usize) -> Result<Measured<Vec<Duration>>> {
    let mut times = Vec::new();
    for _ in 0..runs {
        match Tool::start(&n.cap, cmd) {
            Ok(t) => {
                times.push(t.startup);
                t.stop()?;
            }
            Err(e) => return Ok(Err(cell(&e))),
        }
    }
    Ok(Ok(times))
}
