//! Pass 2: build the IR from validated cBPF.
//!
//! Basic blocks start at the entry, at jump targets and after jumps. Every
//! block is instantiated per *loop iteration*: a block reached by a forward
//! edge keeps its iteration, one reached by a backward edge gets the next,
//! and a forward edge that leaves every loop (lands outside every
//! `[target, source]` range of a backward jump) starts again at 0, so each
//! loop of a program (two `ip6 protochain`s, say) has the whole bound. The
//! result is acyclic; blocks are laid out in a topological order, so the
//! eBPF output only jumps forward and the verifier never sees a loop.
//!
//! A backward jump past the bound leads, by [`LoopForm`]:
//! - `Unrolled`: to `return 0`;
//! - `Callback`: to [`Terminator::Enter`] its target, a *loop header*.
//!   The loop callback is built the same way from every header (two
//!   passes: the second backward jump is a [`Terminator::Continue`] at its
//!   header), with an entry that dispatches on the header the call resumes
//!   at. Every
//!   cycle of the program goes through a backward jump, so cutting them
//!   all leaves the callback acyclic too.

use std::collections::HashMap;

use crate::cbpf::{self, ancillary, op};
use crate::ir::{
    AluOp, Block, BlockData, Cond, Function, InstData, Operand, Reg, Size, Terminator,
};
use crate::passes::validate::jump_targets;
use crate::{Error, LoopForm, Options};

/// Unrolling stops with an error past this many IR instructions.
pub const MAX_UNROLLED_INSTS: usize = 200_000;

/// Passes one call of the loop callback runs before it returns to
/// `bpf_loop` (the second unrolled in it): the call's own cost (its state
/// in and out, about 1 ns) spread over two headers brought 64 headers of
/// `ip6 protochain` from about 205 to 165-185 ns, the unrolled form's
/// 160; four passes a call gained too little for twice the verifier's
/// work.
const CALLBACK_PASSES: u32 = 2;

/// The IR of a program: the filter function and, for loops translated as
/// [`LoopForm::Callback`], the loop callback.
#[derive(Clone, Debug)]
pub struct Built {
    pub main: Function,
    pub callback: Option<Function>,
    /// The cBPF position of each loop header, by the index that
    /// [`Terminator::Enter`], [`Terminator::Continue`] and
    /// [`Terminator::Resume`] carry.
    pub headers: Vec<usize>,
}

/// What a backward jump past the iteration bound becomes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PastBound {
    ReturnZero,
    Enter,
    Continue,
}

pub fn run(prog: &[cbpf::Insn], opts: &Options) -> Result<Built, Error> {
    let leaders = find_leaders(prog);
    let in_loop = find_loop_ranges(prog);
    let headers = find_headers(prog);
    let shape = Shape {
        prog,
        leaders: &leaders,
        in_loop: &in_loop,
        headers: &headers,
    };
    let callback_form = opts.loops == LoopForm::Callback && !headers.is_empty();
    let main = if callback_form {
        shape.function(&[0], opts.unrolled_loop_passes, PastBound::Enter)?
    } else {
        shape.function(&[0], opts.max_loop_iterations, PastBound::ReturnZero)?
    };
    let callback = if callback_form {
        Some(shape.function(&headers, CALLBACK_PASSES - 1, PastBound::Continue)?)
    } else {
        None
    };
    Ok(Built {
        main,
        callback,
        headers,
    })
}

/// The cBPF program and what is known of its control flow.
struct Shape<'a> {
    prog: &'a [cbpf::Insn],
    leaders: &'a [bool],
    in_loop: &'a [bool],
    headers: &'a [usize],
}

impl Shape<'_> {
    /// A function entered at `entries` (more than one: a dispatch on the
    /// header index), each at iteration 0, with at most `bound` backward
    /// jumps on a path.
    fn function(&self, entries: &[usize], bound: u32, past: PastBound) -> Result<Function, Error> {
        let mut b = Builder {
            shape: self,
            bound,
            past,
            func: Function::default(),
            blocks: HashMap::new(),
            past_bound: HashMap::new(),
            worklist: Vec::new(),
        };
        let entry = if let [pc] = entries {
            b.block_at(*pc, 0)
        } else {
            // Resume at header n: a chain of tests, the last one implied.
            let entry = b.new_block();
            let mut at = entry;
            for (n, &pc) in entries.iter().enumerate() {
                let target = b.block_at(pc, 0);
                if n + 1 == entries.len() {
                    b.func.blocks[at].term = Terminator::Jump(target);
                } else {
                    let next = b.new_block();
                    b.func.blocks[at].term = Terminator::Resume {
                        header: n as u32,
                        then: target,
                        otherwise: next,
                    };
                    at = next;
                }
            }
            entry
        };
        while let Some((pc, iter, block)) = b.worklist.pop() {
            b.fill(pc, iter, block)?;
        }
        let mut func = b.func;
        func.layout = topological_order(&func, entry);
        Ok(func)
    }
}

