//! eBPF instructions: encoding, constructors and a disassembler whose output
//! reads like the kernel verifier's log.

mod disasm;

pub use disasm::disassemble;

/// One eBPF instruction slot (`struct bpf_insn`). `ld_imm64` takes two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

/// A register number.
pub type Reg = u8;

pub const R0: Reg = 0;
pub const R1: Reg = 1;
pub const R2: Reg = 2;
pub const R3: Reg = 3;
pub const R4: Reg = 4;
pub const R5: Reg = 5;
pub const R6: Reg = 6;
pub const R7: Reg = 7;
pub const R8: Reg = 8;
pub const R9: Reg = 9;
/// The read-only frame pointer.
pub const R10: Reg = 10;

/// Opcode fields, as in `<linux/bpf.h>`.
pub mod op {
    pub const LD: u8 = 0x00;
    pub const LDX: u8 = 0x01;
    pub const ST: u8 = 0x02;
    pub const STX: u8 = 0x03;
    pub const ALU: u8 = 0x04;
    pub const JMP: u8 = 0x05;
    pub const JMP32: u8 = 0x06;
    pub const ALU64: u8 = 0x07;

    pub const W: u8 = 0x00;
    pub const H: u8 = 0x08;
    pub const B: u8 = 0x10;
    pub const DW: u8 = 0x18;

    pub const IMM: u8 = 0x00;
    pub const MEM: u8 = 0x60;

    pub const K: u8 = 0x00;
    pub const X: u8 = 0x08;

    pub const ADD: u8 = 0x00;
    pub const SUB: u8 = 0x10;
    pub const MUL: u8 = 0x20;
    pub const DIV: u8 = 0x30;
    pub const OR: u8 = 0x40;
    pub const AND: u8 = 0x50;
    pub const LSH: u8 = 0x60;
    pub const RSH: u8 = 0x70;
    pub const NEG: u8 = 0x80;
    pub const MOD: u8 = 0x90;
    pub const XOR: u8 = 0xa0;
    pub const MOV: u8 = 0xb0;
    pub const ARSH: u8 = 0xc0;
    pub const END: u8 = 0xd0;

    /// `BPF_END` source bit: convert to big endian.
    pub const TO_BE: u8 = 0x08;

    pub const JA: u8 = 0x00;
    pub const JEQ: u8 = 0x10;
    pub const JGT: u8 = 0x20;
    pub const JGE: u8 = 0x30;
    pub const JSET: u8 = 0x40;
    pub const JNE: u8 = 0x50;
    pub const JSGT: u8 = 0x60;
    pub const JSGE: u8 = 0x70;
    pub const CALL: u8 = 0x80;
    pub const EXIT: u8 = 0x90;
    pub const JLT: u8 = 0xa0;
    pub const JLE: u8 = 0xb0;
    pub const JSLT: u8 = 0xc0;
    pub const JSLE: u8 = 0xd0;

    /// `src` of a call instruction that calls a BPF function (bpf2bpf).
    pub const PSEUDO_CALL: u8 = 1;
    /// `src` of an `ld_imm64` whose `imm` is the relative offset of a BPF
    /// function (a callback's address, as for `bpf_loop`).
    pub const PSEUDO_FUNC: u8 = 4;
}

/// Kernel helper numbers used by the translated code.
pub mod helper {
    pub const GET_PRANDOM_U32: i32 = 7;
    pub const GET_SMP_PROCESSOR_ID: i32 = 8;
    pub const SKB_LOAD_BYTES: i32 = 26;
    pub const PROBE_READ_KERNEL: i32 = 113;
    /// `bpf_loop(nr_loops, callback, ctx, flags)`, Linux 5.17+.
    pub const LOOP: i32 = 181;
}

/// `bpf_loop` runs a callback at most this many times (`BPF_MAX_LOOPS`);
/// asked for more, it fails with `-E2BIG` without running it.
pub const BPF_MAX_LOOPS: u32 = 1 << 23;

