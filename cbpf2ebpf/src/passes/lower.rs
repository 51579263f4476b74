//! Pass 6: lower the IR to eBPF with symbolic jump targets.
//!
//! cBPF's registers are 32-bit, so every ALU operation and comparison on A
//! and X uses 32-bit eBPF forms (`w` registers, `JMP32`), which also keeps
//! constants above 0x7fffffff exact. Packet loads follow the access mode;
//! each failure path jumps to one shared `return 0`.

use cranelift_entity::SecondaryMap;

use super::guards::{Guards, IndexedGuard};
use super::init::{self, Values};
use super::layout::{Item, Label};
use super::swaps::Swaps;
use crate::cbpf::ancillary;
use crate::ebpf::{helper, op, Insn, Reg as R, R0, R1, R10, R2, R3, R4, R5, R6, R7, R8, R9};
use crate::ir::{AluOp, Block, Cond, Function, Inst, InstData, Operand, Reg, Size, Terminator};
use crate::{Error, Hook, Mode, Options};

/// `struct __sk_buff` fields the fast path reads.
mod skb_field {
    pub const LEN: i16 = 0;
    pub const DATA: i16 = 76;
    pub const DATA_END: i16 = 80;
}

/// Stack layout (offsets from the frame pointer).
mod stack {
    /// `M[i]` lives at `MEM + 4 * i`.
    pub const MEM: i16 = -64;
    /// Skb mode: captured length (`end - start`), u64.
    pub const CAPLEN: i16 = -72;
    /// Skb and probe modes: wire length, u64.
    pub const WIRELEN: i16 = -80;
    /// Skb and probe modes: where helpers copy loaded bytes.
    pub const BUF: i16 = -88;
    /// Direct mode: `r1`..`r4` saved around helper calls.
    pub const SAVE: i16 = -96;
    /// Skb mode's slow path: 1 when [`PREFIX`] holds the first
    /// `min(caplen, PREFIX_LEN)` bytes, else 0 (u64).
    pub const PREFIX_OK: i16 = -104;
    /// Skb mode's slow path: a copy of the packet's first bytes, placed at
    /// 2 mod 8 so that what follows a 14-byte Ethernet header (IPv4 and
    /// IPv6 addresses) is aligned: the verifier refuses misaligned stack
    /// reads, and those are composed from smaller ones.
    pub const PREFIX: i16 = PREFIX_OK - PREFIX_LEN as i16 - 6;
    /// How many bytes the prefix copy holds at most: every header a filter
    /// commonly reads (Ethernet, VLAN tags, IPv4 with options or IPv6, the
    /// TCP flags) fits.
    pub const PREFIX_LEN: u32 = 128;
}

const _: () = assert!((-(stack::PREFIX as i32)) as usize <= crate::STACK_BYTES);

/// The loop's state in the filter's frame, passed to `bpf_loop` by address
/// and read and written by the callback through it. It lies over skb
/// mode's prefix copy, which the filter no longer reads once the loop runs
/// (nothing in direct and probe modes).
mod loop_ctx {
    /// Offset of the state from the filter's frame pointer.
    pub const BASE: i16 = -232;
    // Fields, from BASE. u64: the filter's arguments.
    pub const CTX: i16 = 0;
    pub const START: i16 = 8;
    pub const END: i16 = 16;
    pub const WIRELEN: i16 = 24;
    // u32: the state a pass starts with.
    pub const A: i16 = 32;
    pub const X: i16 = 36;
    /// The header the next pass starts at.
    pub const RESUME: i16 = 40;
    /// What the filter returns: written once, by the pass that returns.
    pub const RET: i16 = 44;
    /// The state saved for cycle detection (`SAVED_RESUME` = u32::MAX:
    /// none yet).
    pub const SAVED_RESUME: i16 = 48;
    pub const SAVED_A: i16 = 52;
    pub const SAVED_X: i16 = 56;
    /// `M[i]` at `MEM + 4 * i`, the carried ones only.
    pub const MEM: i16 = 64;
    pub const LEN: i16 = MEM + 64;
}

const _: () = assert!(loop_ctx::BASE + loop_ctx::LEN <= stack::PREFIX_OK);
const _: () = assert!((-(loop_ctx::BASE as i32)) as usize <= crate::STACK_BYTES);
const _: () = assert!(loop_ctx::BASE % 8 == 0);

/// The loop callback's own frame: the filter's layout (scratch words,
/// lengths, the helper buffer) without the prefix copy, and two slots.
mod callback_stack {
    /// The loop state's address (the callback's second argument).
    pub const LOOP: i16 = -104;
    /// The pass's index (the callback's first argument).
    pub const INDEX: i16 = -112;
}

const _: () = assert!((-(callback_stack::INDEX as i32)) as usize <= crate::CALLBACK_STACK_BYTES);

/// Cycle detection starts at this pass of the callback (a power of two):
/// the passes of an ordinary chain of headers pay nothing for it.
const CYCLE_CHECK_FROM: i32 = 16;

/// What the filter and its loop callback agree on.
#[derive(Clone, Debug)]
pub struct LoopPlan {
    /// What a pass carries to the next (A and X always, and the scratch
    /// words some pass reads before writing).
    pub carried: Values,
    /// Either function reads `len`.
    pub uses_len: bool,
    /// Either function loads packet bytes.
    pub packet_loads: bool,
    /// A pass starting in the state a previous one started in means the
    /// loop never ends: only when the state is A and X, and no pass reads
    /// a random number.
    pub detect_cycles: bool,
    /// `bpf_loop`'s count: the most passes.
    pub max_passes: u32,
}

