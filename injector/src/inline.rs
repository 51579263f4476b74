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

use std::ops::Range;

use cbpf2ebpf::ebpf::{op, Insn, R1, R10, R5, R6, R9};

use crate::Error;

/// The eBPF stack limit per program (all frames of a call chain).
const MAX_STACK: i64 = 512;
const PSEUDO_CALL: u8 = 1;
const PSEUDO_FUNC: u8 = 4;
const LD_IMM64: u8 = op::LD | op::DW | op::IMM;
/// `BPF_LD | BPF_ABS` / `BPF_IND` (any size).
const LD_ABS: u8 = 0x20;
const LD_IND: u8 = 0x40;
const ATOMIC: u8 = 0xc0;
const BPF_FETCH: i32 = 0x01;
const BPF_CMPXCHG: i32 = 0xf0 | BPF_FETCH;
const HELPER_TAIL_CALL: i32 = 12;

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
    let starts = function_starts(prog).ok()?;
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
    let starts = function_starts(prog)?;
    let k = starts
        .binary_search(&callee)
        .ok()
        .filter(|&k| k > 0)
        .ok_or_else(|| refuse(format!("no function starts at instruction {callee}")))?;
    let callee_range = callee..starts.get(k + 1).copied().unwrap_or(prog.len());
    let body = Body::analyse(prog, callee_range.clone())?;

    // Each caller function's frame depth and r6-r9 liveness, once.
    let mut sites: Vec<(usize, Site)> = Vec::new();
    for (f, &start) in starts.iter().enumerate() {
        let range = start..starts.get(f + 1).copied().unwrap_or(prog.len());
        if range == callee_range {
            continue;
        }
        let calls: Vec<usize> = slots(prog, range.clone())
            .filter(|&i| is_call_of(prog, i, callee))
            .collect();
        if calls.is_empty() {
            continue;
        }
        let depth = frame_depth(prog, range.clone(), Indexed::Refused)?;
        let live = live_callee_saved(prog, range.clone());
        let defined = defined_callee_saved(prog, range.clone());
        for i in calls {
            let keep = body.writes & live[i + 1];
            let mut free = body.unused_scratch.iter().copied();
            let (mut saved, mut renamed) = (Vec::new(), Vec::new());
            for r in (R6..=R9).filter(|&r| keep & bit(r) != 0) {
                match free.next() {
                    Some(to) => renamed.push((r, to)),
                    None => saved.push(r),
                }
            }
            if saved.iter().any(|&r| defined[i] & bit(r) == 0) {
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
            let callbacks = body.callback_frame(prog, &starts)?;
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
            sites.push((
                i,
                Site {
                    caller,
                    shift,
                    saved,
                    renamed,
                },
            ));
        }
    }

    // Lay out: every slot's new position, the callee dropped.
    let mut out: Vec<Insn> = Vec::with_capacity(prog.len() + sites.len() * body.len());
    let mut new_pos = vec![usize::MAX; prog.len() + 1];
    let mut fixups: Vec<(usize, usize)> = Vec::new(); // (new slot, old target)
    let mut next_site = sites.iter().peekable();
    let mut i = 0;
    while i < prog.len() {
        if callee_range.contains(&i) {
            i = callee_range.end;
            continue;
        }
        new_pos[i] = out.len();
        if let Some((_, site)) = next_site.next_if(|(s, _)| *s == i) {
            body.emit(prog, site, &mut out, &mut fixups)?;
            i += 1;
            continue;
        }
        let x = prog[i];
        if let Some(t) = target(prog, i) {
            fixups.push((out.len(), t));
        }
        out.push(x);
        if x.code == LD_IMM64 {
            new_pos[i + 1] = out.len();
            out.push(prog[i + 1]);
            i += 2;
        } else {
            i += 1;
        }
    }
    new_pos[prog.len()] = out.len();
    for (at, t) in fixups {
        let to = new_pos[t];
        if to == usize::MAX {
            return Err(refuse(format!(
                "instruction {at} refers into the inlined function"
            )));
        }
        retarget(&mut out[at], to as i64 - at as i64 - 1)?;
    }
    Ok(Inlined {
        insns: out,
        sites: sites.len(),
    })
}

fn round32(n: i64) -> i64 {
    (n + 31) / 32 * 32
}

fn refuse(why: String) -> Error {
    Error::Unsupported(format!("cannot inline the filter: {why}"))
}

const fn bit(r: u8) -> u16 {
    1 << r
}

