use thiserror::Error;

/// Why a cBPF program cannot be translated.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("empty program")]
    Empty,
    #[error("program has {0} instructions; the limit is 65,536")]
    TooManyInsns(usize),
    #[error("instruction {pc}: invalid opcode {code:#06x}")]
    BadOpcode { pc: usize, code: u16 },
    #[error("instruction {pc}: jump to {target} is outside the program")]
    JumpOutOfRange { pc: usize, target: i64 },
    #[error("instruction {pc}: division or modulo by constant zero")]
    DivByZero { pc: usize },
    #[error("instruction {pc}: scratch memory index {k} is out of range (0-15)")]
    BadMemIndex { pc: usize, k: u32 },
    #[error("instruction {pc}: shift by constant {k} (must be below 32)")]
    BadShift { pc: usize, k: u32 },
    #[error("the last instruction is not a return")]
    NoFinalReturn,
    #[error("{primitive} is not available at the {hook} hook")]
    Ancillary {
        primitive: &'static str,
        hook: &'static str,
    },
    #[error("{primitive} is not available in {mode} mode")]
    AncillaryMode {
        primitive: &'static str,
        mode: &'static str,
    },
    #[error("loops unrolled past {0} eBPF instructions; lower max_loop_iterations")]
    UnrollTooLarge(usize),
    #[error("translated program has {0} eBPF instructions, over the limit")]
    TooLarge(usize),
    #[error("too many far jumps to lay out without gotol (jumps past 32,767 instructions)")]
    FarJumps,
    #[error("internal translator error: {0}")]
    Internal(&'static str),
}