impl Insn {
    pub const fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Self {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// The 8-byte little-endian encoding (`bpfel`).
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.src << 4) | (self.dst & 0x0f);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }

    pub fn from_bytes(b: [u8; 8]) -> Self {
        Insn {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    pub const fn class(&self) -> u8 {
        self.code & 0x07
    }

    // Constructors for the forms the translator emits.
    pub const fn alu32_imm(o: u8, dst: Reg, imm: i32) -> Self {
        Self::new(op::ALU | o | op::K, dst, 0, 0, imm)
    }
    pub const fn alu32_reg(o: u8, dst: Reg, src: Reg) -> Self {
        Self::new(op::ALU | o | op::X, dst, src, 0, 0)
    }
    pub const fn alu64_imm(o: u8, dst: Reg, imm: i32) -> Self {
        Self::new(op::ALU64 | o | op::K, dst, 0, 0, imm)
    }
    pub const fn alu64_reg(o: u8, dst: Reg, src: Reg) -> Self {
        Self::new(op::ALU64 | o | op::X, dst, src, 0, 0)
    }
    pub const fn mov32_imm(dst: Reg, imm: i32) -> Self {
        Self::alu32_imm(op::MOV, dst, imm)
    }
    pub const fn mov32_reg(dst: Reg, src: Reg) -> Self {
        Self::alu32_reg(op::MOV, dst, src)
    }
    pub const fn mov64_imm(dst: Reg, imm: i32) -> Self {
        Self::alu64_imm(op::MOV, dst, imm)
    }
    pub const fn mov64_reg(dst: Reg, src: Reg) -> Self {
        Self::alu64_reg(op::MOV, dst, src)
    }
    /// 32-bit NEG: `src_reg` and `imm` stay 0 (the verifier insists).
    pub const fn neg32(dst: Reg) -> Self {
        Self::new(op::ALU | op::NEG, dst, 0, 0, 0)
    }
    /// Byte swap from host (little-endian) to big-endian, `bits` = 16 or 32.
    pub const fn to_be(dst: Reg, bits: i32) -> Self {
        Self::new(op::ALU | op::END | op::TO_BE, dst, 0, 0, bits)
    }
    pub const fn ldx(size: u8, dst: Reg, src: Reg, off: i16) -> Self {
        Self::new(op::LDX | op::MEM | size, dst, src, off, 0)
    }
    pub const fn stx(size: u8, dst: Reg, src: Reg, off: i16) -> Self {
        Self::new(op::STX | op::MEM | size, dst, src, off, 0)
    }
    pub const fn st_imm(size: u8, dst: Reg, off: i16, imm: i32) -> Self {
        Self::new(op::ST | op::MEM | size, dst, 0, off, imm)
    }
    pub const fn jmp_imm(o: u8, dst: Reg, imm: i32, off: i16) -> Self {
        Self::new(op::JMP | o | op::K, dst, 0, off, imm)
    }
    pub const fn jmp_reg(o: u8, dst: Reg, src: Reg, off: i16) -> Self {
        Self::new(op::JMP | o | op::X, dst, src, off, 0)
    }
    pub const fn jmp32_imm(o: u8, dst: Reg, imm: i32, off: i16) -> Self {
        Self::new(op::JMP32 | o | op::K, dst, 0, off, imm)
    }
    pub const fn jmp32_reg(o: u8, dst: Reg, src: Reg, off: i16) -> Self {
        Self::new(op::JMP32 | o | op::X, dst, src, off, 0)
    }
    pub const fn ja(off: i16) -> Self {
        Self::new(op::JMP | op::JA, 0, 0, off, 0)
    }
    /// `gotol`: an unconditional jump with a 32-bit offset in `imm` (Linux 6.6,
    /// and 6.1.72 on in the 6.1 series).
    pub const fn ja32(imm: i32) -> Self {
        Self::new(op::JMP32 | op::JA, 0, 0, 0, imm)
    }
    pub const fn call_helper(id: i32) -> Self {
        Self::new(op::JMP | op::CALL, 0, 0, 0, id)
    }
    pub const fn exit() -> Self {
        Self::new(op::JMP | op::EXIT, 0, 0, 0, 0)
    }
    /// `ld_imm64` of the address of the function `rel` slots after the
    /// second slot (`BPF_PSEUDO_FUNC`): two slots.
    pub fn ld_func_addr(dst: Reg, rel: i32) -> [Self; 2] {
        [
            Self::new(op::LD | op::DW | op::IMM, dst, op::PSEUDO_FUNC, 0, rel),
            Self::new(0, 0, 0, 0, 0),
        ]
    }
    /// `ld_imm64`: two slots.
    pub fn ld_imm64(dst: Reg, v: u64) -> [Self; 2] {
        [
            Self::new(op::LD | op::DW | op::IMM, dst, 0, 0, v as u32 as i32),
            Self::new(0, 0, 0, 0, (v >> 32) as u32 as i32),
        ]
    }
}

/// Where the functions of a program start: slot 0 and every target of a
/// bpf2bpf call or of a function's address (`BPF_PSEUDO_FUNC`), sorted, as
/// the kernel splits a program into subprograms. Targets outside the
/// program are left out.
pub fn function_starts(insns: &[Insn]) -> Vec<usize> {
    let mut starts = vec![0];
    let mut i = 0;
    while i < insns.len() {
        let x = insns[i];
        let call = x.code == op::JMP | op::CALL && x.src == op::PSEUDO_CALL;
        let func = x.code == op::LD | op::DW | op::IMM && x.src == op::PSEUDO_FUNC;
        if call || func {
            let t = i as i64 + 1 + i64::from(x.imm);
            if (0..insns.len() as i64).contains(&t) {
                starts.push(t as usize);
            }
        }
        i += if x.code == op::LD | op::DW | op::IMM {
            2
        } else {
            1
        };
    }
    starts.sort_unstable();
    starts.dedup();
    starts
}

/// Whether a program takes a function's address (a `bpf_loop` callback):
/// the kernel then wants BTF func_info for each of its functions.
pub fn takes_function_address(insns: &[Insn]) -> bool {
    insns
        .iter()
        .any(|x| x.code == op::LD | op::DW | op::IMM && x.src == op::PSEUDO_FUNC)
}

/// Encodes instructions as the bytes of an ELF `.text` section or a
/// `BPF_PROG_LOAD` buffer.
pub fn to_bytes(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_bytes()).collect()
}

/// Decodes a byte buffer (length a multiple of 8) into instructions.
pub fn from_bytes(bytes: &[u8]) -> Vec<Insn> {
    bytes
        .chunks_exact(8)
        .map(|c| Insn::from_bytes(c.try_into().unwrap()))
        .collect()
}
