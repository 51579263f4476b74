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

use std::fmt;

use cbpf2ebpf::ebpf::{helper, op, Insn};
use cbpf2ebpf::Mode;

use crate::Result;

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

// ---------------------------------------------------------------------------
// Checking

fn size_bytes(code: u8) -> usize {
    match code & 0x18 {
        op::B => 1,
        op::H => 2,
        op::W => 4,
        _ => 8,
    }
}

/// Checks encoding and control flow like the kernel does before verifying.
fn check(p: &[Insn]) -> std::result::Result<(), VmError> {
    if p.is_empty() {
        return err(0, "empty program");
    }
    // Second slots of ld_imm64.
    let mut second = vec![false; p.len()];
    let mut pc = 0;
    while pc < p.len() {
        let i = p[pc];
        if i.code == op::LD | op::DW | op::IMM {
            if pc + 1 >= p.len() {
                return err(pc, "ld_imm64 without its second slot");
            }
            second[pc + 1] = true;
            pc += 2;
        } else {
            pc += 1;
        }
    }
    let target = |pc: usize, rel: i64| -> std::result::Result<(), VmError> {
        let t = pc as i64 + 1 + rel;
        if t < 0 || t >= p.len() as i64 {
            return err(pc, format!("jump out of range to {t}"));
        }
        if second[t as usize] {
            return err(pc, format!("jump into the middle of ld_imm64 at {t}"));
        }
        Ok(())
    };
    for (pc, &i) in p.iter().enumerate() {
        if second[pc] {
            if i.code != 0 || i.dst != 0 || i.src != 0 || i.off != 0 {
                return err(pc, "bad second slot of ld_imm64");
            }
            continue;
        }
        if i.dst > 10 || i.src > 10 {
            return err(pc, "bad register");
        }
        let class = i.class();
        let reserved = || err(pc, format!("reserved fields used (code {:#04x})", i.code));
        match class {
            op::LD => {
                if i.code != op::LD | op::DW | op::IMM {
                    return err(pc, format!("unsupported LD instruction {:#04x}", i.code));
                }
                match i.src {
                    0 => {}
                    op::PSEUDO_FUNC => {
                        target(pc, i.imm as i64)?;
                        if p[pc + 1].imm != 0 {
                            return reserved();
                        }
                    }
                    _ => return err(pc, "ld_imm64 of a map or other pseudo value"),
                }
                if i.off != 0 || i.dst == 10 {
                    return reserved();
                }
            }
            op::LDX => {
                let mode = i.code & 0xe0;
                let ok = mode == op::MEM || (mode == MEMSX && i.code & 0x18 != op::DW);
                if !ok || i.imm != 0 || i.dst == 10 {
                    return err(pc, format!("bad LDX instruction {:#04x}", i.code));
                }
            }
            op::ST | op::STX => {
                if i.code & 0xe0 != op::MEM {
                    return err(
                        pc,
                        format!(
                            "unsupported store {:#04x} (atomics are not supported)",
                            i.code
                        ),
                    );
                }
                if class == op::ST && i.src != 0 || class == op::STX && i.imm != 0 {
                    return reserved();
                }
            }
            op::ALU | op::ALU64 => {
                let o = i.code & 0xf0;
                let x = i.code & op::X != 0;
                let bits = if class == op::ALU { 32 } else { 64 };
                if i.dst == 10 {
                    return err(pc, "r10 is read only");
                }
                match o {
                    op::NEG => {
                        if x || i.src != 0 || i.off != 0 || i.imm != 0 {
                            return reserved();
                        }
                    }
                    op::END => {
                        if i.src != 0 || i.off != 0 || !matches!(i.imm, 16 | 32 | 64) {
                            return reserved();
                        }
                        if class == op::ALU64 && x {
                            return reserved();
                        }
                    }
                    op::ADD
                    | op::SUB
                    | op::MUL
                    | op::OR
                    | op::AND
                    | op::LSH
                    | op::RSH
                    | op::XOR
                    | op::ARSH
                    | op::MOV
                    | op::DIV
                    | op::MOD => {
                        let off_ok = match o {
                            op::DIV | op::MOD => i.off == 0 || i.off == SDIV_OFF,
                            op::MOV if x && class == op::ALU64 => matches!(i.off, 0 | 8 | 16 | 32),
                            op::MOV if x => matches!(i.off, 0 | 8 | 16),
                            _ => i.off == 0,
                        };
                        if !off_ok || (x && i.imm != 0) || (!x && i.src != 0) {
                            return reserved();
                        }
                        if !x
                            && matches!(o, op::LSH | op::RSH | op::ARSH)
                            && !(0..bits).contains(&i.imm)
                        {
                            return err(pc, format!("invalid shift {}", i.imm));
                        }
                        if !x && matches!(o, op::DIV | op::MOD) && i.imm == 0 {
                            return err(pc, "division by constant zero");
                        }
                    }
                    _ => return err(pc, format!("unknown ALU operation {:#04x}", i.code)),
                }
            }
            op::JMP | op::JMP32 => {
                let o = i.code & 0xf0;
                let x = i.code & op::X != 0;
                match o {
                    op::JA => {
                        if x || i.src != 0 || i.dst != 0 {
                            return reserved();
                        }
                        if class == op::JMP {
                            if i.imm != 0 {
                                return reserved();
                            }
                            target(pc, i.off as i64)?;
                        } else {
                            if i.off != 0 {
                                return reserved();
                            }
                            target(pc, i.imm as i64)?;
                        }
                    }
                    op::CALL if class == op::JMP => {
                        if x || i.dst != 0 || i.off != 0 {
                            return reserved();
                        }
                        match i.src {
                            0 => {
                                if !matches!(
                                    i.imm,
                                    helper::GET_PRANDOM_U32
                                        | helper::GET_SMP_PROCESSOR_ID
                                        | helper::SKB_LOAD_BYTES
                                        | helper::PROBE_READ_KERNEL
                                        | helper::LOOP
                                ) {
                                    return err(pc, format!("helper {} is not supported", i.imm));
                                }
                            }
                            op::PSEUDO_CALL => target(pc, i.imm as i64)?,
                            s => return err(pc, format!("unsupported call kind (src {s})")),
                        }
                    }
                    op::EXIT if class == op::JMP => {
                        if x || i.src != 0 || i.dst != 0 || i.off != 0 || i.imm != 0 {
                            return reserved();
                        }
                    }
                    op::JEQ
                    | op::JGT
                    | op::JGE
                    | op::JSET
                    | op::JNE
                    | op::JSGT
                    | op::JSGE
                    | op::JLT
                    | op::JLE
                    | op::JSLT
                    | op::JSLE => {
                        if (x && i.imm != 0) || (!x && i.src != 0) {
                            return reserved();
                        }
                        target(pc, i.off as i64)?;
                    }
                    _ => return err(pc, format!("unknown jump {:#04x}", i.code)),
                }
            }
            _ => unreachable!("3-bit class"),
        }
    }
    // Like the kernel, refuse code that no path reaches.
    let mut seen = vec![false; p.len()];
    let mut work = vec![0usize];
    while let Some(pc) = work.pop() {
        if pc >= p.len() || seen[pc] {
            continue;
        }
        seen[pc] = true;
        let i = p[pc];
        let o = i.code & 0xf0;
        let jump = matches!(i.class(), op::JMP | op::JMP32);
        if i.class() == op::LD {
            seen[pc + 1] = true;
            work.push(pc + 2);
            if i.src == op::PSEUDO_FUNC {
                work.push((pc as i64 + 1 + i.imm as i64) as usize);
            }
        } else if jump && o == op::EXIT {
        } else if jump && o == op::JA {
            let rel = if i.class() == op::JMP {
                i.off as i64
            } else {
                i.imm as i64
            };
            work.push((pc as i64 + 1 + rel) as usize);
        } else if jump && o == op::CALL {
            if i.src == op::PSEUDO_CALL {
                work.push((pc as i64 + 1 + i.imm as i64) as usize);
            }
            work.push(pc + 1);
        } else if jump {
            work.push((pc as i64 + 1 + i.off as i64) as usize);
            work.push(pc + 1);
        } else {
            work.push(pc + 1);
        }
    }
    if let Some(pc) = seen.iter().position(|&s| !s) {
        return err(pc, "unreachable instruction");
    }
    let last = p[p.len() - 1];
    let is_exit = last.code == op::JMP | op::EXIT;
    let is_ja = last.code == op::JMP | op::JA || last.code == op::JMP32 | op::JA;
    if !(is_exit || is_ja) || second[p.len() - 1] {
        return err(p.len() - 1, "last instruction is not exit or ja");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Running

struct Machine<'a> {
    insns: &'a [Insn],
    packet: &'a [u8],
    ctx: &'a [u8],
    /// The context is a `struct __sk_buff`.
    skb: bool,
    stack: Vec<u8>,
    reg: [u64; 11],
    rng: u64,
    /// Instructions executed in this run, callbacks included.
    steps: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Region {
    Packet,
    Stack,
    Ctx,
}

impl Machine<'_> {
    /// Finds `len` bytes at `addr`: region and offset.
    fn locate(&self, addr: u64, len: usize) -> Option<(Region, usize)> {
        let regions = [
            (Region::Packet, PACKET_BASE, self.packet.len()),
            (Region::Stack, STACK_BASE, self.stack.len()),
            (Region::Ctx, CTX_BASE, self.ctx.len()),
        ];
        for (r, base, size) in regions {
            // `len` is never 0 here (loads, stores and helpers check).
            if addr >= base
                && addr - base < size as u64
                && len as u64 <= size as u64 - (addr - base)
            {
                return Some((r, (addr - base) as usize));
            }
        }
        None
    }

    fn bytes(&self, r: Region) -> &[u8] {
        match r {
            Region::Packet => self.packet,
            Region::Stack => &self.stack,
            Region::Ctx => self.ctx,
        }
    }

    fn load(&self, pc: usize, addr: u64, len: usize) -> std::result::Result<u64, VmError> {
        // The verifier turns 32-bit loads of `__sk_buff` data/data_end into
        // packet pointers; so does the VM.
        if self.skb && len == 4 && addr == CTX_BASE + SKB_DATA {
            return Ok(PACKET_BASE);
        }
        if self.skb && len == 4 && addr == CTX_BASE + SKB_DATA_END {
            return Ok(PACKET_BASE + self.packet.len() as u64);
        }
        match self.locate(addr, len) {
            Some((r, off)) => {
                let mut b = [0u8; 8];
                b[..len].copy_from_slice(&self.bytes(r)[off..off + len]);
                Ok(u64::from_le_bytes(b))
            }
            None => err(
                pc,
                format!(
                    "out of bounds load of {len} bytes at {}",
                    self.describe(addr)
                ),
            ),
        }
    }

    fn store(
        &mut self,
        pc: usize,
        addr: u64,
        len: usize,
        v: u64,
    ) -> std::result::Result<(), VmError> {
        match self.locate(addr, len) {
            Some((Region::Stack, off)) => {
                self.stack[off..off + len].copy_from_slice(&v.to_le_bytes()[..len]);
                Ok(())
            }
            Some(_) => err(
                pc,
                format!("store of {len} bytes to read-only {}", self.describe(addr)),
            ),
            None => err(
                pc,
                format!(
                    "out of bounds store of {len} bytes at {}",
                    self.describe(addr)
                ),
            ),
        }
    }

    /// A helper's destination: `len` bytes of stack.
    fn helper_dst(&self, pc: usize, addr: u64, len: u64) -> std::result::Result<usize, VmError> {
        match self.locate(addr, len as usize) {
            Some((Region::Stack, off)) if len <= FRAME_BYTES as u64 => Ok(off),
            _ => err(
                pc,
                format!(
                    "helper destination of {len} bytes at {} is not stack",
                    self.describe(addr)
                ),
            ),
        }
    }

    /// An address, for messages: region and offset when near a region.
    fn describe(&self, addr: u64) -> String {
        let regions = [
            ("packet", PACKET_BASE, self.packet.len()),
            ("stack", STACK_BASE, self.stack.len()),
            ("ctx", CTX_BASE, self.ctx.len()),
        ];
        for (name, base, size) in regions {
            let d = addr.wrapping_sub(base) as i64;
            if d.unsigned_abs() < 1 << 32 {
                return format!("{name}{d:+} ({name} is {size} bytes)");
            }
        }
        format!("{addr:#x}")
    }

    /// Runs the function at `pc` until it returns; `depth` frames are in
    /// use, its own included.
    fn exec(&mut self, mut pc: usize, depth: usize) -> std::result::Result<u64, VmError> {
        let p = self.insns;
        let mut frames: Vec<(usize, [u64; 4])> = Vec::new();
        loop {
            if pc >= p.len() {
                return err(pc, "fell off the end of the program");
            }
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return err(pc, format!("more than {MAX_STEPS} instructions executed"));
            }
            let i = p[pc];
            let (d, s) = (i.dst as usize, i.src as usize);
            let class = i.class();
            let mut next = pc + 1;
            match class {
                op::LD => {
                    self.reg[d] = if i.src == op::PSEUDO_FUNC {
                        CODE_BASE + (pc as i64 + 1 + i.imm as i64) as u64
                    } else {
                        let hi = p[pc + 1].imm as u32 as u64;
                        (hi << 32) | i.imm as u32 as u64
                    };
                    next = pc + 2;
                }
                op::LDX => {
                    let len = size_bytes(i.code);
                    let addr = self.reg[s].wrapping_add(i.off as i64 as u64);
                    let v = self.load(pc, addr, len)?;
                    self.reg[d] = if i.code & 0xe0 == MEMSX {
                        sign_extend(v, len * 8)
                    } else {
                        v
                    };
                }
                op::ST | op::STX => {
                    let len = size_bytes(i.code);
                    let addr = self.reg[d].wrapping_add(i.off as i64 as u64);
                    let v = if class == op::ST {
                        i.imm as i64 as u64
                    } else {
                        self.reg[s]
                    };
                    self.store(pc, addr, len, v)?;
                }
                op::ALU | op::ALU64 => self.alu(i),
                _ => {
                    // JMP, JMP32
                    let o = i.code & 0xf0;
                    match o {
                        op::JA => {
                            let rel = if class == op::JMP {
                                i.off as i64
                            } else {
                                i.imm as i64
                            };
                            next = (pc as i64 + 1 + rel) as usize;
                        }
                        op::CALL if i.src == op::PSEUDO_CALL => {
                            if depth + frames.len() >= MAX_FRAMES {
                                return err(pc, format!("more than {MAX_FRAMES} nested calls"));
                            }
                            frames.push((
                                pc + 1,
                                [self.reg[6], self.reg[7], self.reg[8], self.reg[9]],
                            ));
                            self.reg[10] -= FRAME_BYTES as u64;
                            next = (pc as i64 + 1 + i.imm as i64) as usize;
                        }
                        op::CALL => {
                            self.reg[0] = self.call_helper(pc, i.imm, depth + frames.len())?;
                            // r1-r5 are dead after a call: make a use visible.
                            for r in 1..=5 {
                                self.reg[r] = 0xdead_beef_dead_beef;
                            }
                        }
                        op::EXIT => match frames.pop() {
                            None => return Ok(self.reg[0]),
                            Some((ret, saved)) => {
                                self.reg[6..10].copy_from_slice(&saved);
                                self.reg[10] += FRAME_BYTES as u64;
                                next = ret;
                            }
                        },
                        _ => {
                            let b = if i.code & op::X != 0 {
                                self.reg[s]
                            } else {
                                i.imm as i64 as u64
                            };
                            let a = self.reg[d];
                            let taken = if class == op::JMP {
                                cond64(o, a, b)
                            } else {
                                cond32(o, a as u32, b as u32)
                            };
                            if taken {
                                next = (pc as i64 + 1 + i.off as i64) as usize;
                            }
                        }
                    }
                }
            }
            pc = next;
        }
    }

    fn alu(&mut self, i: Insn) {
        let d = i.dst as usize;
        let o = i.code & 0xf0;
        let x = i.code & op::X != 0;
        let src = if x {
            self.reg[i.src as usize]
        } else {
            i.imm as i64 as u64
        };
        let dst = self.reg[d];
        if i.class() == op::ALU64 {
            self.reg[d] = match o {
                op::ADD => dst.wrapping_add(src),
                op::SUB => dst.wrapping_sub(src),
                op::MUL => dst.wrapping_mul(src),
                op::DIV if i.off == SDIV_OFF => match src as i64 {
                    0 => 0,
                    -1 => (dst as i64).wrapping_neg() as u64,
                    v => ((dst as i64) / v) as u64,
                },
                op::DIV => dst.checked_div(src).unwrap_or(0),
                op::MOD if i.off == SDIV_OFF => match src as i64 {
                    0 => dst,
                    -1 => 0,
                    v => ((dst as i64) % v) as u64,
                },
                op::MOD => dst.checked_rem(src).unwrap_or(dst),
                op::OR => dst | src,
                op::AND => dst & src,
                op::XOR => dst ^ src,
                op::LSH => dst << (src & 63),
                op::RSH => dst >> (src & 63),
                op::ARSH => ((dst as i64) >> (src & 63)) as u64,
                op::NEG => (dst as i64).wrapping_neg() as u64,
                op::MOV if x && i.off != 0 => sign_extend(src, i.off as usize),
                op::MOV => src,
                op::END => match i.imm {
                    16 => (dst as u16).swap_bytes() as u64,
                    32 => (dst as u32).swap_bytes() as u64,
                    _ => dst.swap_bytes(),
                },
                _ => unreachable!("checked"),
            };
        } else {
            let (a, b) = (dst as u32, src as u32);
            let r: u32 = match o {
                op::ADD => a.wrapping_add(b),
                op::SUB => a.wrapping_sub(b),
                op::MUL => a.wrapping_mul(b),
                op::DIV if i.off == SDIV_OFF => match b as i32 {
                    0 => 0,
                    -1 => (a as i32).wrapping_neg() as u32,
                    v => ((a as i32) / v) as u32,
                },
                op::DIV => a.checked_div(b).unwrap_or(0),
                op::MOD if i.off == SDIV_OFF => match b as i32 {
                    0 => a,
                    -1 => 0,
                    v => ((a as i32) % v) as u32,
                },
                op::MOD => a.checked_rem(b).unwrap_or(a),
                op::OR => a | b,
                op::AND => a & b,
                op::XOR => a ^ b,
                op::LSH => a << (b & 31),
                op::RSH => a >> (b & 31),
                op::ARSH => ((a as i32) >> (b & 31)) as u32,
                op::NEG => (a as i32).wrapping_neg() as u32,
                op::MOV if x && i.off != 0 => sign_extend(b as u64, i.off as usize) as u32,
                op::MOV => b,
                op::END => {
                    let v = if i.code & op::TO_BE != 0 {
                        match i.imm {
                            16 => (dst as u16).swap_bytes() as u64,
                            32 => (dst as u32).swap_bytes() as u64,
                            _ => dst.swap_bytes(),
                        }
                    } else {
                        match i.imm {
                            16 => dst as u16 as u64,
                            32 => dst as u32 as u64,
                            _ => dst,
                        }
                    };
                    // BPF_END keeps 64 bits for imm 64.
                    self.reg[d] = v;
                    return;
                }
                _ => unreachable!("checked"),
            };
            self.reg[d] = r as u64;
        }
    }

    /// `depth`: the frames in use, the caller's included.
    fn call_helper(
        &mut self,
        pc: usize,
        id: i32,
        depth: usize,
    ) -> std::result::Result<u64, VmError> {
        let [_, r1, r2, r3, r4, ..] = self.reg;
        Ok(match id {
            helper::LOOP => self.bpf_loop(pc, r1 as u32, r2, r3, r4, depth)?,
            helper::GET_PRANDOM_U32 => {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                self.rng as u32 as u64
            }
            helper::GET_SMP_PROCESSOR_ID => 0,
            helper::SKB_LOAD_BYTES => {
                // (ctx, u32 offset, void *to, u32 len)
                if r1 != CTX_BASE {
                    return err(pc, "bpf_skb_load_bytes: r1 is not the context");
                }
                let (off, len) = (r2 as u32 as u64, r4 as u32 as u64);
                if len == 0 {
                    return err(pc, "bpf_skb_load_bytes: length 0");
                }
                let dst = self.helper_dst(pc, r3, len)?;
                let len = len as usize;
                if off <= i32::MAX as u64 && off + len as u64 <= self.packet.len() as u64 {
                    let off = off as usize;
                    self.stack[dst..dst + len].copy_from_slice(&self.packet[off..off + len]);
                    0
                } else {
                    self.stack[dst..dst + len].fill(0);
                    (-EFAULT) as u64
                }
            }
            helper::PROBE_READ_KERNEL => {
                // (void *dst, u32 size, const void *unsafe_ptr)
                let len = r2 as u32 as u64;
                if len == 0 {
                    return Ok(0);
                }
                let dst = self.helper_dst(pc, r1, len)?;
                let len = len as usize;
                match self.locate(r3, len) {
                    Some((r, off)) => {
                        let src = self.bytes(r)[off..off + len].to_vec();
                        self.stack[dst..dst + len].copy_from_slice(&src);
                        0
                    }
                    None => {
                        self.stack[dst..dst + len].fill(0);
                        (-EFAULT) as u64
                    }
                }
            }
            _ => return err(pc, format!("helper {id} is not supported")),
        })
    }
}