/// Which function is being lowered.
#[derive(Clone, Copy)]
pub enum Frame<'p> {
    /// The filter, and the plan of its loop callback if it has one.
    Filter(Option<&'p LoopPlan>),
    /// The loop callback.
    Callback(&'p LoopPlan),
}

/// See `Lower::prefix_indexed`.
const MAX_PREFIX_INDEXED_LOADS: usize = 8;

/// Where the cBPF state lives in each mode.
#[derive(Clone, Copy)]
struct Regs {
    a: R,
    x: R,
    /// Direct: packet pointer; skb: offset; probe: kernel address.
    start: R,
    /// Direct mode only: packet end pointer.
    end: R,
    /// The context, where the mode keeps it in a register.
    ctx: R,
    /// Where the wire length is, if in a register (else on the stack).
    wirelen: Option<R>,
    /// Probe mode: captured length.
    caplen: R,
    /// Direct mode: `start + X` for a run of indexed loads.
    xbase: R,
}

const DIRECT: Regs = Regs {
    a: R6,
    x: R7,
    start: R2,
    end: R3,
    ctx: R1,
    wirelen: Some(R4),
    caplen: 0,
    xbase: R5,
};
const SKB: Regs = Regs {
    a: R7,
    x: R8,
    start: R9,
    end: 0,
    ctx: R6,
    wirelen: None,
    caplen: 0,
    xbase: 0,
};
/// Skb mode's fast path: direct access to the linear part, with the slow
/// path's registers for everything that both paths share.
const SKB_LINEAR: Regs = Regs {
    a: R7,
    x: R8,
    start: R2,
    end: R3,
    ctx: R6,
    wirelen: None,
    caplen: 0,
    xbase: R5,
};
const PROBE: Regs = Regs {
    a: R7,
    x: R8,
    start: R9,
    end: 0,
    ctx: 0,
    wirelen: None,
    caplen: R6,
    xbase: 0,
};

pub fn run(
    func: &Function,
    guards: &Guards,
    swaps: &Swaps,
    opts: &Options,
    frame: Frame<'_>,
) -> Result<Vec<Item>, Error> {
    let regs = match opts.mode {
        Mode::Direct => DIRECT,
        Mode::Skb => SKB,
        Mode::Probe => PROBE,
    };
    let mut l = Lower {
        func,
        guards,
        swaps,
        opts,
        regs,
        access: opts.mode,
        items: Vec::new(),
        labels: SecondaryMap::new(),
        slow_insts: SecondaryMap::new(),
        guard_fallback: None,
        next_label: 0,
        fail: Label(0),
        fail_used: false,
        landings: Vec::new(),
        prefix_indexed: false,
        frame,
        prefix: matches!(frame, Frame::Filter(_)),
    };
    l.prefix_indexed = l.prefix && l.indexed_loads() <= MAX_PREFIX_INDEXED_LOADS;
    // Every `return 0` (failed checks and the program's own empty
    // `ret #0` blocks) shares one exit placed last, so that jumps to it
    // are forward jumps from everywhere.
    let is_zero =
        |b: Block| func.blocks[b].insts.is_empty() && func.blocks[b].term == Terminator::ReturnK(0);
    let emitted: Vec<Block> = func
        .layout
        .iter()
        .copied()
        .enumerate()
        .filter(|&(n, b)| n == 0 || !is_zero(b))
        .map(|(_, b)| b)
        .collect();
    l.fail = l.new_label();
    let labels = l.block_labels(&is_zero);
    let hybrid = opts.mode == Mode::Skb && linear_fast_path(opts) && l.has_packet_loads();
    if let Frame::Callback(plan) = frame {
        l.callback_prologue(plan);
    }
    l.prologue();
    if opts.mode == Mode::Skb && l.has_packet_loads() && !hybrid && l.prefix {
        l.copy_prefix();
    }
    if hybrid {
        // The fast path reads the skb's linear part directly; a check that
        // fails there continues on the slow path (bpf_skb_load_bytes) at
        // the same block or load, where A, X and M are in the same places.
        let slow_entry = labels[func.entry()].expect("entry label");
        for &b in &func.layout {
            for &i in &func.blocks[b].insts {
                if matches!(
                    l.guards.indexed[i],
                    IndexedGuard::Check { .. } | IndexedGuard::Extend { .. }
                ) {
                    l.slow_insts[i] = Some(l.new_label());
                }
            }
        }
        let slow_entry = l.landing(slow_entry);
        l.enter_linear_fast_path(slow_entry);
        l.labels = l.block_labels(&is_zero);
        l.regs = SKB_LINEAR;
        l.access = Mode::Direct;
        l.guard_fallback = Some(labels.clone());
        // Blocks that read past what direct access reaches go straight to
        // the slow path; fast blocks only reachable through them are left
        // out (the verifier rejects dead code).
        let mut diverted_blocks: SecondaryMap<Block, bool> = SecondaryMap::new();
        for &b in &func.layout {
            diverted_blocks[b] = l.reads_past_direct_reach(b);
        }
        let diverted = |b: Block| diverted_blocks[b];
        let mut reachable: SecondaryMap<Block, bool> = SecondaryMap::new();
        reachable[func.entry()] = true;
        for &b in &func.layout {
            if reachable[b] && !diverted(b) {
                for s in func.blocks[b].term.successors() {
                    reachable[s] = true;
                }
            }
        }
        let fast: Vec<Block> = emitted.iter().copied().filter(|&b| reachable[b]).collect();
        for (n, &b) in fast.iter().enumerate() {
            if diverted(b) {
                l.items.push(Item::Bind(l.label_of(b)));
                let to = l.landing(labels[b].expect("slow label"));
                l.jump(Insn::ja(0), to);
            } else {
                l.block(b, fast.get(n + 1).copied())?;
            }
        }
        l.regs = SKB;
        l.access = Mode::Skb;
        l.guard_fallback = None;
        // Between the two paths, so every jump stays forward.
        for (landing, target) in std::mem::take(&mut l.landings) {
            l.items.push(Item::Bind(landing));
            if l.prefix {
                l.copy_prefix();
            }
            l.jump(Insn::ja(0), target);
        }
    }
    l.labels = labels;
    for (n, &b) in emitted.iter().enumerate() {
        l.block(b, emitted.get(n + 1).copied())?;
    }
    if l.fail_used {
        l.items.push(Item::Bind(l.fail));
        // The callback returns 0 by stopping the loop: the result was
        // set to 0 before it started, and only a return writes it.
        let stop = matches!(frame, Frame::Callback(_)) as i32;
        l.emit(Insn::mov32_imm(R0, stop));
        l.emit(Insn::exit());
    }
    Ok(l.items)
}

/// The scratch words a loop carries from pass to pass.
fn carried_slots(plan: &LoopPlan) -> impl Iterator<Item = i16> {
    let carried = plan.carried;
    (0..16i16).filter(move |&slot| carried.has(Values::mem(slot as u32)))
}

/// Whether skb mode may read the linear part directly: the context must be
/// a TC `__sk_buff` (socket filters have no `data`/`data_end`).
fn linear_fast_path(opts: &Options) -> bool {
    opts.linear_fast_path && matches!(opts.hook, Hook::TcIngress | Hook::TcEgress | Hook::Offline)
}

struct Lower<'a> {
    func: &'a Function,
    guards: &'a Guards,
    swaps: &'a Swaps,
    opts: &'a Options,
    regs: Regs,
    /// How the code being emitted reads packets (skb mode's fast path
    /// reads like direct mode).
    access: Mode,
    items: Vec<Item>,
    labels: SecondaryMap<Block, Option<Label>>,
    /// Hybrid skb mode: the slow path's label before each checked load.
    slow_insts: SecondaryMap<Inst, Option<Label>>,
    /// Hybrid skb mode, while emitting the fast path: where a failed check
    /// continues (the slow path's block labels) instead of returning 0.
    guard_fallback: Option<SecondaryMap<Block, Option<Label>>>,
    next_label: u32,
    fail: Label,
    fail_used: bool,
    /// Hybrid skb mode: where the fast path enters the slow path, each with
    /// its target; the landing copies the packet's prefix first.
    landings: Vec<(Label, Label)>,
    /// Skb mode: indexed loads read the prefix copy too. Each adds a branch
    /// on X that the verifier explores both ways, so only in functions with
    /// few of them (unrolled `protochain` loops have hundreds).
    prefix_indexed: bool,
    frame: Frame<'a>,
    /// Skb mode: the function copies the packet's first bytes to its stack
    /// (the filter; the callback's frame has no room for them).
    prefix: bool,
}

