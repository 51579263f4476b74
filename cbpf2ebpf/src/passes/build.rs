//! Pass 2: build the IR from validated cBPF.
//!
//! Basic blocks start at the entry, at jump targets and after jumps. Every
//! block is instantiated per *loop iteration*: a block reached by a forward
//! edge keeps its iteration, one reached by a backward edge gets the next.
//! Ordering blocks by (iteration, cBPF position) is then topological, so the
//! eBPF output only jumps forward and the verifier never sees a loop. A path
//! that would take more than `max_loop_iterations` backward jumps returns 0.

use std::collections::HashMap;

use crate::cbpf::{self, ancillary, op};
use crate::ir::{AluOp, Block, BlockData, Cond, Function, InstData, Operand, Reg, Size, Terminator};
use crate::passes::validate::jump_targets;
use crate::{Error, Options};

/// Unrolling stops with an error past this many IR instructions.
pub const MAX_UNROLLED_INSTS: usize = 200_000;

pub fn run(prog: &[cbpf::Insn], opts: &Options) -> Result<Function, Error> {
    let leaders = find_leaders(prog);
    let mut builder = Builder { prog, leaders: &leaders, opts, func: Function::default(), blocks: HashMap::new(), fail: None, worklist: Vec::new(), order: Vec::new() };
    let entry = builder.block_at(0, 0);
    while let Some((pc, iter, block)) = builder.worklist.pop() {
        builder.fill(pc, iter, block)?;
    }
    let mut order = std::mem::take(&mut builder.order);
    order.sort();
    let mut func = builder.func;
    func.layout = order.into_iter().map(|(_, _, b)| b).collect();
    debug_assert_eq!(func.layout[0], entry);
    Ok(func)
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
    prog: &'a [cbpf::Insn],
    leaders: &'a [bool],
    opts: &'a Options,
    func: Function,
    blocks: HashMap<(usize, u32), Block>,
    /// The shared "return 0" block for paths past the loop bound.
    fail: Option<Block>,
    worklist: Vec<(usize, u32, Block)>,
    /// (iteration, pc, block) of every block, sorted at the end.
    order: Vec<(u32, usize, Block)>,
}

impl Builder<'_> {
    fn new_block(&mut self) -> Block {
        self.func.blocks.push(BlockData { insts: Vec::new(), term: Terminator::ReturnK(0) })
    }

    /// The block for cBPF position `pc` in loop iteration `iter`.
    fn block_at(&mut self, pc: usize, iter: u32) -> Block {
        if iter > self.opts.max_loop_iterations {
            if let Some(b) = self.fail {
                return b;
            }
            let b = self.new_block();
            self.fail = Some(b);
            self.order.push((u32::MAX, usize::MAX, b));
            return b;
        }
        if let Some(&b) = self.blocks.get(&(pc, iter)) {
            return b;
        }
        let b = self.new_block();
        self.blocks.insert((pc, iter), b);
        self.worklist.push((pc, iter, b));
        self.order.push((iter, pc, b));
        b
    }

    fn successor(&mut self, from: usize, to: i64, iter: u32) -> Block {
        let to = to as usize;
        if to <= from {
            self.block_at(to, iter + 1)
        } else {
            self.block_at(to, iter)
        }
    }

    fn fill(&mut self, start: usize, iter: u32, block: Block) -> Result<(), Error> {
        let mut pc = start;
        loop {
            let insn = self.prog[pc];
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
                        let operand = if insn.src() == op::X { Operand::X } else { Operand::K(insn.k) };
                        let then = self.successor(pc, t, iter);
                        let otherwise = self.successor(pc, f, iter);
                        Terminator::Branch { cond, operand, then, otherwise }
                    };
                    self.func.blocks[block].term = term;
                    return Ok(());
                }
                op::RET => {
                    self.func.blocks[block].term = if insn.rval() == op::A { Terminator::ReturnA } else { Terminator::ReturnK(insn.k) };
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
            if self.leaders[pc] {
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