impl Machine<'_> {
    /// `bpf_loop(nr, callback, ctx, flags)`.
    fn bpf_loop(
        &mut self,
        pc: usize,
        nr: u32,
        callback: u64,
        ctx: u64,
        flags: u64,
        depth: usize,
    ) -> std::result::Result<u64, VmError> {
        let target = callback.wrapping_sub(CODE_BASE);
        if target >= self.insns.len() as u64 {
            return err(pc, "bpf_loop: r2 is not a function's address");
        }
        if flags != 0 {
            return Ok((-EINVAL) as u64);
        }
        if nr > cbpf2ebpf::ebpf::BPF_MAX_LOOPS {
            return Ok((-E2BIG) as u64);
        }
        if depth >= MAX_FRAMES {
            return err(pc, format!("more than {MAX_FRAMES} nested calls"));
        }
        let saved: [u64; 5] = self.reg[6..11].try_into().unwrap();
        let mut calls = 0u64;
        for index in 0..nr as u64 {
            self.reg[1] = index;
            self.reg[2] = ctx;
            self.reg[10] = saved[4] - FRAME_BYTES as u64;
            let r0 = self.exec(target as usize, depth + 1)?;
            calls += 1;
            match r0 {
                0 => {}
                1 => break,
                _ => return err(pc, format!("bpf_loop callback returned {r0}, not 0 or 1")),
            }
        }
        self.reg[6..11].copy_from_slice(&saved);
        Ok(calls)
    }
}