/// The byte-swap width for a load, if any (packets are big-endian).
fn swap_bits(size: Size) -> Option<i32> {
    match size {
        Size::B => None,
        Size::H => Some(16),
        Size::W => Some(32),
    }
}

fn ldx_size(size: Size) -> u8 {
    match size {
        Size::B => op::B,
        Size::H => op::H,
        Size::W => op::W,
    }
}

fn jmp_op(cond: Cond) -> u8 {
    match cond {
        Cond::Eq => op::JEQ,
        Cond::Gt => op::JGT,
        Cond::Ge => op::JGE,
        Cond::Set => op::JSET,
    }
}

/// The condition that holds exactly when `cond` does not (JSET has none).
fn inverse(cond: Cond) -> Option<u8> {
    match cond {
        Cond::Eq => Some(op::JNE),
        Cond::Gt => Some(op::JLE),
        Cond::Ge => Some(op::JLT),
        Cond::Set => None,
    }
}

impl<'a> Lower<'a> {
    fn new_label(&mut self) -> Label {
        self.next_label += 1;
        Label(self.next_label - 1)
    }

    fn emit(&mut self, i: Insn) {
        self.items.push(Item::Insn(i));
    }

    fn emit_all(&mut self, is: impl IntoIterator<Item = Insn>) {
        for i in is {
            self.emit(i);
        }
    }

    fn jump(&mut self, i: Insn, to: Label) {
        self.fail_used |= to == self.fail;
        self.items.push(Item::Jump(i, to));
    }

    fn jump_fail(&mut self, i: Insn) {
        self.fail_used = true;
        self.jump(i, self.fail);
    }

    /// A label per block of the layout; empty `ret #0` blocks share `fail`.
    fn block_labels(
        &mut self,
        is_zero: &dyn Fn(Block) -> bool,
    ) -> SecondaryMap<Block, Option<Label>> {
        let mut labels = SecondaryMap::new();
        for &b in &self.func.layout {
            labels[b] = Some(if is_zero(b) && b != self.func.entry() {
                self.fail
            } else {
                self.new_label()
            });
        }
        labels
    }

    /// Whether block `b` checks or loads past what direct access reaches.
    fn reads_past_direct_reach(&self, b: Block) -> bool {
        let limit = super::simplify::MAX_DIRECT_OFFSET;
        let far = |end: u64| end > limit;
        self.guards.block_entry[b].is_some_and(far)
            || self.func.blocks[b].insts.iter().any(|&i| {
                let end = match self.func.insts[i] {
                    InstData::LoadAbs { size, k } | InstData::LoadInd { size, k } => {
                        k as u64 + size.bytes() as u64
                    }
                    InstData::LoadMsh { k } => k as u64 + 1,
                    _ => 0,
                };
                let checked = match self.guards.indexed[i] {
                    IndexedGuard::Check { max_end } | IndexedGuard::Extend { max_end } => max_end,
                    _ => 0,
                };
                far(end) || far(checked)
            })
    }

    /// Skb mode: switches to direct reads of the linear part when the
    /// caller's window covers it (`end` at or past `skb->len`, `start`
    /// within [`crate::MAX_START_OFFSET`]); else goes to `slow`. Expects
    /// the original `end` in r5 (see `prologue`).
    fn enter_linear_fast_path(&mut self, slow: Label) {
        let r = SKB_LINEAR;
        self.emit(Insn::ldx(op::W, R0, r.ctx, skb_field::LEN));
        self.jump(Insn::jmp_reg(op::JLT, R5, R0, 0), slow);
        self.jump(
            Insn::jmp_imm(op::JGT, SKB.start, crate::MAX_START_OFFSET as i32, 0),
            slow,
        );
        self.emit(Insn::ldx(op::W, r.start, r.ctx, skb_field::DATA));
        self.emit(Insn::ldx(op::W, r.end, r.ctx, skb_field::DATA_END));
        self.emit(Insn::alu64_reg(op::ADD, r.start, SKB.start));
    }

    /// Jumps where a failed bounds check goes: `return 0`, or on skb mode's
    /// fast path, the slow path at `slow` (the same block or load).
    fn jump_check_failed(&mut self, i: Insn, slow: Option<Label>) {
        match (self.guard_fallback.is_some(), slow) {
            (true, Some(l)) => {
                let l = self.landing(l);
                self.jump(i, l)
            }
            _ => self.jump_fail(i),
        }
    }

    /// The landing (one per slow-path target) through which the fast path
    /// enters the slow path at `target`.
    fn landing(&mut self, target: Label) -> Label {
        if let Some(&(l, _)) = self.landings.iter().find(|(_, t)| *t == target) {
            return l;
        }
        let l = self.new_label();
        self.landings.push((l, target));
        l
    }

    /// Skb mode: copies the first `min(caplen, PREFIX_LEN)` bytes with one
    /// `bpf_skb_load_bytes`, so that the slow path's loads within them read
    /// the stack instead of calling the helper each (a helper call costs
    /// about as much as the whole fast path). Sets `PREFIX_OK`. Clobbers
    /// r0-r5; A, X, M, ctx and start are in r6-r9 and the stack.
    fn copy_prefix(&mut self) {
        let (r, done) = (SKB, self.new_label());
        self.emit(Insn::st_imm(op::DW, R10, stack::PREFIX_OK, 0));
        self.emit(Insn::ldx(op::DW, R4, R10, stack::CAPLEN));
        self.jump(Insn::jmp_imm(op::JEQ, R4, 0, 0), done);
        // min(caplen, PREFIX_LEN) as 1 + min(caplen - 1, PREFIX_LEN - 1):
        // verifiers before 6.7 learn nothing from `caplen != 0`, and the
        // helper refuses a length that may be 0.
        self.emit(Insn::alu64_imm(op::ADD, R4, -1));
        self.emit(Insn::jmp_imm(op::JLE, R4, stack::PREFIX_LEN as i32 - 1, 1));
        self.emit(Insn::mov64_imm(R4, stack::PREFIX_LEN as i32 - 1));
        self.emit(Insn::alu64_imm(op::ADD, R4, 1));
        self.emit(Insn::mov64_reg(R1, r.ctx));
        self.emit(Insn::mov64_reg(R2, r.start));
        self.emit(Insn::mov64_reg(R3, R10));
        self.emit(Insn::alu64_imm(op::ADD, R3, stack::PREFIX as i32));
        self.emit(Insn::call_helper(helper::SKB_LOAD_BYTES));
        self.jump(Insn::jmp_imm(op::JNE, R0, 0, 0), done);
        self.emit(Insn::st_imm(op::DW, R10, stack::PREFIX_OK, 1));
        self.items.push(Item::Bind(done));
    }