/// Targets of backward jumps, sorted: the loop headers.
fn find_headers(prog: &[cbpf::Insn]) -> Vec<usize> {
    let mut headers = Vec::new();
    for (pc, insn) in prog.iter().enumerate() {
        if insn.class() == op::JMP {
            let (t, f) = jump_targets(pc, insn);
            for target in [t, f] {
                if target as usize <= pc {
                    headers.push(target as usize);
                }
            }
        }
    }
    headers.sort_unstable();
    headers.dedup();
    headers
}

/// `in_loop[pc]`: some backward jump's `[target, source]` range holds pc.
fn find_loop_ranges(prog: &[cbpf::Insn]) -> Vec<bool> {
    let mut in_loop = vec![false; prog.len()];
    for (pc, insn) in prog.iter().enumerate() {
        if insn.class() == op::JMP {
            let (t, f) = jump_targets(pc, insn);
            for target in [t, f] {
                if target as usize <= pc {
                    in_loop[target as usize..=pc]
                        .iter_mut()
                        .for_each(|x| *x = true);
                }
            }
        }
    }
    in_loop
}

/// Reverse post-order from the entry: every edge goes forward.
fn topological_order(func: &Function, entry: Block) -> Vec<Block> {
    let mut visited: cranelift_entity::SecondaryMap<Block, bool> =
        cranelift_entity::SecondaryMap::new();
    let mut post = Vec::with_capacity(func.blocks.len());
    // Iterative DFS (programs can be deep): (block, successors pushed yet).
    let mut stack = vec![(entry, false)];
    while let Some((b, expanded)) = stack.pop() {
        if expanded {
            post.push(b);
            continue;
        }
        if visited[b] {
            continue;
        }
        visited[b] = true;
        stack.push((b, true));
        // Successors pushed last are finished first, so `then` (pushed
        // first) lands right after its block: libpcap mostly jumps there by 0.
        let succs: Vec<Block> = func.blocks[b].term.successors().collect();
        for s in succs {
            if !visited[s] {
                stack.push((s, false));
            }
        }
    }
    post.reverse();
    post
}

/// `leaders[pc]` is true where a basic block starts.
fn find_leaders(prog: &[cbpf::Insn]) -> Vec<bool> {
    let mut leaders = vec![false; prog.len() + 1];
    leaders[0] = true;
    for (pc, insn) in prog.iter().enumerate() {
        match insn.class() {
            op::JMP => {
                let (t, f) = jump_targets(pc, insn);
                leaders[t as usize] = true;
                leaders[f as usize] = true;
                leaders[pc + 1] = true;
            }
            op::RET => leaders[pc + 1] = true,
            _ => {}
        }
    }
    leaders
}

struct Builder<'a> {
    shape: &'a Shape<'a>,
    bound: u32,
    past: PastBound,
    func: Function,
    blocks: HashMap<(usize, u32), Block>,
    /// The block a backward jump to `pc` past the bound leads to (one
    /// shared `return 0` when that is what it does).
    past_bound: HashMap<usize, Block>,
    worklist: Vec<(usize, u32, Block)>,
}

