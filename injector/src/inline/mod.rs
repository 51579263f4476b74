//! Inlining a filter into its callers, in a linked program.
//!
//! A spliced filter is a bpf2bpf subprogram. The call and its return cost
//! about 10 ns on machines whose kernels return through a mitigation thunk
//! (retbleed, SRSO), several times what a typical filter costs itself. A
//! loader that has the program's final instructions (maps and calls
//! relocated, subprograms appended, as handed to `BPF_PROG_LOAD`) can put
//! the filter's body in place of each call with [`inline_calls`]:
//!
//! - each `exit` of the body becomes a jump past it, `r0` holds the result
//!   as after the call;
//! - the body's stack frame moves below the caller's (every `r10`-relative
//!   access shifts; a pointer taken as `mov rX, r10` is offset by one more
//!   instruction), so the two never overlap;
//! - `r6`-`r9` the body writes and the caller still needs after the call
//!   (a liveness analysis of the caller) must survive it, as the eBPF
//!   calling convention says: a body without calls gets them renamed to
//!   registers among `r1`-`r5` it never touches (the caller never reads
//!   those after a call), other bodies save them below the caller's frame
//!   and restore them after;
//! - jumps, calls and function addresses of the rest of the program are
//!   re-targeted; the subprogram itself is dropped once nothing calls it.
//!
//! ```
//! use cbpf2ebpf::ebpf::{op, Insn, R0, R1, R2, R6};
//! use injector::inline;
//!
//! let program = [
//!     Insn::mov64_imm(R6, 7),
//!     Insn::new(op::JMP | op::CALL, 0, 1, 0, 2), // call the function at 4
//!     Insn::alu64_reg(op::ADD, R0, R6),
//!     Insn::exit(),
//!     Insn::mov64_imm(R6, 1), // the callee: clobbers r6, which is live
//!     Insn::mov64_reg(R0, R1),
//!     Insn::exit(),
//! ];
//! let callee = inline::find_function(&program, &program[4..]).unwrap();
//! let inlined = inline::inline_calls(&program, callee).unwrap();
//! assert_eq!(inlined.sites, 1);
//! // The body in place of the call, its r6 renamed to r2 (the first
//! // scratch register it leaves alone); the subprogram is gone.
//! assert_eq!(inlined.insns[1..3], [Insn::mov64_imm(R2, 1), Insn::mov64_reg(R0, R1)]);
//! assert_eq!(inlined.insns.len(), 1 + 2 + 2);
//! ```
//!
//! What the caller's frame holds is found by scanning its instructions:
//! every `r10`-relative access and every pointer derived from `r10` by
//! constant steps (compiled code addresses each stack object from its lowest
//! byte). A function that offsets a stack pointer by a register, or a
//! callee that uses `r10` in any other way, is refused, as are callees that
//! call BPF functions or use legacy packet loads.
//!
//! A callee may take the address of another function (a filter's loop
//! callback, for `bpf_loop`): that function stays a subprogram of the
//! program, the inlined `ld_imm64`s point at its new place, and its frame
//! counts on top of the caller's and the body's against the 512 bytes.
//!
//! [`inline_calls`] reads as its steps: where the functions start
//! (`insn`), the callee checked (`body`), each call site planned from its
//! caller's frame and register liveness (`sites`, with `frame` and
//! `flow`), then the program laid out anew (`layout`).

mod body;
mod flow;
mod frame;
mod insn;
mod layout;
mod sites;

use cbpf2ebpf::ebpf::Insn;

use crate::Error;

pub(crate) use insn::{reads, target, writes};

/// The eBPF stack limit per program (all frames of a call chain).
const MAX_STACK: i64 = 512;

/// The program with its calls of one function inlined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inlined {
    pub insns: Vec<Insn>,
    /// How many calls were replaced by the body.
    pub sites: usize,
}

/// The first slot of a function of `prog` whose instructions are `body`:
/// a call target whose slots start with `body`, which must end there (the
/// next function or the program's end follows).
pub fn find_function(prog: &[Insn], body: &[Insn]) -> Option<usize> {
    let starts = insn::function_starts(prog).ok()?;
    starts
        .iter()
        .enumerate()
        .find(|&(k, &s)| {
            let end = starts.get(k + 1).copied().unwrap_or(prog.len());
            s > 0 && end - s == body.len() && prog[s..end] == *body
        })
        .map(|(_, &s)| s)
}

/// Replaces every call of the function starting at slot `callee` by its
/// body. See the module documentation.
pub fn inline_calls(prog: &[Insn], callee: usize) -> Result<Inlined, Error> {
    let starts = insn::function_starts(prog)?;
    let k = starts
        .binary_search(&callee)
        .ok()
        .filter(|&k| k > 0)
        .ok_or_else(|| refuse(format!("no function starts at instruction {callee}")))?;
    let callee_range = callee..starts.get(k + 1).copied().unwrap_or(prog.len());
    let body = body::Body::analyse(prog, callee_range)?;
    let sites = sites::plan(prog, &starts, &body, callee)?;
    Ok(Inlined {
        insns: layout::lay_out(prog, &body, &sites)?,
        sites: sites.len(),
    })
}

fn refuse(why: String) -> Error {
    Error::Unsupported(format!("cannot inline the filter: {why}"))
}
