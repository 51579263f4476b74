//! The translator's IR: classic BPF's semantics (an accumulator `A`, an
//! index register `X`, sixteen scratch words) in basic blocks, with typed
//! entity indices for blocks and instructions.
//!
//! Control flow is a DAG: [`crate::passes::build`] unrolls backward jumps
//! or cuts them into passes of a loop callback (see [`Terminator::Enter`]),
//! and `layout` lists the blocks in an order where every edge goes forward.

use cranelift_entity::{entity_impl, PrimaryMap};

/// A basic block.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Block(u32);
entity_impl!(Block, "block");

/// An instruction inside a block.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Inst(u32);
entity_impl!(Inst, "inst");

/// Width of a packet load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Size {
    B,
    H,
    W,
}

impl Size {
    pub fn bytes(self) -> u32 {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
        }
    }
}

/// One of cBPF's two registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reg {
    A,
    X,
}

/// The right-hand operand of an ALU operation or comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    K(u32),
    X,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AluOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Or,
    And,
    Xor,
    Lsh,
    Rsh,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cond {
    Eq,
    Gt,
    Ge,
    Set,
}

/// A straight-line instruction. Loads that fall outside the packet make the
/// whole filter return 0, as in libpcap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InstData {
    /// `A = P[k : size]`
    LoadAbs { size: Size, k: u32 },
    /// `A = P[X + k : size]`
    LoadInd { size: Size, k: u32 },
    /// `X = 4 * (P[k] & 0xf)`; A is untouched.
    LoadMsh { k: u32 },
    /// `dst = wire length`
    LoadLen { dst: Reg },
    /// `dst = k`
    LoadImm { dst: Reg, k: u32 },
    /// `dst = M[slot]`
    LoadMem { dst: Reg, slot: u32 },
    /// `A = ancillary value` (`SKF_AD_*` offset `ad`).
    LoadAncillary { ad: u32 },
    /// `M[slot] = src`
    Store { src: Reg, slot: u32 },
    /// `A = A op operand` (32-bit)
    Alu { op: AluOp, operand: Operand },
    /// `A = -A`
    Neg,
    /// `X = A`
    Tax,
    /// `A = X`
    Txa,
}

/// What ends a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Terminator {
    Jump(Block),
    /// `if A cond operand goto then else otherwise`
    Branch {
        cond: Cond,
        operand: Operand,
        then: Block,
        otherwise: Block,
    },
    /// Return a constant.
    ReturnK(u32),
    /// Return A.
    ReturnA,
    /// The filter function: leave the unrolled code for the loop callback,
    /// which resumes at loop header `n` (an index into
    /// [`crate::passes::build::Built::headers`]) with A, X and the scratch
    /// words as they are; the filter returns what the loop returns.
    Enter(u32),
    /// The loop callback: this pass is over; the next one starts at loop
    /// header `n` with A, X and the scratch words as they are.
    Continue(u32),
    /// The loop callback's entry: `if the pass resumes at header n goto
    /// then else otherwise`.
    Resume {
        header: u32,
        then: Block,
        otherwise: Block,
    },
}

impl Terminator {
    pub fn successors(&self) -> impl Iterator<Item = Block> {
        let (a, b) = match *self {
            Terminator::Jump(t) => (Some(t), None),
            Terminator::Branch {
                then, otherwise, ..
            }
            | Terminator::Resume {
                then, otherwise, ..
            } => (Some(then), Some(otherwise)),
            _ => (None, None),
        };
        a.into_iter().chain(b)
    }

    /// Rewrites every successor through `f`.
    pub fn map_successors(&mut self, mut f: impl FnMut(Block) -> Block) {
        match self {
            Terminator::Jump(t) => *t = f(*t),
            Terminator::Branch {
                then, otherwise, ..
            }
            | Terminator::Resume {
                then, otherwise, ..
            } => {
                *then = f(*then);
                *otherwise = f(*otherwise);
            }
            _ => {}
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockData {
    pub insts: Vec<Inst>,
    pub term: Terminator,
}

/// A filter function in IR form.
#[derive(Clone, Debug, Default)]
pub struct Function {
    pub blocks: PrimaryMap<Block, BlockData>,
    pub insts: PrimaryMap<Inst, InstData>,
    /// Live blocks in a topological order; the first is the entry.
    pub layout: Vec<Block>,
}

impl Function {
    pub fn entry(&self) -> Block {
        self.layout[0]
    }

    /// The instructions of a block, resolved.
    pub fn block_insts(&self, b: Block) -> impl Iterator<Item = &InstData> + '_ {
        self.blocks[b].insts.iter().map(move |i| &self.insts[*i])
    }

    /// Predecessor counts of the blocks in `layout`.
    pub fn predecessors(&self) -> cranelift_entity::SecondaryMap<Block, Vec<Block>> {
        let mut preds = cranelift_entity::SecondaryMap::<Block, Vec<Block>>::new();
        for &b in &self.layout {
            for s in self.blocks[b].term.successors() {
                preds[s].push(b);
            }
        }
        preds
    }
}
