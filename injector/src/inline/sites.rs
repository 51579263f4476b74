//! Where the body goes at each call ([`Site`]): the caller's frame depth and r6-r9
//! liveness (once per caller function), which registers the body renames
//! or saves, and the stack the whole call chain then needs.

use std::ops::Range;

use cbpf2ebpf::ebpf::{Insn, R6, R9};

use super::body::{Body, Site};
use super::flow::{defined_callee_saved, live_callee_saved};
use super::frame::{frame_depth, Indexed};
use super::insn::{bit, is_call_of, slots};
use super::{refuse, MAX_STACK};
use crate::Error;

/// Every call of the body's function, by slot, with its site, in program
/// order.
pub(super) fn plan(
    prog: &[Insn],
    starts: &[usize],
    body: &Body,
    callee: usize,
) -> Result<Vec<(usize, Site)>, Error> {
    let mut sites: Vec<(usize, Site)> = Vec::new();
    for (f, &start) in starts.iter().enumerate() {
        let range = start..starts.get(f + 1).copied().unwrap_or(prog.len());
        if range == body.range {
            continue;
        }
        let calls: Vec<usize> = slots(prog, range.clone())
            .filter(|&i| is_call_of(prog, i, callee))
            .collect();
        if calls.is_empty() {
            continue;
        }
        let caller = Caller::analyse(prog, range)?;
        for i in calls {
            sites.push((i, caller.site(prog, starts, body, i)?));
        }
    }
    Ok(sites)
}

/// A function that calls the body: how deep its frame reaches, and which
/// of r6-r9 are live and set at each slot.
struct Caller {
    depth: i64,
    live: Vec<u16>,
    defined: Vec<u16>,
}

impl Caller {
    fn analyse(prog: &[Insn], range: Range<usize>) -> Result<Self, Error> {
        Ok(Caller {
            depth: frame_depth(prog, range.clone(), Indexed::Refused)?,
            live: live_callee_saved(prog, range.clone()),
            defined: defined_callee_saved(prog, range),
        })
    }

    /// The site of the call at slot `i`.
    fn site(&self, prog: &[Insn], starts: &[usize], body: &Body, i: usize) -> Result<Site, Error> {
        let depth = self.depth;
        let keep = body.writes & self.live[i + 1];
        let mut free = body.unused_scratch.iter().copied();
        let (mut saved, mut renamed) = (Vec::new(), Vec::new());
        for r in (R6..=R9).filter(|&r| keep & bit(r) != 0) {
            match free.next() {
                Some(to) => renamed.push((r, to)),
                None => saved.push(r),
            }
        }
        if saved.iter().any(|&r| self.defined[i] & bit(r) == 0) {
            // Saving a register that is unset on some path would not
            // verify; not saving it would lose it on the others.
            return Err(refuse(format!(
                "the caller needs r6-r9 after the call at instruction {i} that are not set on every path to it"
            )));
        }
        let caller = (depth + 7) / 8 * 8;
        let shift = caller + 8 * saved.len() as i64;
        // The kernel counts each frame of a call chain rounded up to 32
        // bytes; a callback's frame comes on top of its caller's.
        let callbacks = body.callback_frame(prog, starts)?;
        let chain = if callbacks > 0 {
            round32(shift + body.frame) + round32(callbacks)
        } else {
            shift + body.frame
        };
        if chain > MAX_STACK {
            return Err(refuse(format!(
                "the caller's frame ({depth} bytes), the filter's ({} bytes) and its callback's ({callbacks} bytes) exceed {MAX_STACK} bytes",
                body.frame
            )));
        }
        Ok(Site {
            caller,
            shift,
            saved,
            renamed,
        })
    }
}

fn round32(n: i64) -> i64 {
    (n + 31) / 32 * 32
}