    fn label_of(&self, b: Block) -> Label {
        self.labels[b].expect("every block in the layout has a label")
    }

    /// The loop's plan, in either function.
    fn plan(&self) -> Option<&'a LoopPlan> {
        match self.frame {
            Frame::Filter(plan) => plan,
            Frame::Callback(plan) => Some(plan),
        }
    }

    /// Whether this function or its loop reads `len` (the filter hands it
    /// over).
    fn needs_len(&self) -> bool {
        self.uses_len() || self.plan().is_some_and(|p| p.uses_len)
    }

    /// Whether this function or its loop reads the packet.
    fn needs_packet(&self) -> bool {
        self.has_packet_loads() || self.plan().is_some_and(|p| p.packet_loads)
    }

    fn uses_len(&self) -> bool {
        self.func.layout.iter().any(|&b| {
            self.func
                .block_insts(b)
                .any(|i| matches!(i, InstData::LoadLen { .. }))
        })
    }

    fn indexed_loads(&self) -> usize {
        self.func
            .layout
            .iter()
            .map(|&b| {
                self.func
                    .block_insts(b)
                    .filter(|i| matches!(i, InstData::LoadInd { .. }))
                    .count()
            })
            .sum()
    }

    fn has_packet_loads(&self) -> bool {
        self.func.layout.iter().any(|&b| {
            self.func.block_insts(b).any(|i| {
                matches!(
                    i,
                    InstData::LoadAbs { .. } | InstData::LoadInd { .. } | InstData::LoadMsh { .. }
                )
            })
        })
    }

    /// Moves the arguments where the mode keeps them, and zeroes what may
    /// be read before it is written.
    fn prologue(&mut self) {
        let r = self.regs;
        match self.opts.mode {
            Mode::Direct => {}
            Mode::Skb => {
                self.emit(Insn::mov64_reg(r.ctx, R1));
                if self.needs_packet() {
                    self.emit(Insn::mov64_reg(r.start, R2));
                    if linear_fast_path(self.opts) && self.has_packet_loads() {
                        // For enter_linear_fast_path.
                        self.emit(Insn::mov64_reg(R5, R3));
                    }
                    self.emit(Insn::alu64_reg(op::SUB, R3, R2));
                    self.emit(Insn::stx(op::DW, R10, R3, stack::CAPLEN));
                }
                if self.needs_len() {
                    self.emit(Insn::stx(op::DW, R10, R4, stack::WIRELEN));
                }
            }
            Mode::Probe => {
                if self.needs_packet() {
                    self.emit(Insn::mov64_reg(r.start, R2));
                    self.emit(Insn::mov64_reg(r.caplen, R3));
                    self.emit(Insn::alu64_reg(op::SUB, r.caplen, R2));
                }
                if self.needs_len() {
                    self.emit(Insn::stx(op::DW, R10, R4, stack::WIRELEN));
                }
            }
        }
        // The callback's state came from the filter (callback_prologue).
        let carried = match self.frame {
            Frame::Callback(_) => return,
            Frame::Filter(plan) => plan.map_or(0, |p| p.carried.0),
        };
        let undefined = init::run(self.func, 0, carried);
        if undefined.has(Values::A) {
            self.emit(Insn::mov32_imm(r.a, 0));
        }
        if undefined.has(Values::X) {
            self.emit(Insn::mov32_imm(r.x, 0));
        }
        for slot in 0..16 {
            if undefined.has(Values::mem(slot)) {
                self.emit(Insn::st_imm(op::W, R10, stack::MEM + 4 * slot as i16, 0));
            }
        }
    }

    fn block(&mut self, b: Block, next: Option<Block>) -> Result<(), Error> {
        self.items.push(Item::Bind(self.label_of(b)));
        if let Some(len) = self.guards.block_entry[b] {
            let slow = self.guard_fallback.as_ref().and_then(|f| f[b]);
            self.check_captured(len, slow);
        }
        let insts: Vec<Inst> = self.func.blocks[b].insts.clone();
        for i in insts {
            self.inst(i)?;
        }
        self.terminator(b, self.func.blocks[b].term, next);
        Ok(())
    }

    /// Fails unless at least `len` bytes were captured.
    fn check_captured(&mut self, len: u64, slow: Option<Label>) {
        let r = self.regs;
        match self.access {
            Mode::Direct => {
                // simplify cut every load past MAX_DIRECT_OFFSET.
                self.emit(Insn::mov64_reg(R0, r.start));
                self.emit(Insn::alu64_imm(op::ADD, R0, len as i32));
                self.jump_check_failed(Insn::jmp_reg(op::JGT, R0, r.end, 0), slow);
            }
            Mode::Skb => {
                self.emit(Insn::ldx(op::DW, R0, R10, stack::CAPLEN));
                self.fail_if_below(R0, len);
            }
            Mode::Probe => self.fail_if_below(r.caplen, len),
        }
    }

    /// `if reg < len goto fail`, for any 64-bit `len`.
    fn fail_if_below(&mut self, reg: R, len: u64) {
        if len <= i32::MAX as u64 {
            self.jump_fail(Insn::jmp_imm(op::JLT, reg, len as i32, 0));
        } else {
            self.emit_all(Insn::ld_imm64(R1, len));
            self.jump_fail(Insn::jmp_reg(op::JLT, reg, R1, 0));
        }
    }

    /// `dst = k` as an unsigned 64-bit value.
    fn mov_u32(&mut self, dst: R, k: u32) {
        self.emit(Insn::mov32_imm(dst, k as i32));
    }

    fn inst(&mut self, i: Inst) -> Result<(), Error> {
        let r = self.regs;
        match self.func.insts[i] {
            InstData::LoadAbs { size, k } => {
                self.load_packet(size, None, k, r.a);
                self.swap_loaded(i, size);
            }
            InstData::LoadInd { size, k } => {
                let slow = self.slow_insts[i];
                if self.guard_fallback.is_none() {
                    if let Some(l) = slow {
                        self.items.push(Item::Bind(l));
                    }
                }
                match self.guards.indexed[i] {
                    IndexedGuard::Check { max_end } => self.check_indexed(max_end, slow),
                    IndexedGuard::Extend { max_end } => self.extend_indexed(max_end, slow),
                    _ => {}
                }
                self.load_packet(size, Some(()), k, r.a);
                self.swap_loaded(i, size);
            }
            InstData::LoadMsh { k } => {
                self.load_packet(Size::B, None, k, r.x);
                self.emit(Insn::alu32_imm(op::AND, r.x, 0xf));
                self.emit(Insn::alu32_imm(op::LSH, r.x, 2));
            }
            InstData::LoadLen { dst } => {
                let dst = self.reg(dst);
                match r.wirelen {
                    Some(wirelen) => self.emit(Insn::mov32_reg(dst, wirelen)),
                    _ => self.emit(Insn::ldx(op::W, dst, R10, stack::WIRELEN)),
                }
            }
            InstData::LoadImm { dst, k } => {
                let dst = self.reg(dst);
                self.mov_u32(dst, k);
            }
            InstData::LoadMem { dst, slot } => {
                let dst = self.reg(dst);
                self.emit(Insn::ldx(op::W, dst, R10, stack::MEM + 4 * slot as i16));
            }
            InstData::Store { src, slot } => {
                let src = self.reg(src);
                self.emit(Insn::stx(op::W, R10, src, stack::MEM + 4 * slot as i16));
            }
            InstData::Alu { op: alu, operand } => self.alu(alu, operand),
            InstData::Neg => self.emit(Insn::neg32(r.a)),
            InstData::Tax => self.emit(Insn::mov32_reg(r.x, r.a)),
            InstData::Txa => self.emit(Insn::mov32_reg(r.a, r.x)),
            InstData::LoadAncillary { ad } => self.ancillary(ad)?,
        }
        Ok(())
    }

    /// Puts a loaded value in host order, unless `swaps` keeps it raw.
    fn swap_loaded(&mut self, i: Inst, size: Size) {
        if let (Some(bits), false) = (swap_bits(size), self.swaps.raw_loads[i]) {
            self.emit(Insn::to_be(self.regs.a, bits));
        }
    }

    fn reg(&self, r: Reg) -> R {
        match r {
            Reg::A => self.regs.a,
            Reg::X => self.regs.x,
        }
    }

    /// Fails unless `X + max_end` bytes were captured; in direct mode also
    /// leaves `start + X` in `xbase`, bounded so the verifier accepts it.
    fn check_indexed(&mut self, max_end: u64, slow: Option<Label>) {
        let r = self.regs;
        match self.access {
            Mode::Direct => {
                // simplify cut indexed loads whose k + size passes the limit.
                let room = super::simplify::MAX_DIRECT_OFFSET - max_end;
                self.emit(Insn::mov64_reg(r.xbase, r.x));
                self.jump_check_failed(Insn::jmp_imm(op::JGT, r.xbase, room as i32, 0), slow);
                self.emit(Insn::alu64_reg(op::ADD, r.xbase, r.start));
                self.emit(Insn::mov64_reg(R0, r.xbase));
                self.emit(Insn::alu64_imm(op::ADD, R0, max_end as i32));
                self.jump_check_failed(Insn::jmp_reg(op::JGT, R0, r.end, 0), slow);
            }
            Mode::Skb | Mode::Probe => {
                self.emit(Insn::mov64_reg(R0, r.x));
                if max_end <= i32::MAX as u64 {
                    self.emit(Insn::alu64_imm(op::ADD, R0, max_end as i32));
                } else {
                    self.emit_all(Insn::ld_imm64(R1, max_end));
                    self.emit(Insn::alu64_reg(op::ADD, R0, R1));
                }
                let caplen = if self.access == Mode::Skb {
                    self.emit(Insn::ldx(op::DW, R1, R10, stack::CAPLEN));
                    R1
                } else {
                    r.caplen
                };
                self.jump_fail(Insn::jmp_reg(op::JGT, R0, caplen, 0));
            }
        }
    }

    /// Like [`Self::check_indexed`] where `start + X` is already bounded.
    fn extend_indexed(&mut self, max_end: u64, slow: Option<Label>) {
        let r = self.regs;
        match self.access {
            Mode::Direct => {
                self.emit(Insn::mov64_reg(R0, r.xbase));
                self.emit(Insn::alu64_imm(op::ADD, R0, max_end as i32));
                self.jump_check_failed(Insn::jmp_reg(op::JGT, R0, r.end, 0), slow);
            }
            Mode::Skb | Mode::Probe => self.check_indexed(max_end, slow),
        }
    }

    /// `dst = P[k]` or `P[X + k]` (raw bytes, not yet swapped), already
    /// known to be within the captured length.
    fn load_packet(&mut self, size: Size, indexed: Option<()>, k: u32, dst: R) {
        let r = self.regs;
        let width = ldx_size(size);
        match self.access {
            Mode::Direct => {
                let base = if indexed.is_some() { r.xbase } else { r.start };
                if k <= i16::MAX as u32 {
                    self.emit(Insn::ldx(width, dst, base, k as i16));
                } else {
                    self.emit(Insn::mov64_reg(R0, base));
                    self.emit(Insn::alu64_imm(op::ADD, R0, k as i32));
                    self.emit(Insn::ldx(width, dst, R0, 0));
                }
            }
            Mode::Skb | Mode::Probe => {
                // The offset register: r2 for skb_load_bytes, r3 for probe_read.
                let off = if self.access == Mode::Skb { R2 } else { R3 };
                self.mov_u32(off, k);
                if indexed.is_some() {
                    self.emit(Insn::alu64_reg(op::ADD, off, r.x));
                }
                let done = self.new_label();
                let last = stack::PREFIX_LEN as u64 - size.bytes() as u64;
                if self.access == Mode::Skb && self.prefix && (k as u64) <= last {
                    // Within the prefix copy: read the stack. The guards
                    // already checked `offset + size <= caplen`, and the
                    // copy holds min(caplen, PREFIX_LEN) bytes.
                    let helper = self.new_label();
                    self.emit(Insn::ldx(op::DW, R0, R10, stack::PREFIX_OK));
                    self.jump(Insn::jmp_imm(op::JEQ, R0, 0, 0), helper);
                    if indexed.is_none() {
                        self.load_prefix(size, k as i16, dst);
                        self.jump(Insn::ja(0), done);
                    } else if self.prefix_indexed {
                        // A variable offset: the verifier cannot prove it
                        // aligned and refuses misaligned stack reads, so
                        // bytes, put together in memory order.
                        self.jump(Insn::jmp_imm(op::JGT, off, last as i32, 0), helper);
                        self.emit(Insn::mov64_reg(R1, R10));
                        self.emit(Insn::alu64_reg(op::ADD, R1, off));
                        self.emit(Insn::ldx(op::B, dst, R1, stack::PREFIX));
                        for i in 1..size.bytes() as i16 {
                            self.emit(Insn::ldx(op::B, R0, R1, stack::PREFIX + i));
                            self.emit(Insn::alu64_imm(op::LSH, R0, 8 * i as i32));
                            self.emit(Insn::alu64_reg(op::OR, dst, R0));
                        }
                        self.jump(Insn::ja(0), done);
                    }
                    self.items.push(Item::Bind(helper));
                }
                self.emit(Insn::alu64_reg(op::ADD, off, r.start));
                if self.access == Mode::Skb {
                    self.emit(Insn::mov64_reg(R1, r.ctx));
                    self.emit(Insn::mov64_reg(R3, R10));
                    self.emit(Insn::alu64_imm(op::ADD, R3, stack::BUF as i32));
                    self.emit(Insn::mov64_imm(R4, size.bytes() as i32));
                    self.emit(Insn::call_helper(helper::SKB_LOAD_BYTES));
                } else {
                    self.emit(Insn::mov64_reg(R1, R10));
                    self.emit(Insn::alu64_imm(op::ADD, R1, stack::BUF as i32));
                    self.emit(Insn::mov64_imm(R2, size.bytes() as i32));
                    self.emit(Insn::call_helper(helper::PROBE_READ_KERNEL));
                }
                self.jump_fail(Insn::jmp_imm(op::JNE, R0, 0, 0));
                self.emit(Insn::ldx(width, dst, R10, stack::BUF));
                self.items.push(Item::Bind(done));
            }
        }
    }

    /// `dst` = the raw (wire-order) bytes `k..k + size` of the prefix
    /// copy, from aligned stack reads: one when `k` is aligned for `size`,
    /// else two halves (or bytes) put together in memory order.
    fn load_prefix(&mut self, size: Size, k: i16, dst: R) {
        let at = stack::PREFIX + k;
        let n = size.bytes() as i16;
        if at % n == 0 {
            self.emit(Insn::ldx(ldx_size(size), dst, R10, at));
            return;
        }
        let (part, step) = if n == 4 && at % 2 == 0 {
            (op::H, 2)
        } else {
            (op::B, 1)
        };
        self.emit(Insn::ldx(part, dst, R10, at));
        for i in 1..n / step {
            self.emit(Insn::ldx(part, R1, R10, at + i * step));
            self.emit(Insn::alu64_imm(op::LSH, R1, 8 * (i * step) as i32));
            self.emit(Insn::alu64_reg(op::OR, dst, R1));
        }
    }

    fn alu(&mut self, alu: AluOp, operand: Operand) {
        let r = self.regs;
        let o = match alu {
            AluOp::Add => op::ADD,
            AluOp::Sub => op::SUB,
            AluOp::Mul => op::MUL,
            AluOp::Div => op::DIV,
            AluOp::Mod => op::MOD,
            AluOp::Or => op::OR,
            AluOp::And => op::AND,
            AluOp::Xor => op::XOR,
            AluOp::Lsh => op::LSH,
            AluOp::Rsh => op::RSH,
        };
        match operand {
            Operand::K(k) => {
                if matches!(alu, AluOp::Lsh | AluOp::Rsh) && k >= 32 {
                    // libpcap shifts by the constant in C on a 32-bit value;
                    // x86 masks the count to five bits.
                    self.emit(Insn::alu32_imm(o, r.a, (k & 31) as i32));
                } else {
                    self.emit(Insn::alu32_imm(o, r.a, k as i32));
                }
            }
            Operand::X => {
                match alu {
                    // libpcap returns 0 on division or modulo by zero.
                    AluOp::Div | AluOp::Mod => self.jump_fail(Insn::jmp32_imm(op::JEQ, r.x, 0, 0)),
                    // libpcap shifts by 32 or more to 0; eBPF would mask the count.
                    AluOp::Lsh | AluOp::Rsh => {
                        let shift = self.new_label();
                        let done = self.new_label();
                        self.jump(Insn::jmp32_imm(op::JLT, r.x, 32, 0), shift);
                        self.emit(Insn::mov32_imm(r.a, 0));
                        self.jump(Insn::ja(0), done);
                        self.items.push(Item::Bind(shift));
                        self.emit(Insn::alu32_reg(o, r.a, r.x));
                        self.items.push(Item::Bind(done));
                        return;
                    }
                    _ => {}
                }
                self.emit(Insn::alu32_reg(o, r.a, r.x));
            }
        }
    }

    /// `A = ancillary value` where the hook knows it.
    fn ancillary(&mut self, ad: u32) -> Result<(), Error> {
        let r = self.regs;
        let primitive = ancillary::name(ad);
        let hook = self.opts.hook;
        if ad == ancillary::ALU_XOR_X && hook != Hook::None {
            self.emit(Insn::alu32_reg(op::XOR, r.a, r.x));
            return Ok(());
        }
        if matches!(ad, ancillary::CPU | ancillary::RANDOM) && hook != Hook::None {
            let id = if ad == ancillary::CPU {
                helper::GET_SMP_PROCESSOR_ID
            } else {
                helper::GET_PRANDOM_U32
            };
            self.call_preserving_args(id);
            self.emit(Insn::mov32_reg(r.a, R0));
            return Ok(());
        }
        let unavailable = || Error::Ancillary {
            primitive,
            hook: hook.name(),
        };
        if self.opts.mode == Mode::Probe {
            return Err(Error::AncillaryMode {
                primitive,
                mode: "probe",
            });
        }
        // (field offset in the context, swap a big-endian 16-bit field)
        let field: Option<(i16, bool)> = match hook {
            Hook::None | Hook::Offline => return Err(unavailable()),
            Hook::Xdp => match ad {
                // Every XDP packet is incoming: PACKET_HOST stands for all.
                ancillary::PKTTYPE => {
                    self.mov_u32(r.a, 0);
                    return Ok(());
                }
                ancillary::IFINDEX => Some((12, false)),
                ancillary::QUEUE => Some((16, false)),
                _ => None,
            },
            Hook::TcIngress | Hook::TcEgress | Hook::Socket => match ad {
                ancillary::PKTTYPE if hook == Hook::TcEgress => {
                    // PACKET_OUTGOING: what packet sockets see for sent packets.
                    self.mov_u32(r.a, 4);
                    return Ok(());
                }
                ancillary::PKTTYPE => Some((4, false)),
                ancillary::MARK => Some((8, false)),
                ancillary::QUEUE => Some((12, false)),
                ancillary::PROTOCOL => Some((16, true)),
                ancillary::VLAN_TAG_PRESENT => Some((20, false)),
                ancillary::VLAN_TAG => Some((24, false)),
                ancillary::VLAN_TPID => Some((28, true)),
                ancillary::IFINDEX => Some((40, false)),
                ancillary::RXHASH => Some((68, false)),
                _ => None,
            },
        };
        let (off, swap16) = field.ok_or_else(unavailable)?;
        self.emit(Insn::ldx(op::W, r.a, r.ctx, off));
        if swap16 {
            self.emit(Insn::to_be(r.a, 16));
        }
        Ok(())
    }

    /// Calls a helper without arguments; direct mode keeps its argument
    /// registers (packet pointers included) across it on the stack.
    fn call_preserving_args(&mut self, id: i32) {
        let direct = self.access == Mode::Direct;
        let saved = [R1, R2, R3, R4];
        if direct {
            for (n, &reg) in saved.iter().enumerate() {
                self.emit(Insn::stx(op::DW, R10, reg, stack::SAVE + 8 * n as i16));
            }
        }
        self.emit(Insn::call_helper(id));
        if direct {
            for (n, &reg) in saved.iter().enumerate() {
                self.emit(Insn::ldx(op::DW, reg, R10, stack::SAVE + 8 * n as i16));
            }
        }
    }

    /// `r0 = value; exit`: in the callback, 0 runs the next pass and 1
    /// stops the loop.
    fn stop_loop(&mut self, value: i32) {
        self.emit(Insn::mov32_imm(R0, value));
        self.emit(Insn::exit());
    }

    /// The filter leaves its unrolled passes: it saves the loop's state and
    /// its own arguments in the loop state, runs the callback with
    /// `bpf_loop` from header `header` and returns what the loop returned
    /// (0 if it never did within `max_passes`).
    fn enter_loop(&mut self, plan: &LoopPlan, header: u32) {
        let r = self.regs;
        let at = |f: i16| loop_ctx::BASE + f;
        self.emit(Insn::stx(op::W, R10, r.a, at(loop_ctx::A)));
        self.emit(Insn::stx(op::W, R10, r.x, at(loop_ctx::X)));
        for slot in carried_slots(plan) {
            self.emit(Insn::ldx(op::W, R0, R10, stack::MEM + 4 * slot));
            self.emit(Insn::stx(op::W, R10, R0, at(loop_ctx::MEM + 4 * slot)));
        }
        self.emit(Insn::st_imm(
            op::W,
            R10,
            at(loop_ctx::RESUME),
            header as i32,
        ));
        self.emit(Insn::st_imm(op::W, R10, at(loop_ctx::RET), 0));
        self.emit(Insn::st_imm(op::W, R10, at(loop_ctx::SAVED_RESUME), -1));
        // The arguments, in the mode's terms (skb mode's offsets even on
        // its fast path, whose packet pointers the callback makes again).
        match self.opts.mode {
            Mode::Direct => {
                self.emit(Insn::stx(op::DW, R10, R1, at(loop_ctx::CTX)));
                self.emit(Insn::stx(op::DW, R10, R2, at(loop_ctx::START)));
                self.emit(Insn::stx(op::DW, R10, R3, at(loop_ctx::END)));
                if plan.uses_len {
                    self.emit(Insn::stx(op::DW, R10, R4, at(loop_ctx::WIRELEN)));
                }
            }
            Mode::Skb | Mode::Probe => {
                if self.opts.mode == Mode::Skb {
                    self.emit(Insn::stx(op::DW, R10, SKB.ctx, at(loop_ctx::CTX)));
                }
                if plan.packet_loads {
                    let start = SKB.start;
                    const _: () = assert!(SKB.start == PROBE.start);
                    self.emit(Insn::stx(op::DW, R10, start, at(loop_ctx::START)));
                    if self.opts.mode == Mode::Skb {
                        self.emit(Insn::ldx(op::DW, R0, R10, stack::CAPLEN));
                    } else {
                        self.emit(Insn::mov64_reg(R0, PROBE.caplen));
                    }
                    self.emit(Insn::alu64_reg(op::ADD, R0, start));
                    self.emit(Insn::stx(op::DW, R10, R0, at(loop_ctx::END)));
                }
                if plan.uses_len {
                    self.emit(Insn::ldx(op::DW, R0, R10, stack::WIRELEN));
                    self.emit(Insn::stx(op::DW, R10, R0, at(loop_ctx::WIRELEN)));
                }
            }
        }
        self.emit(Insn::mov32_imm(R1, plan.max_passes as i32));
        // The callback follows the filter; translate() sets the distance.
        self.emit_all(Insn::ld_func_addr(R2, 0));
        self.emit(Insn::mov64_reg(R3, R10));
        self.emit(Insn::alu64_imm(op::ADD, R3, loop_ctx::BASE as i32));
        self.emit(Insn::mov64_imm(R4, 0));
        self.emit(Insn::call_helper(helper::LOOP));
        self.emit(Insn::ldx(op::W, R0, R10, at(loop_ctx::RET)));
        self.emit(Insn::exit());
    }

    /// The callback's first instructions (`r1` = pass index, `r2` = the
    /// loop state): the state into its registers and scratch words, then
    /// the filter's arguments as the filter received them, for
    /// [`Self::prologue`].
    fn callback_prologue(&mut self, plan: &LoopPlan) {
        let r = self.regs;
        self.emit(Insn::stx(op::DW, R10, R2, callback_stack::LOOP));
        if plan.detect_cycles {
            self.emit(Insn::stx(op::DW, R10, R1, callback_stack::INDEX));
        }
        self.emit(Insn::mov64_reg(R0, R2));
        self.emit(Insn::ldx(op::W, r.a, R0, loop_ctx::A));
        self.emit(Insn::ldx(op::W, r.x, R0, loop_ctx::X));
        for slot in carried_slots(plan) {
            self.emit(Insn::ldx(op::W, R1, R0, loop_ctx::MEM + 4 * slot));
            self.emit(Insn::stx(op::W, R10, R1, stack::MEM + 4 * slot));
        }
        if self.opts.mode != Mode::Probe {
            self.emit(Insn::ldx(op::DW, R1, R0, loop_ctx::CTX));
        }
        if self.needs_packet() {
            self.emit(Insn::ldx(op::DW, R2, R0, loop_ctx::START));
            self.emit(Insn::ldx(op::DW, R3, R0, loop_ctx::END));
        }
        if self.needs_len() {
            self.emit(Insn::ldx(op::DW, R4, R0, loop_ctx::WIRELEN));
        }
    }

    /// The end of a pass: the state into the loop state, the next pass to
    /// start at `header`. With cycle detection (Brent's: the state saved
    /// at each power-of-two pass, compared at every later one), a pass
    /// that would start as the saved one did ends the loop with 0: libpcap
    /// would run forever.
    fn continue_loop(&mut self, plan: &LoopPlan, header: u32) {
        let r = self.regs;
        self.emit(Insn::ldx(op::DW, R0, R10, callback_stack::LOOP));
        self.emit(Insn::stx(op::W, R0, r.a, loop_ctx::A));
        self.emit(Insn::stx(op::W, R0, r.x, loop_ctx::X));
        for slot in carried_slots(plan) {
            self.emit(Insn::ldx(op::W, R1, R10, stack::MEM + 4 * slot));
            self.emit(Insn::stx(op::W, R0, R1, loop_ctx::MEM + 4 * slot));
        }
        self.emit(Insn::st_imm(op::W, R0, loop_ctx::RESUME, header as i32));
        if plan.detect_cycles {
            let (differ, done) = (self.new_label(), self.new_label());
            self.emit(Insn::ldx(op::DW, R1, R10, callback_stack::INDEX));
            self.jump(Insn::jmp_imm(op::JLT, R1, CYCLE_CHECK_FROM, 0), done);
            self.emit(Insn::ldx(op::W, R2, R0, loop_ctx::SAVED_RESUME));
            self.jump(Insn::jmp32_imm(op::JNE, R2, header as i32, 0), differ);
            self.emit(Insn::ldx(op::W, R2, R0, loop_ctx::SAVED_A));
            self.jump(Insn::jmp32_reg(op::JNE, R2, r.a, 0), differ);
            self.emit(Insn::ldx(op::W, R2, R0, loop_ctx::SAVED_X));
            self.jump(Insn::jmp32_reg(op::JNE, R2, r.x, 0), differ);
            self.stop_loop(1);
            self.items.push(Item::Bind(differ));
            // index & (index - 1) == 0: a power of two, save.
            self.emit(Insn::mov64_reg(R2, R1));
            self.emit(Insn::alu64_imm(op::ADD, R2, -1));
            self.emit(Insn::alu64_reg(op::AND, R2, R1));
            self.jump(Insn::jmp_imm(op::JNE, R2, 0, 0), done);
            self.emit(Insn::st_imm(
                op::W,
                R0,
                loop_ctx::SAVED_RESUME,
                header as i32,
            ));
            self.emit(Insn::stx(op::W, R0, r.a, loop_ctx::SAVED_A));
            self.emit(Insn::stx(op::W, R0, r.x, loop_ctx::SAVED_X));
            self.items.push(Item::Bind(done));
        }
        self.stop_loop(0);
    }

    fn terminator(&mut self, block: Block, term: Terminator, next: Option<Block>) {
        let r = self.regs;
        match (term, self.frame) {
            (Terminator::ReturnK(0), Frame::Callback(_)) => self.jump_fail(Insn::ja(0)),
            (Terminator::ReturnK(k), Frame::Callback(_)) => {
                self.emit(Insn::ldx(op::DW, R0, R10, callback_stack::LOOP));
                self.emit(Insn::st_imm(op::W, R0, loop_ctx::RET, k as i32));
                self.stop_loop(1);
            }
            (Terminator::ReturnA, Frame::Callback(_)) => {
                self.emit(Insn::ldx(op::DW, R0, R10, callback_stack::LOOP));
                self.emit(Insn::stx(op::W, R0, r.a, loop_ctx::RET));
                self.stop_loop(1);
            }
            (Terminator::ReturnK(k), _) => {
                self.mov_u32(R0, k);
                self.emit(Insn::exit());
            }
            (Terminator::ReturnA, _) => {
                self.emit(Insn::mov32_reg(R0, r.a));
                self.emit(Insn::exit());
            }
            (Terminator::Enter(header), Frame::Filter(Some(plan))) => self.enter_loop(plan, header),
            (Terminator::Continue(header), Frame::Callback(plan)) => {
                self.continue_loop(plan, header)
            }
            (Terminator::Enter(_) | Terminator::Continue(_), _) => {
                unreachable!("loop exits only in the functions of a loop plan")
            }
            (
                Terminator::Resume {
                    header,
                    then,
                    otherwise,
                },
                _,
            ) => {
                self.emit(Insn::ldx(op::DW, R0, R10, callback_stack::LOOP));
                self.emit(Insn::ldx(op::W, R0, R0, loop_ctx::RESUME));
                let (lt, lf) = (self.label_of(then), self.label_of(otherwise));
                self.jump(Insn::jmp32_imm(op::JEQ, R0, header as i32, 0), lt);
                if Some(otherwise) != next {
                    self.jump(Insn::ja(0), lf);
                }
            }
            (Terminator::Jump(t), _) => {
                if Some(t) != next {
                    let l = self.label_of(t);
                    self.jump(Insn::ja(0), l);
                }
            }
            (
                Terminator::Branch {
                    cond,
                    operand,
                    then,
                    otherwise,
                },
                _,
            ) => {
                // Against a raw (wire-order) value, compare a swapped constant.
                let operand = match (operand, self.swaps.raw_branches[block]) {
                    (Operand::K(k), Some(Size::H)) if cond == Cond::Eq && k > 0xffff => {
                        Operand::K(0x1_0000)
                    }
                    (Operand::K(k), Some(Size::H)) => Operand::K((k as u16).swap_bytes() as u32),
                    (Operand::K(k), Some(Size::W)) => Operand::K(k.swap_bytes()),
                    (o, _) => o,
                };
                let compare = |o: u8| match operand {
                    Operand::K(k) => Insn::jmp32_imm(o, r.a, k as i32, 0),
                    Operand::X => Insn::jmp32_reg(o, r.a, r.x, 0),
                };
                let (lt, lf) = (self.label_of(then), self.label_of(otherwise));
                match inverse(cond) {
                    Some(inv) if Some(then) == next => self.jump(compare(inv), lf),
                    _ => {
                        self.jump(compare(jmp_op(cond)), lt);
                        if Some(otherwise) != next {
                            self.jump(Insn::ja(0), lf);
                        }
                    }
                }
            }
        }
    }
}