/// The slot indices of the instructions in `range` (second halves of
/// `ld_imm64` skipped).
fn slots(prog: &[Insn], range: Range<usize>) -> impl Iterator<Item = usize> + '_ {
    let mut i = range.start;
    std::iter::from_fn(move || {
        (i < range.end).then(|| {
            let at = i;
            i += if prog[at].code == LD_IMM64 { 2 } else { 1 };
            at
        })
    })
}

fn is_call_of(prog: &[Insn], i: usize, callee: usize) -> bool {
    let x = prog[i];
    x.code == op::JMP | op::CALL && x.src == PSEUDO_CALL && target(prog, i) == Some(callee)
}

/// The slot a jump, bpf2bpf call or function address at `i` refers to.
pub(crate) fn target(prog: &[Insn], i: usize) -> Option<usize> {
    let x = prog[i];
    let rel = match (x.class(), x.code & 0xf0) {
        (op::JMP, op::CALL) if x.src == PSEUDO_CALL => i64::from(x.imm),
        (op::JMP, op::CALL | op::EXIT) => return None,
        (op::JMP32, op::JA) => i64::from(x.imm),
        (op::JMP | op::JMP32, _) => i64::from(x.off),
        (op::LD, _) if x.code == LD_IMM64 && x.src == PSEUDO_FUNC => i64::from(x.imm),
        _ => return None,
    };
    let t = i as i64 + rel + 1;
    (0..=prog.len() as i64).contains(&t).then_some(t as usize)
}

/// Sets the relative distance of a jump, call or function address.
fn retarget(x: &mut Insn, rel: i64) -> Result<(), Error> {
    let far = || refuse(format!("a jump of {rel} instructions does not fit"));
    if x.code == op::JMP32 | op::JA || x.code == LD_IMM64 || x.code == op::JMP | op::CALL {
        x.imm = i32::try_from(rel).map_err(|_| far())?;
    } else {
        x.off = i16::try_from(rel).map_err(|_| far())?;
    }
    Ok(())
}

/// Slot 0 and every target of a bpf2bpf call or function address, sorted.
fn function_starts(prog: &[Insn]) -> Result<Vec<usize>, Error> {
    let mut starts = vec![0];
    for i in slots(prog, 0..prog.len()) {
        let x = prog[i];
        let refers = (x.code == op::JMP | op::CALL && x.src == PSEUDO_CALL)
            || (x.code == LD_IMM64 && x.src == PSEUDO_FUNC);
        if refers {
            let t = target(prog, i)
                .filter(|&t| t < prog.len())
                .ok_or_else(|| refuse(format!("instruction {i} calls outside the program")))?;
            starts.push(t);
        }
    }
    if prog.last().is_some_and(|x| x.code == LD_IMM64) {
        return Err(refuse("the program ends in half an ld_imm64".into()));
    }
    starts.sort_unstable();
    starts.dedup();
    Ok(starts)
}

