//! The interpreter against the kernel: every ALU and jump form the
//! translator may emit (and the v4 ones), on edge-case operands. Operands
//! come from the packet so one loaded program serves many inputs.

use cbpf2ebpf::ebpf::{op, Insn, R0, R1, R2, R3, R5};
use xcap_runner::{Engine, Filter, Mode, RunFilter};

const VALUES: [u64; 14] = [
    0,
    1,
    2,
    7,
    31,
    32,
    63,
    0x7f,
    0x80,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x8000_0000_0000_0000,
    0xffff_ffff_ffff_ffff,
];
const MORE: [u64; 4] = [
    0x1234_5678_9abc_def0,
    0xffff_fffe_0000_0005,
    0xffff_ff85,
    0x0000_0001_0000_0000,
];
const IMMS: [i32; 9] = [1, 2, 7, 31, -1, -2, 0x7fff_ffff, i32::MIN, 0x1234_5678];

/// Loads A = packet[0..8] into r0 and B = packet[8..16] into r1, runs `body`,
/// and returns r0's two halves xor-folded (rotated so swaps show).
fn program(body: &[Insn]) -> Vec<Insn> {
    let mut p = vec![
        Insn::mov64_reg(R5, R2),
        Insn::alu64_imm(op::ADD, R5, 16),
        Insn::jmp_reg(op::JGT, R5, R3, 0), // patched below
        Insn::ldx(op::DW, R0, R2, 0),
        Insn::ldx(op::DW, R1, R2, 8),
    ];
    p.extend_from_slice(body);
    p.extend_from_slice(&[
        Insn::mov64_reg(R1, R0),
        Insn::alu64_imm(op::RSH, R1, 32),
        Insn::alu64_imm(op::LSH, R0, 32),
        Insn::alu64_imm(op::RSH, R0, 32),
        Insn::alu64_imm(op::LSH, R1, 7),
        Insn::alu64_reg(op::XOR, R0, R1),
        Insn::exit(),
        Insn::mov32_imm(R0, 0),
        Insn::exit(),
    ]);
    let fail = p.len() - 2;
    p[2].off = (fail - 3) as i16;
    p
}

fn operands() -> Vec<Vec<u8>> {
    let all: Vec<u64> = VALUES.iter().chain(MORE.iter()).copied().collect();
    let mut out = Vec::new();
    for &a in &all {
        for &b in &all {
            let mut p = a.to_le_bytes().to_vec();
            p.extend_from_slice(&b.to_le_bytes());
            out.push(p);
        }
    }
    out
}

fn compare(what: &str, body: &[Insn]) {
    let prog = program(body);
    let k =
        Filter::load(Engine::Kernel, &prog, Mode::Direct).unwrap_or_else(|e| panic!("{what}: {e}"));
    let v = Filter::load(Engine::Vm, &prog, Mode::Direct).unwrap_or_else(|e| panic!("{what}: {e}"));
    for p in operands() {
        let want = k.run(&p, 16).unwrap();
        let got = v.run(&p, 16).unwrap();
        assert_eq!(
            got,
            want,
            "{what} A={:#x} B={:#x}",
            u64::from_le_bytes(p[..8].try_into().unwrap()),
            u64::from_le_bytes(p[8..].try_into().unwrap())
        );
    }
}

/// Whether this kernel knows the cpu v4 instructions (Linux 6.6+): signed
/// division, `bswap`, `movsx`, sign-extending loads.
fn kernel_has_cpu_v4() -> bool {
    static V4: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *V4.get_or_init(|| {
        let bswap = program(&[Insn::new(op::ALU64 | op::END, R0, 0, 0, 16)]);
        match Filter::load(Engine::Kernel, &bswap, Mode::Direct) {
            Ok(_) => true,
            Err(e) if e.to_string().contains("unknown opcode") => false,
            Err(e) => panic!("probing cpu v4: {e}"),
        }
    })
}

/// [`compare`] for a cpu v4 form; a kernel without v4 must refuse it, as
/// an unknown opcode (`bswap`) or as an older form with reserved fields
/// set (signed division, `movsx`, `ldsx`). The interpreter still runs it:
/// it models the newest kernel.
fn compare_v4(what: &str, body: &[Insn]) {
    if kernel_has_cpu_v4() {
        return compare(what, body);
    }
    match Filter::load(Engine::Kernel, &program(body), Mode::Direct) {
        Err(e)
            if e.to_string().contains("unknown opcode")
                || e.to_string().contains("uses reserved fields") => {}
        Err(e) => panic!("{what}: refused for another reason than cpu v4: {e}"),
        Ok(_) => panic!("{what}: loaded by a kernel that refused bswap16 (no cpu v4)"),
    }
}

const BINARY: [(u8, &str); 12] = [
    (op::ADD, "add"),
    (op::SUB, "sub"),
    (op::MUL, "mul"),
    (op::DIV, "div"),
    (op::OR, "or"),
    (op::AND, "and"),
    (op::LSH, "lsh"),
    (op::RSH, "rsh"),
    (op::MOD, "mod"),
    (op::XOR, "xor"),
    (op::MOV, "mov"),
    (op::ARSH, "arsh"),
];

