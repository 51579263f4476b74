//! Limits and errors of the kernel engine, checked against this kernel.

mod common;

use cbpf2ebpf::ebpf::{op, Insn, R0, R2};
use common::*;
use xcap_runner::kernel::{self, max_packet_len, KernelFilter, ProgType, TestRun, HEADER_LEN};
use xcap_runner::{Engine, Error, Filter, Mode, RunFilter};

#[test]
fn largest_packets_per_mode() {
    // 4 KiB pages (x86-64): XDP 3520 linear bytes, skb 3712, SYSCALL ctx
    // 65535, each less our 16-byte header.
    assert_eq!(kernel::max_packet_len(Mode::Direct), 3504);
    assert_eq!(kernel::max_packet_len(Mode::Skb), 3696);
    assert_eq!(kernel::max_packet_len(Mode::Probe), 65519);
}

#[test]
fn larger_packets_are_a_clear_error() {
    for mode in MODES {
        let f = KernelFilter::load(&caplen(), mode).unwrap();
        let max = max_packet_len(mode);
        assert_eq!(f.run(&packet(max), max as u32).unwrap(), max as u32);
        let e = f.run(&packet(max + 1), max as u32 + 1).unwrap_err();
        assert!(
            matches!(e, Error::PacketTooLarge { len, max: m, .. } if len == max + 1 && m == max),
            "{e}"
        );
        assert!(e.to_string().contains("too large"), "{e}");
    }
}

/// What the kernel itself does one byte past our limit, bypassing the check:
/// if this changes, `max_packet_len` must change too.
#[test]
fn kernel_behaviour_past_the_limit() {
    for mode in MODES {
        let f = KernelFilter::load(&caplen(), mode).unwrap();
        let n = max_packet_len(mode) + 1;
        let input = vec![0u8; HEADER_LEN + n];
        match mode {
            // XDP puts what does not fit in the linear area into fragments,
            // which packet pointers do not see: the filter would see a
            // silently shortened packet.
            Mode::Direct => {
                let out = kernel::test_run(
                    f.fd(),
                    &TestRun {
                        data_in: &input,
                        data_out_len: input.len(),
                        ..Default::default()
                    },
                )
                .unwrap();
                assert_eq!(out.retval, 2);
                assert_eq!(
                    u32::from_le_bytes(out.data_out[4..8].try_into().unwrap()),
                    n as u32 - 1
                );
            }
            Mode::Skb => {
                let e = kernel::test_run(
                    f.fd(),
                    &TestRun {
                        data_in: &input,
                        ..Default::default()
                    },
                )
                .unwrap_err();
                assert!(e.to_string().contains("Invalid argument"), "{e}");
            }
            Mode::Probe => {
                let e = kernel::test_run(
                    f.fd(),
                    &TestRun {
                        ctx_in: &input,
                        ..Default::default()
                    },
                )
                .unwrap_err();
                assert!(e.to_string().contains("Invalid argument"), "{e}");
            }
        }
    }
}

#[test]
fn refusal_gives_the_verifier_reason_in_one_line() {
    // A packet read without a bounds check.
    let bad = [Insn::ldx(op::B, R0, R2, 0), Insn::exit()];
    let e = KernelFilter::load(&bad, Mode::Direct).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("the kernel refused the program: "), "{msg}");
    assert!(
        msg.contains("invalid access to packet"),
        "{msg}\n{:#?}",
        e.verifier_log()
    );
    assert!(
        msg.ends_with("(at filter insn 0: r0 = *(u8 *)(r2 +0))"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg}");
    let log = e.verifier_log().unwrap();
    assert!(log.len() > 1, "{log:?}");
}

#[test]
fn program_info() {
    for mode in MODES {
        let f = KernelFilter::load(&byte_at(mode, 0), mode).unwrap();
        let wrapper = kernel::wrapper(mode).len() as u32;
        let verified = f.verified_insns().expect("verified_insns on 6.18");
        assert!(verified >= wrapper, "{mode:?}: {verified} < {wrapper}");
        assert!(f.jited_len().unwrap() > 0);
    }
}

#[test]
fn load_program_loads_a_whole_program() {
    // XDP_PASS
    let fd = kernel::load_program(
        ProgType::XDP,
        &[Insn::mov64_imm(R0, 2), Insn::exit()],
        "xcap_test",
    )
    .unwrap();
    let out = kernel::test_run(
        &fd,
        &TestRun {
            data_in: &[0u8; 14],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(out.retval, 2);
    let info = kernel::prog_info(&fd).unwrap();
    assert_eq!(info.prog_type, ProgType::XDP.0);
}

#[test]
fn both_engines_refuse_malformed_programs() {
    let bad: Vec<(&str, Vec<Insn>)> = vec![
        (
            "NEG with the X bit",
            vec![
                Insn::mov32_imm(R0, 1),
                Insn::new(op::ALU | op::NEG | op::X, 0, 0, 0, 0),
                Insn::exit(),
            ],
        ),
        (
            "constant ALU with src_reg",
            vec![
                Insn::new(op::ALU64 | op::MOV | op::K, 0, 1, 0, 5),
                Insn::exit(),
            ],
        ),
        (
            "shift by 32",
            vec![
                Insn::mov32_imm(R0, 1),
                Insn::alu32_imm(op::LSH, R0, 32),
                Insn::exit(),
            ],
        ),
        (
            "division by constant 0",
            vec![
                Insn::mov32_imm(R0, 1),
                Insn::alu32_imm(op::DIV, R0, 0),
                Insn::exit(),
            ],
        ),
        (
            "unreachable code",
            vec![Insn::mov32_imm(R0, 1), Insn::exit(), Insn::exit()],
        ),
        (
            "jump out of the program",
            vec![Insn::mov32_imm(R0, 1), Insn::ja(5), Insn::exit()],
        ),
        ("no exit", vec![Insn::mov32_imm(R0, 1)]),
        (
            "unknown helper",
            vec![Insn::call_helper(1000), Insn::exit()],
        ),
    ];
    for (what, insns) in bad {
        for engine in Engine::ALL {
            assert!(
                Filter::load(engine, &insns, Mode::Skb).is_err(),
                "{engine} accepted {what}"
            );
        }
    }
}

#[test]
fn vm_catches_what_the_verifier_would() {
    let bad = [Insn::ldx(op::B, R0, R2, 0), Insn::exit()];
    let f = Filter::load(Engine::Vm, &bad, Mode::Direct).unwrap();
    assert_eq!(f.run(&[9], 1).unwrap(), 9);
    let e = f.run(&[], 1).unwrap_err();
    assert!(
        e.to_string()
            .contains("out of bounds load of 1 bytes at packet+0"),
        "{e}"
    );
}