impl Builder<'_> {
    fn new_block(&mut self) -> Block {
        self.func.blocks.push(BlockData {
            insts: Vec::new(),
            term: Terminator::ReturnK(0),
        })
    }

    /// The block for cBPF position `pc` in loop iteration `iter`.
    fn block_at(&mut self, pc: usize, iter: u32) -> Block {
        if iter > self.bound {
            let key = if self.past == PastBound::ReturnZero {
                usize::MAX
            } else {
                pc
            };
            if let Some(&b) = self.past_bound.get(&key) {
                return b;
            }
            let b = self.new_block();
            // Only backward jumps raise the iteration: `pc` is a header.
            let header = self.shape.headers.binary_search(&pc).unwrap_or(0) as u32;
            self.func.blocks[b].term = match self.past {
                PastBound::ReturnZero => Terminator::ReturnK(0),
                PastBound::Enter => Terminator::Enter(header),
                PastBound::Continue => Terminator::Continue(header),
            };
            self.past_bound.insert(key, b);
            return b;
        }
        if let Some(&b) = self.blocks.get(&(pc, iter)) {
            return b;
        }
        let b = self.new_block();
        self.blocks.insert((pc, iter), b);
        self.worklist.push((pc, iter, b));
        b
    }

    fn successor(&mut self, from: usize, to: i64, iter: u32) -> Block {
        let to = to as usize;
        if to <= from {
            self.block_at(to, iter + 1)
        } else if !self.shape.in_loop[to] {
            self.block_at(to, 0)
        } else {
            self.block_at(to, iter)
        }
    }

    fn fill(&mut self, start: usize, iter: u32, block: Block) -> Result<(), Error> {
        let mut pc = start;
        loop {
            let insn = self.shape.prog[pc];
            match insn.class() {
                op::JMP => {
                    let (t, f) = jump_targets(pc, &insn);
                    let term = if insn.op() == op::JA {
                        Terminator::Jump(self.successor(pc, t, iter))
                    } else {
                        let cond = match insn.op() {
                            op::JEQ => Cond::Eq,
                            op::JGT => Cond::Gt,
                            op::JGE => Cond::Ge,
                            _ => Cond::Set,
                        };
                        let operand = if insn.src() == op::X {
                            Operand::X
                        } else {
                            Operand::K(insn.k)
                        };
                        let then = self.successor(pc, t, iter);
                        let otherwise = self.successor(pc, f, iter);
                        Terminator::Branch {
                            cond,
                            operand,
                            then,
                            otherwise,
                        }
                    };
                    self.func.blocks[block].term = term;
                    return Ok(());
                }
                op::RET => {
                    self.func.blocks[block].term = if insn.rval() == op::A {
                        Terminator::ReturnA
                    } else {
                        Terminator::ReturnK(insn.k)
                    };
                    return Ok(());
                }
                _ => {
                    let inst = self.func.insts.push(lift(&insn));
                    self.func.blocks[block].insts.push(inst);
                    if self.func.insts.len() > MAX_UNROLLED_INSTS {
                        return Err(Error::UnrollTooLarge(MAX_UNROLLED_INSTS));
                    }
                }
            }
            pc += 1;
            if self.shape.leaders[pc] {
                // Fall through into the next block (validate ensured it exists).
                let next = self.block_at(pc, iter);
                self.func.blocks[block].term = Terminator::Jump(next);
                return Ok(());
            }
        }
    }
}

fn size_of(insn: &cbpf::Insn) -> Size {
    match insn.size() {
        op::B => Size::B,
        op::H => Size::H,
        _ => Size::W,
    }
}

/// One straight-line cBPF instruction as IR (validate checked the opcode).
fn lift(insn: &cbpf::Insn) -> InstData {
    let k = insn.k;
    match insn.class() {
        op::LD | op::LDX => {
            let dst = if insn.class() == op::LD { Reg::A } else { Reg::X };
            match insn.mode() {
                op::ABS if k >= ancillary::OFF => InstData::LoadAncillary { ad: k - ancillary::OFF },
                op::ABS => InstData::LoadAbs { size: size_of(insn), k },
                op::IND => InstData::LoadInd { size: size_of(insn), k },
                op::MSH => InstData::LoadMsh { k },
                op::LEN => InstData::LoadLen { dst },
                op::MEM => InstData::LoadMem { dst, slot: k },
                _ => InstData::LoadImm { dst, k },
            }
        }
        op::ST => InstData::Store { src: Reg::A, slot: k },
        op::STX => InstData::Store { src: Reg::X, slot: k },
        op::ALU => {
            let operand = if insn.src() == op::X { Operand::X } else { Operand::K(k) };
            let alu = match insn.op() {
                op::ADD => AluOp::Add,
                op::SUB => AluOp::Sub,
                op::MUL => AluOp::Mul,
                op::DIV => AluOp::Div,
                op::MOD => AluOp::Mod,
                op::OR => AluOp::Or,
                op::AND => AluOp::And,
                op::XOR => AluOp::Xor,
                op::LSH => AluOp::Lsh,
                op::RSH => AluOp::Rsh,
                _ => return InstData::Neg,
            };
            InstData::Alu { op: alu, operand }
        }
        _ /* MISC */ => {
            if insn.code == 0x07 {
                InstData::Tax
            } else {
                InstData::Txa
            }
        }
    }
}
