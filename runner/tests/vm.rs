//! Interpreter behaviour the kernel cannot be compared with.

use cbpf2ebpf::ebpf::{helper, op, Insn, R0, R1, R10, R2, R3, R4};
use xcap_runner::vm::{VmFilter, CTX_BASE};
use xcap_runner::{Error, Mode};

fn vm(insns: &[Insn], mode: Mode) -> VmFilter {
    VmFilter::new(insns, mode).unwrap()
}

#[test]
fn probe_read_past_the_packet_is_efault() {
    // bpf_probe_read_kernel(fp-8, 2, end - 1): one byte too many.
    let f = vm(
        &[
            Insn::mov64_reg(R1, R10),
            Insn::alu64_imm(op::ADD, R1, -8),
            Insn::alu64_imm(op::ADD, R3, -1),
            Insn::mov64_imm(R2, 2),
            Insn::call_helper(helper::PROBE_READ_KERNEL),
            Insn::exit(),
        ],
        Mode::Probe,
    );
    assert_eq!(f.run(&[1, 2, 3], 3).unwrap(), -14i32 as u32);
}

#[test]
fn helper_destination_must_be_stack() {
    // bpf_skb_load_bytes(ctx, 0, start, 1): `to` points into the packet.
    let f = vm(
        &[
            Insn::mov64_reg(R3, R2),
            Insn::mov64_imm(R2, 0),
            Insn::mov64_imm(R4, 1),
            Insn::call_helper(helper::SKB_LOAD_BYTES),
            Insn::exit(),
        ],
        Mode::Skb,
    );
    let e = f.run(&[1, 2, 3], 3).unwrap_err();
    assert!(
        matches!(e, Error::Vm(_)) && e.to_string().contains("is not stack"),
        "{e}"
    );
}

#[test]
fn packet_is_read_only_and_ctx_is_opt_in() {
    let store = vm(
        &[
            Insn::st_imm(op::B, R2, 0, 1),
            Insn::mov32_imm(R0, 0),
            Insn::exit(),
        ],
        Mode::Direct,
    );
    assert!(store
        .run(&[0], 1)
        .unwrap_err()
        .to_string()
        .contains("read-only"));
    let ctx_read = [Insn::ldx(op::W, R0, R1, 4), Insn::exit()];
    assert!(vm(&ctx_read, Mode::Direct).run(&[], 0).is_err());
    // Skb mode has a `struct __sk_buff` by default: `len` at offset 0.
    let skb_len = [Insn::ldx(op::W, R0, R1, 0), Insn::exit()];
    assert_eq!(vm(&skb_len, Mode::Skb).run(&[1, 2, 3], 9).unwrap(), 3);
    let with_ctx = vm(&ctx_read, Mode::Skb).with_ctx(vec![0, 0, 0, 0, 42, 0, 0, 0]);
    assert_eq!(with_ctx.run(&[], 0).unwrap(), 42);
    assert_eq!(CTX_BASE >> 44, 3);
}

#[test]
fn bpf2bpf_calls_keep_callee_saved_registers() {
    // main: r6 = 5; call sub; r0 += r6; exit.  sub: r6 = 100; r0 = r4; exit.
    let f = vm(
        &[
            Insn::mov64_imm(6, 5),
            Insn::new(op::JMP | op::CALL, 0, op::PSEUDO_CALL, 0, 2),
            Insn::alu64_reg(op::ADD, R0, 6),
            Insn::exit(),
            Insn::mov64_imm(6, 100),
            Insn::mov64_reg(R0, R4),
            Insn::exit(),
        ],
        Mode::Direct,
    );
    assert_eq!(f.run(&[], 37).unwrap(), 42);
}

#[test]
fn endless_loops_stop() {
    let f = vm(&[Insn::mov32_imm(R0, 0), Insn::ja(-1)], Mode::Direct);
    assert!(f
        .run(&[], 0)
        .unwrap_err()
        .to_string()
        .contains("instructions executed"));
}