/// How many bytes below `r10` the function's stack objects reach.
///
/// A stack pointer offset by a register is refused in a caller (where its
/// objects are could not be known) and taken as offset by a non-negative
/// index in the body (the translator's indexed reads of its packet copy;
/// the verifier still bounds every access).
fn frame_depth(prog: &[Insn], range: Range<usize>, indexed: Indexed) -> Result<i64, Error> {
    // Registers holding r10 + k, in instruction order (compiled code derives
    // a stack pointer right where it uses it).
    let mut derived: [Option<i64>; 11] = [None; 11];
    derived[R10 as usize] = Some(0);
    let mut depth = 0i64;
    for i in slots(prog, range) {
        let x = prog[i];
        let base = match x.class() {
            op::LDX => Some(x.src),
            op::ST | op::STX => Some(x.dst),
            _ => None,
        };
        if let Some(k) = base.and_then(|b| derived[b as usize]) {
            depth = depth.max(-(k + i64::from(x.off)));
        }
        let d = x.dst as usize;
        let o = x.code & 0xf0;
        if x.code == op::ALU64 | op::MOV | op::X {
            derived[d] = derived[x.src as usize];
        } else if let (op::ALU64, op::ADD | op::SUB, Some(k)) = (x.class(), o, derived[d]) {
            if x.code & op::X != 0 {
                if indexed == Indexed::Refused {
                    return Err(refuse(format!(
                        "instruction {i} offsets a stack pointer by a register"
                    )));
                }
                continue;
            }
            let step = i64::from(x.imm);
            derived[d] = Some(if o == op::ADD { k + step } else { k - step });
        } else if x.code == op::JMP | op::CALL {
            derived[..6].fill(None);
        } else if writes(x) & bit(x.dst) != 0 && d != R10 as usize {
            derived[d] = None;
        } else if writes(x) != 0 {
            derived[x.src as usize] = None; // atomic fetch
        }
        if let Some(k) = derived[d] {
            depth = depth.max(-k);
        }
    }
    Ok(depth)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Indexed {
    Refused,
    NonNegative,
}

/// Registers that `x` writes, as a bit set (helper calls aside: they
/// write r0-r5, never r6-r9).
pub(crate) fn writes(x: Insn) -> u16 {
    let d = bit(x.dst);
    match x.class() {
        op::ALU | op::ALU64 | op::LDX => d,
        op::LD if x.code == LD_IMM64 => d,
        op::STX if x.code & 0xe0 == ATOMIC && x.imm & BPF_FETCH != 0 && x.imm != BPF_CMPXCHG => {
            bit(x.src)
        }
        _ => 0,
    }
}

/// Registers among r6-r9 and the rest that `x` reads, as a bit set
/// (r1-r5 of calls and r0 of exits aside: only r6-r9 are asked about).
pub(crate) fn reads(x: Insn) -> u16 {
    let (d, s) = (bit(x.dst), bit(x.src));
    let uses_src = x.code & op::X != 0;
    match x.class() {
        op::ALU | op::ALU64 => {
            let o = x.code & 0xf0;
            let dst = if o == op::MOV { 0 } else { d };
            dst | if uses_src && o != op::END { s } else { 0 }
        }
        op::LDX => s,
        op::ST => d,
        op::STX => d | s,
        op::LD if x.code & 0xe0 == LD_ABS => bit(R6),
        op::LD if x.code & 0xe0 == LD_IND => bit(R6) | s,
        op::JMP | op::JMP32 => match x.code & 0xf0 {
            op::JA | op::CALL | op::EXIT => 0,
            _ => d | if uses_src { s } else { 0 },
        },
        _ => 0,
    }
}

/// For each slot of `range` (and the one after), which of r6-r9 are live
/// before it: read on some path before being written.
fn live_callee_saved(prog: &[Insn], range: Range<usize>) -> Vec<u16> {
    const MASK: u16 = bit(6) | bit(7) | bit(8) | bit(9);
    let mut live = vec![0u16; prog.len() + 1];
    let at: Vec<usize> = slots(prog, range.clone()).collect();
    loop {
        let mut changed = false;
        for &i in at.iter().rev() {
            let x = prog[i];
            let next = i + if x.code == LD_IMM64 { 2 } else { 1 };
            let mut out = 0;
            let o = x.code & 0xf0;
            let jump = matches!(x.class(), op::JMP | op::JMP32);
            let falls = !(jump && (o == op::EXIT || o == op::JA));
            if falls && next < range.end {
                out |= live[next];
            }
            if jump && !matches!(o, op::CALL | op::EXIT) {
                if let Some(t) = target(prog, i).filter(|t| range.contains(t)) {
                    out |= live[t];
                }
            }
            let new = (reads(x) | (out & !writes(x))) & MASK;
            if new != live[i] {
                live[i] = new;
                changed = true;
            }
        }
        if !changed {
            return live;
        }
    }
}

/// For each slot of `range`, which of r6-r9 are set on every path from
/// the function's entry to it.
fn defined_callee_saved(prog: &[Insn], range: Range<usize>) -> Vec<u16> {
    const MASK: u16 = bit(6) | bit(7) | bit(8) | bit(9);
    let mut defined = vec![MASK; prog.len() + 1];
    defined[range.start] = 0;
    let at: Vec<usize> = slots(prog, range.clone()).collect();
    loop {
        let mut changed = false;
        for &i in &at {
            let x = prog[i];
            let out = (defined[i] | writes(x)) & MASK;
            let next = i + if x.code == LD_IMM64 { 2 } else { 1 };
            let o = x.code & 0xf0;
            let jump = matches!(x.class(), op::JMP | op::JMP32);
            let mut succ = Vec::with_capacity(2);
            if !(jump && (o == op::EXIT || o == op::JA)) && next < range.end {
                succ.push(next);
            }
            if jump && !matches!(o, op::CALL | op::EXIT) {
                succ.extend(target(prog, i).filter(|t| range.contains(t)));
            }
            for t in succ {
                let new = defined[t] & out;
                if t != range.start && new != defined[t] {
                    defined[t] = new;
                    changed = true;
                }
            }
        }
        if !changed {
            return defined;
        }
    }
}

/// One call site: where the body's frame goes and what it saves.
struct Site {
    /// The caller's frame, rounded to 8 bytes: the saves start below it.
    caller: i64,
    /// How far the body's r10-relative offsets move down.
    shift: i64,
    saved: Vec<u8>,
    /// Callee-saved registers the body uses under another name: (r6-r9,
    /// a scratch register the body leaves alone).
    renamed: Vec<(u8, u8)>,
}

/// The callee, checked for what inlining needs.
struct Body {
    range: Range<usize>,
    /// Bit set of r6-r9 the body writes.
    writes: u16,
    /// Bytes of stack below r10 the body uses.
    frame: i64,
    /// r1-r5 the body neither reads nor writes, when it calls nothing
    /// (a helper call would clobber them): room for its r6-r9.
    unused_scratch: Vec<u8>,
}

impl Body {
    fn analyse(prog: &[Insn], range: Range<usize>) -> Result<Body, Error> {
        let mut writes_mask = 0;
        let mut uses = 0;
        let mut calls = false;
        for i in slots(prog, range.clone()) {
            let x = prog[i];
            let at = |what: &str| {
                refuse(format!(
                    "instruction {} of the filter {what}",
                    i - range.start
                ))
            };
            match x.class() {
                op::JMP | op::JMP32 => match x.code & 0xf0 {
                    op::CALL if x.src != 0 => return Err(at("calls a BPF function")),
                    op::CALL if x.imm == HELPER_TAIL_CALL => return Err(at("tail-calls")),
                    op::CALL | op::EXIT => {}
                    _ => {
                        let t = target(prog, i).filter(|t| range.contains(t) || *t == range.end);
                        if t.is_none() {
                            return Err(at("jumps out of it"));
                        }
                    }
                },
                op::LD
                    if x.code == LD_IMM64
                        && x.src == PSEUDO_FUNC
                        && target(prog, i).is_none_or(|t| range.contains(&t)) =>
                {
                    return Err(at("takes the address of a place inside itself"));
                }
                op::LD if x.code == LD_IMM64 && x.src == PSEUDO_FUNC => {}
                op::LD if x.code != LD_IMM64 => return Err(at("is a legacy packet load")),
                _ => {}
            }
            if x.dst == R10 && (writes(x) != 0 || matches!(x.class(), op::ALU | op::ALU64)) {
                return Err(at("writes r10"));
            }
            let r10_src = x.src == R10 && x.code != LD_IMM64;
            let allowed = match x.class() {
                op::LDX => true,
                op::ALU64 => x.code == op::ALU64 | op::MOV | op::X,
                _ => false,
            };
            if r10_src && !allowed {
                return Err(at("uses r10 other than as a base or a copy"));
            }
            writes_mask |= writes(x);
            uses |= reads(x) | writes(x);
            calls |= x.code == op::JMP | op::CALL;
        }
        // What the verifier refuses in a function must not pass inlined,
        // where the caller's code would follow it.
        let last = slots(prog, range.clone()).last().unwrap_or(range.start);
        let ends = prog[last];
        if !(ends.code == op::JMP | op::EXIT
            || ends.code == op::JMP | op::JA
            || ends.code == op::JMP32 | op::JA)
        {
            return Err(refuse("the filter does not end in exit or a jump".into()));
        }
        if let Some(i) = unreachable(prog, range.clone()) {
            return Err(refuse(format!(
                "instruction {} of the filter is unreachable",
                i - range.start
            )));
        }
        let unused_scratch = if calls {
            Vec::new()
        } else {
            (R1..=R5).filter(|&r| uses & bit(r) == 0).collect()
        };
        Ok(Body {
            frame: frame_depth(prog, range.clone(), Indexed::NonNegative)?,
            range,
            writes: writes_mask,
            unused_scratch,
        })
    }

    fn len(&self) -> usize {
        self.range.len()
    }

    /// The largest frame of the functions whose address the body takes
    /// (they call nothing themselves: the translator's loop callbacks).
    fn callback_frame(&self, prog: &[Insn], starts: &[usize]) -> Result<i64, Error> {
        let mut frame = 0;
        for i in slots(prog, self.range.clone()) {
            let x = prog[i];
            if x.code != LD_IMM64 || x.src != PSEUDO_FUNC {
                continue;
            }
            let t = target(prog, i).expect("checked in analyse");
            let k = starts.partition_point(|&s| s <= t);
            let end = starts.get(k).copied().unwrap_or(prog.len());
            frame = frame.max(frame_depth(prog, t..end, Indexed::NonNegative)?.max(1));
        }
        Ok(frame)
    }

    /// Appends the body for one call site to `out`; function addresses go
    /// to `fixups` as (slot in `out`, function's old slot).
    fn emit(
        &self,
        prog: &[Insn],
        site: &Site,
        out: &mut Vec<Insn>,
        fixups: &mut Vec<(usize, usize)>,
    ) -> Result<(), Error> {
        let slot = |k: usize| -> Result<i16, Error> {
            i16::try_from(-(site.caller + 8 * (k as i64 + 1)))
                .map_err(|_| refuse("stack offset out of range".into()))
        };
        for (k, &r) in site.saved.iter().enumerate() {
            out.push(Insn::stx(op::DW, R10, r, slot(k)?));
        }
        let start = self.range.start;
        let mut new_pos = vec![0usize; self.range.len() + 1];
        let mut jumps: Vec<(usize, usize)> = Vec::new(); // (out slot, body slot)
        let mut exits: Vec<usize> = Vec::new();
        for i in slots(prog, self.range.clone()) {
            let x = prog[i];
            new_pos[i - start] = out.len();
            let o = x.code & 0xf0;
            let jump = matches!(x.class(), op::JMP | op::JMP32);
            if jump && o == op::EXIT {
                // The last one falls through to what follows the body.
                if i + 1 != self.range.end {
                    exits.push(out.len());
                    out.push(Insn::ja(0));
                }
                continue;
            }
            if jump && o != op::CALL {
                jumps.push((out.len(), target(prog, i).unwrap() - start));
            }
            if x.code == LD_IMM64 && x.src == PSEUDO_FUNC {
                fixups.push((out.len(), target(prog, i).unwrap()));
            }
            let mut y = x;
            let rename = |r: u8| {
                site.renamed
                    .iter()
                    .find(|&&(from, _)| from == r)
                    .map_or(r, |&(_, to)| to)
            };
            y.dst = rename(x.dst);
            // An ld_imm64's src says what its constant is, not a register
            // (the body has no calls, whose src is the call's kind).
            if x.code != LD_IMM64 {
                y.src = rename(x.src);
            }
            match x.class() {
                op::LDX if x.src == R10 => y.off = shifted(x.off, site.shift)?,
                op::ST | op::STX if x.dst == R10 => y.off = shifted(x.off, site.shift)?,
                _ => {}
            }
            out.push(y);
            if x.code == LD_IMM64 {
                new_pos[i + 1 - start] = out.len();
                out.push(prog[i + 1]);
            }
            if x.code == op::ALU64 | op::MOV | op::X && x.src == R10 {
                out.push(Insn::alu64_imm(op::ADD, x.dst, -(site.shift as i32)));
            }
        }
        let end = out.len();
        new_pos[self.range.len()] = end;
        for (at, t) in jumps {
            retarget(&mut out[at], new_pos[t] as i64 - at as i64 - 1)?;
        }
        for at in exits {
            retarget(&mut out[at], end as i64 - at as i64 - 1)?;
        }
        for (k, &r) in site.saved.iter().enumerate() {
            out.push(Insn::ldx(op::DW, r, R10, slot(k)?));
        }
        Ok(())
    }
}

fn shifted(off: i16, by: i64) -> Result<i16, Error> {
    i16::try_from(i64::from(off) - by).map_err(|_| refuse("stack offset out of range".into()))
}

/// The first instruction of `range` no path from its start reaches.
fn unreachable(prog: &[Insn], range: Range<usize>) -> Option<usize> {
    let mut seen = vec![false; prog.len()];
    let mut todo = vec![range.start];
    while let Some(i) = todo.pop() {
        if !range.contains(&i) || std::mem::replace(&mut seen[i], true) {
            continue;
        }
        let x = prog[i];
        let o = x.code & 0xf0;
        let jump = matches!(x.class(), op::JMP | op::JMP32);
        if !(jump && (o == op::EXIT || o == op::JA)) {
            todo.push(i + if x.code == LD_IMM64 { 2 } else { 1 });
        }
        if jump && !matches!(o, op::CALL | op::EXIT) {
            todo.extend(target(prog, i));
        }
    }
    slots(prog, range).find(|&i| !seen[i])
}