#[test]
fn alu_register_forms() {
    for (o, name) in BINARY {
        compare(&format!("alu32 {name} X"), &[Insn::alu32_reg(o, R0, R1)]);
        compare(&format!("alu64 {name} X"), &[Insn::alu64_reg(o, R0, R1)]);
    }
    for class in [op::ALU, op::ALU64] {
        for o in [op::DIV, op::MOD] {
            compare_v4(
                &format!("signed {o:#x} class {class}"),
                &[Insn::new(class | o | op::X, R0, R1, 1, 0)],
            );
        }
    }
}

#[test]
fn alu_constant_forms() {
    for (o, name) in BINARY {
        for imm in IMMS {
            let shift = matches!(o, op::LSH | op::RSH | op::ARSH);
            if !shift || (0..32).contains(&imm) {
                compare(
                    &format!("alu32 {name} {imm}"),
                    &[Insn::alu32_imm(o, R0, imm)],
                );
            }
            if !shift || (0..64).contains(&imm) {
                compare(
                    &format!("alu64 {name} {imm}"),
                    &[Insn::alu64_imm(o, R0, imm)],
                );
            }
        }
        if matches!(o, op::LSH | op::RSH | op::ARSH) {
            compare(&format!("alu64 {name} 63"), &[Insn::alu64_imm(o, R0, 63)]);
        }
    }
    for class in [op::ALU, op::ALU64] {
        for o in [op::DIV, op::MOD] {
            for imm in IMMS {
                compare_v4(
                    &format!("signed {o:#x} {imm} class {class}"),
                    &[Insn::new(class | o, R0, 0, 1, imm)],
                );
            }
        }
    }
}

#[test]
fn unary_forms() {
    compare("neg32", &[Insn::neg32(R0)]);
    compare("neg64", &[Insn::new(op::ALU64 | op::NEG, R0, 0, 0, 0)]);
    for bits in [16, 32, 64] {
        compare(&format!("be{bits}"), &[Insn::to_be(R0, bits)]);
        compare(
            &format!("le{bits}"),
            &[Insn::new(op::ALU | op::END, R0, 0, 0, bits)],
        );
        compare_v4(
            &format!("bswap{bits}"),
            &[Insn::new(op::ALU64 | op::END, R0, 0, 0, bits)],
        );
    }
    for off in [8, 16, 32] {
        compare_v4(
            &format!("movsx64 {off}"),
            &[Insn::new(op::ALU64 | op::MOV | op::X, R0, R1, off, 0)],
        );
    }
    for off in [8, 16] {
        compare_v4(
            &format!("movsx32 {off}"),
            &[Insn::new(op::ALU | op::MOV | op::X, R0, R1, off, 0)],
        );
    }
    compare("ld_imm64", &Insn::ld_imm64(R0, 0x8765_4321_0fed_cba9));
}

#[test]
fn sign_extending_loads() {
    for size in [op::B, op::H, op::W] {
        let body = [Insn::new(op::LDX | 0x80 | size, R0, R2, 3, 0)];
        compare_v4(&format!("ldsx {size:#x}"), &body);
    }
}

const CONDS: [u8; 11] = [
    op::JEQ,
    op::JNE,
    op::JGT,
    op::JGE,
    op::JLT,
    op::JLE,
    op::JSET,
    op::JSGT,
    op::JSGE,
    op::JSLT,
    op::JSLE,
];

#[test]
fn conditional_jumps() {
    for c in CONDS {
        for class in [op::JMP, op::JMP32] {
            // r0 = (A cond B) ? 1 : 2
            let jx = Insn::new(class | c | op::X, R0, R1, 2, 0);
            compare(
                &format!("jump {c:#x} X class {class}"),
                &[
                    jx,
                    Insn::mov64_imm(R0, 2),
                    Insn::ja(1),
                    Insn::mov64_imm(R0, 1),
                ],
            );
            for imm in IMMS.iter().copied().chain([0, 0x80, -0x80]) {
                let jk = Insn::new(class | c, R0, 0, 2, imm);
                compare(
                    &format!("jump {c:#x} {imm} class {class}"),
                    &[
                        jk,
                        Insn::mov64_imm(R0, 2),
                        Insn::ja(1),
                        Insn::mov64_imm(R0, 1),
                    ],
                );
            }
        }
    }
}

#[test]
fn gotol() {
    // A 32-bit-offset jump over a long stretch, the way the translator
    // jumps far.
    // A != B: 1000 adds then +5; A == B: straight to +5.
    let mut body = vec![Insn::jmp_reg(op::JNE, R0, R1, 1), Insn::ja32(1000)];
    body.extend(std::iter::repeat_n(Insn::alu64_imm(op::ADD, R0, 1), 1000));
    body.push(Insn::alu64_imm(op::ADD, R0, 5));
    if xcap_runner::kernel_has_gotol() {
        compare("gotol", &body);
    } else {
        // Before Linux 6.6 (6.1.72 in the 6.1 series) the verifier refuses it.
        let refused = Filter::load(Engine::Kernel, &program(&body), Mode::Direct);
        assert!(
            matches!(refused, Err(xcap_runner::Error::Refused { .. })),
            "gotol without kernel support: {:?}",
            refused.err()
        );
    }
}
