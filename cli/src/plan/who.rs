//! Who sent each packet: whether a capture attributes packets to their
//! processes, and which processes it keeps (`--who`, `--pid`,
//! `--follow-children`, `--comm`, `--cgroup`, `--container`).

use anyhow::{bail, Result};
use capture::attribution::Who;

use crate::args::{RunArgs, WhoArgs};

/// Whether any process filter is asked for.
fn filters_asked(w: &WhoArgs) -> bool {
    !w.pids.is_empty() || !w.comms.is_empty() || !w.cgroups.is_empty() || !w.containers.is_empty()
}

/// Whether any attribution flag is given.
pub(super) fn asked(w: &WhoArgs) -> bool {
    w.who || filters_asked(w)
}

/// Attribution for a TC capture: with `--who`, a process filter, `-v`
/// (whose lines name each packet's process), or `-- CMD` (whose pid, known
/// once it is started, joins `pids`, its children followed).
pub(super) fn for_tc(args: &RunArgs) -> Result<Option<Who>> {
    checked(args)
}

/// Attribution at the kernel's tracing hooks (tracepoints, fentry,
/// fexit), from each packet's socket: as at TC, but not for `-- CMD`.
pub(super) fn for_tracing(args: &RunArgs) -> Result<Option<Who>> {
    if !args.command.is_empty() {
        bail!("-- CMD works at TC only: use --tc, or --pid with the command's pid");
    }
    checked(args)
}

/// The attribution asked for, its values checked.
fn checked(args: &RunArgs) -> Result<Option<Who>> {
    let w = &args.who;
    if !asked(w) && args.live.verbose == 0 && args.command.is_empty() {
        return Ok(None);
    }
    for comm in &w.comms {
        if comm.is_empty() || comm.len() > 15 {
            bail!("--comm {comm:?}: a command name is 1 to 15 bytes (the kernel keeps no more)");
        }
    }
    if let Some(pid) = w.pids.iter().find(|&&p| p == 0) {
        bail!("--pid {pid}: not a process id");
    }
    Ok(Some(Who {
        pids: w.pids.clone(),
        follow_children: w.follow_children || !args.command.is_empty(),
        comms: w.comms.clone(),
        cgroups: w.cgroups.clone(),
        containers: w.containers.clone(),
    }))
}

/// Attribution flags where there is no socket to attribute from.
pub(super) fn refuse_at(args: &RunArgs, hook: &str) -> Result<()> {
    if asked(&args.who) || !args.command.is_empty() {
        bail!("--who, the process filters and -- CMD do not work at {hook}, which has no socket to take the process from: use --tc, or a tracing hook (--trace, --fentry, --fexit)");
    }
    Ok(())
}
