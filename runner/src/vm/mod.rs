//! The user-space engine: a small eBPF interpreter that runs a translated
//! filter as the main program, with the registers set as the filter ABI says.
//!
//! Why not rbpf: see `runner/Cargo.toml` (no `gotol`, 16-bit jump
//! arithmetic, zero-extended 64-bit jump immediates, unchecked helper
//! pointers).
//!
//! ## Memory
//!
//! Addresses are virtual: nothing in a program can reach this process's
//! memory. Three regions exist, everything else is an error:
//!
//! | region | base | size | access |
//! |---|---|---|---|
//! | packet | [`PACKET_BASE`] | the captured bytes | read |
//! | stack | [`STACK_BASE`] | 512 bytes per call frame, `r10` at the top of the frame | read, write (starts zeroed) |
//! | context | [`CTX_BASE`] | empty unless [`VmFilter::with_ctx`]; in `Skb` mode a `struct __sk_buff` image by default | read |
//!
//! ## Registers at entry, by mode
//!
//! | | `r1` | `r2` | `r3` | `r4` |
//! |---|---|---|---|---|
//! | `Direct`, `Probe` | [`CTX_BASE`] | [`PACKET_BASE`] | `PACKET_BASE + len` | wire length |
//! | `Skb` | [`CTX_BASE`] | 0 | `len` | wire length |
//!
//! ## Helpers
//!
//! - `bpf_skb_load_bytes` (26): `r1` must be the context; reads
//!   packet bytes `[off, off + len)`; out of range: the destination is zeroed
//!   and the result is `-EFAULT`, as in the kernel.
//! - `bpf_probe_read_kernel` (113): reads from any readable region; out of
//!   range: the destination is zeroed and the result is `-EFAULT`.
//! - `bpf_get_prandom_u32` (7): a fixed pseudo-random sequence, restarted
//!   every run. `bpf_get_smp_processor_id` (8): 0.
//! - `bpf_loop` (181): `r2` must be a function's address (`ld_imm64` with
//!   `BPF_PSEUDO_FUNC`), called in a new frame with `r1` = index and
//!   `r2` = the `r3` given, at most `r1` times (more than 2^23: `-E2BIG`
//!   and no call), until it returns 1; it must return 0 or 1, as the
//!   verifier insists. Returns the number of calls; `r6`-`r9` survive.
//!
//! A helper's destination must lie in the stack, else the run stops with an
//! error. Other helpers are refused when the program is checked.
//!
//! ## Instructions
//!
//! All of ALU/ALU64 (with the v4 signed division, `movsx` and `bswap`),
//! JMP/JMP32 (with `gotol`), LDX (with sign-extending loads), ST, STX,
//! `ld_imm64` with a plain constant or a function's address, helper calls
//! and bpf2bpf calls (8 frames at most, callbacks included). The program is checked first with the kernel verifier's
//! encoding rules (reserved fields zero, constant shifts in range, no
//! constant division by zero, jumps inside the program and not into the
//! middle of `ld_imm64`), so a malformed instruction fails here too.
//! Execution stops after [`MAX_STEPS`] instructions.

mod check;
mod exec;
mod helpers;
mod memory;

use std::fmt;

use cbpf2ebpf::ebpf::Insn;
use cbpf2ebpf::Mode;

use crate::Result;
use check::check;
use memory::Machine;

/// Virtual address of the first packet byte.
pub const PACKET_BASE: u64 = 0x0000_1000_0000_0000;
/// Virtual address of the bottom of the stack area.
pub const STACK_BASE: u64 = 0x0000_2000_0000_0000;
/// Virtual address of the context (`r1`).
pub const CTX_BASE: u64 = 0x0000_3000_0000_0000;
/// Virtual address of instruction 0, for function addresses (`bpf_loop`
/// callbacks); nothing may be loaded from or stored there.
pub const CODE_BASE: u64 = 0x0000_4000_0000_0000;

/// `struct __sk_buff`: its size and the offsets of `data` and `data_end`.
const SKB_CTX_BYTES: usize = 192;
const SKB_DATA: u64 = 76;
const SKB_DATA_END: u64 = 80;
/// Stack bytes per call frame.
pub const FRAME_BYTES: usize = 512;
/// Most nested call frames (the kernel's `MAX_CALL_FRAMES`).
pub const MAX_FRAMES: usize = 8;
/// Most instructions one run may execute.
pub const MAX_STEPS: u64 = 1 << 26;

const EFAULT: i64 = 14;
const E2BIG: i64 = 7;
const EINVAL: i64 = 22;
const MEMSX: u8 = 0x80;
const SDIV_OFF: i16 = 1;

/// Why the interpreter refused a program or stopped a run: the instruction
/// index and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmError {
    pub pc: usize,
    pub msg: String,
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "insn {}: {}", self.pc, self.msg)
    }
}

impl std::error::Error for VmError {}

fn err<T>(pc: usize, msg: impl Into<String>) -> std::result::Result<T, VmError> {
    Err(VmError {
        pc,
        msg: msg.into(),
    })
}

/// A translated filter checked for the interpreter.
#[derive(Clone, Debug)]
pub struct VmFilter {
    insns: Vec<Insn>,
    mode: Mode,
    ctx: Vec<u8>,
}

impl VmFilter {
    /// Checks `filter` (see the module docs for what is accepted).
    pub fn new(filter: &[Insn], mode: Mode) -> Result<Self> {
        check(filter)?;
        Ok(VmFilter {
            insns: filter.to_vec(),
            mode,
            ctx: Vec::new(),
        })
    }

    /// Gives the program a readable context (`r1`), e.g. a `struct
    /// __sk_buff` image for ancillary loads.
    pub fn with_ctx(mut self, ctx: Vec<u8>) -> Self {
        self.ctx = ctx;
        self
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Runs the filter on `packet` with wire length `wirelen`; returns the
    /// low 32 bits of `r0`, as the kernel's test run does.
    pub fn run(&self, packet: &[u8], wirelen: u32) -> Result<u32> {
        Ok(self.run_counted(packet, wirelen)?.0)
    }

    /// [`VmFilter::run`], and how many instructions ran.
    pub fn run_counted(&self, packet: &[u8], wirelen: u32) -> Result<(u32, u64)> {
        let (start, end) = match self.mode {
            Mode::Direct | Mode::Probe => (PACKET_BASE, PACKET_BASE + packet.len() as u64),
            Mode::Skb => (0, packet.len() as u64),
        };
        // Skb mode runs as a TC program would: `skb->len` is the packet's
        // length, and `data`/`data_end` (see `Machine::load`) point at it.
        let skb_ctx;
        let ctx = if self.mode == Mode::Skb && self.ctx.is_empty() {
            let mut image = vec![0u8; SKB_CTX_BYTES];
            image[..4].copy_from_slice(&(packet.len() as u32).to_le_bytes());
            skb_ctx = image;
            &skb_ctx[..]
        } else {
            &self.ctx[..]
        };
        let mut m = Machine {
            insns: &self.insns,
            packet,
            ctx,
            skb: self.mode == Mode::Skb,
            stack: vec![0u8; FRAME_BYTES * MAX_FRAMES],
            reg: [0; 11],
            rng: 0x2545_f491_4f6c_dd1d,
            steps: 0,
        };
        m.reg[1] = CTX_BASE;
        m.reg[2] = start;
        m.reg[3] = end;
        m.reg[4] = wirelen as u64;
        m.reg[10] = STACK_BASE + (FRAME_BYTES * MAX_FRAMES) as u64;
        let r0 = m.exec(0, 1)?;
        Ok((r0 as u32, m.steps))
    }
}