fn sign_extend(v: u64, bits: usize) -> u64 {
    if bits >= 64 {
        return v;
    }
    let shift = 64 - bits;
    (((v << shift) as i64) >> shift) as u64
}

fn cond64(o: u8, a: u64, b: u64) -> bool {
    let (sa, sb) = (a as i64, b as i64);
    match o {
        op::JEQ => a == b,
        op::JNE => a != b,
        op::JGT => a > b,
        op::JGE => a >= b,
        op::JLT => a < b,
        op::JLE => a <= b,
        op::JSET => a & b != 0,
        op::JSGT => sa > sb,
        op::JSGE => sa >= sb,
        op::JSLT => sa < sb,
        op::JSLE => sa <= sb,
        _ => unreachable!("checked"),
    }
}

fn cond32(o: u8, a: u32, b: u32) -> bool {
    let (sa, sb) = (a as i32, b as i32);
    match o {
        op::JEQ => a == b,
        op::JNE => a != b,
        op::JGT => a > b,
        op::JGE => a >= b,
        op::JLT => a < b,
        op::JLE => a <= b,
        op::JSET => a & b != 0,
        op::JSGT => sa > sb,
        op::JSGE => sa >= sb,
        op::JSLT => sa < sb,
        op::JSLE => sa <= sb,
        _ => unreachable!("checked"),
    }
}
