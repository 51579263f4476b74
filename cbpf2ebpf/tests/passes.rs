//! Properties of the passes, seen through `translate`'s output: where
//! bounds checks go, which byte swaps remain, that every jump goes forward.
//! (That the output *means* what libpcap means is the job of the
//! differential tests in `tests/`.)

use cbpf2ebpf::cbpf::{op, Insn};
use cbpf2ebpf::ebpf::{self, op as eop};
use cbpf2ebpf::{libpcap, translate, Hook, Mode, Options, Translation};

fn tr(expr: &str, mode: Mode) -> Translation {
    let prog = libpcap::compile(expr, libpcap::DLT_EN10MB, 262144).unwrap();
    translate(
        &prog,
        &Options {
            mode,
            hook: Hook::Offline,
            ..Options::default()
        },
    )
    .unwrap()
}

fn swaps(t: &Translation) -> usize {
    t.insns
        .iter()
        .filter(|i| i.code == eop::ALU | eop::END | eop::TO_BE)
        .count()
}

fn is_jump(i: &ebpf::Insn) -> bool {
    matches!(i.class(), eop::JMP | eop::JMP32) && !matches!(i.code & 0xf0, eop::CALL | eop::EXIT)
}

#[test]
fn every_jump_goes_forward() {
    for expr in [
        "ip6 protochain 6",
        "ip6 protochain 17 or ip6 protochain 58",
        "tcp port 80 or udp port 53",
        "vlan and vlan and tcp",
    ] {
        for mode in [Mode::Direct, Mode::Skb, Mode::Probe] {
            let t = tr(expr, mode);
            for (pc, i) in t.insns.iter().enumerate() {
                if is_jump(i) {
                    let off = if i.code == eop::JMP32 | eop::JA {
                        i.imm
                    } else {
                        i.off as i32
                    };
                    assert!(off >= 0, "`{expr}` {mode:?}: backward jump at {pc}");
                }
            }
        }
    }
}

#[test]
fn one_check_covers_a_run_of_indexed_loads() {
    // ldh [x+14], ldh [x+16] and ldb [x+27] are all reached after the
    // ldxb: one check for the constant prefix, one for X.
    let t = tr("tcp port 443 and tcp[13]&8!=0", Mode::Direct);
    assert_eq!(t.stats.bounds_checks, 2, "{}", ebpf::disassemble(&t.insns));
}

#[test]
fn compared_loads_skip_the_byte_swap() {
    assert_eq!(swaps(&tr("tcp port 443 and tcp[13]&8!=0", Mode::Direct)), 0);
    assert_eq!(swaps(&tr("host 10.0.0.1 and udp", Mode::Skb)), 0);
    // An ordered comparison needs host order.
    assert_eq!(swaps(&tr("ip[2:2] > 100", Mode::Direct)), 1);
    // So does arithmetic on the loaded value.
    assert!(swaps(&tr("ip[2:2] - 20 > 100", Mode::Direct)) >= 1);
}

#[test]
fn a_value_reaching_one_test_from_two_loads_is_consistent() {
    // Two halfword loads meet at one jeq: both stay raw, or both swap.
    let prog = [
        Insn::new(op::LD | op::B | op::ABS, 0, 0, 0),
        Insn::new(op::JMP | op::JEQ | op::K, 0, 2, 1),
        Insn::new(op::LD | op::H | op::ABS, 0, 0, 12),
        Insn::new(op::JMP | op::JA, 0, 0, 1),
        Insn::new(op::LD | op::W | op::ABS, 0, 0, 12),
        Insn::new(op::JMP | op::JEQ | op::K, 0, 1, 0x0800),
        Insn::new(op::RET | op::K, 0, 0, 1),
        Insn::new(op::RET | op::K, 0, 0, 0),
    ];
    let t = translate(
        &prog,
        &Options {
            hook: Hook::Offline,
            ..Options::default()
        },
    )
    .unwrap();
    assert_eq!(
        swaps(&t),
        2,
        "mixed widths at one test must both swap:\n{}",
        ebpf::disassemble(&t.insns)
    );
}

#[test]
fn a_and_x_are_zeroed_only_when_read_first() {
    let mov_imm0 = |t: &Translation, reg: u8| {
        t.insns
            .iter()
            .any(|i| i.code == eop::ALU | eop::MOV | eop::K && i.dst == reg && i.imm == 0)
    };
    // `ip` writes A before reading it and never reads X.
    let t = tr("ip", Mode::Direct);
    assert!(
        !mov_imm0(&t, ebpf::R6) && !mov_imm0(&t, ebpf::R7),
        "{}",
        ebpf::disassemble(&t.insns)
    );
    let reads_first = [
        Insn::new(op::ALU | op::ADD | op::X, 0, 0, 0),
        Insn::new(op::RET | op::A, 0, 0, 0),
    ];
    let t = translate(
        &reads_first,
        &Options {
            hook: Hook::Offline,
            ..Options::default()
        },
    )
    .unwrap();
    assert!(
        mov_imm0(&t, ebpf::R6) && mov_imm0(&t, ebpf::R7),
        "{}",
        ebpf::disassemble(&t.insns)
    );
}

#[test]
fn unrolled_passes_scale_the_code_and_the_callback_stays_one_pass() {
    let prog = libpcap::compile("ip6 protochain 6", libpcap::DLT_EN10MB, 262144).unwrap();
    let translate_with = |opts: Options| translate(&prog, &opts).unwrap();
    let callback_form = |n| {
        translate_with(Options {
            hook: Hook::Offline,
            unrolled_loop_passes: n,
            ..Options::default()
        })
    };
    let (t0, t4, t8) = (callback_form(0), callback_form(4), callback_form(8));
    let main_len = |t: &cbpf2ebpf::Translation| t.callback.unwrap();
    let callback_len = |t: &cbpf2ebpf::Translation| t.insns.len() - t.callback.unwrap();
    assert!(main_len(&t0) < main_len(&t4) && main_len(&t4) < main_len(&t8));
    assert_eq!(callback_len(&t0), callback_len(&t8));
    // The unrolled form: one function, each pass a copy.
    let unrolled = |n| {
        translate_with(Options {
            hook: Hook::Offline,
            loops: cbpf2ebpf::LoopForm::Unrolled,
            max_loop_iterations: n,
            ..Options::default()
        })
    };
    let (u4, u8, u16) = (unrolled(4), unrolled(8), unrolled(16));
    assert!(u4.insns.len() < u8.insns.len() && u8.insns.len() < u16.insns.len());
    assert_eq!(u16.callback, None);
    // No loop, no callback.
    let plain = libpcap::compile("tcp port 80", libpcap::DLT_EN10MB, 262144).unwrap();
    assert_eq!(
        translate(&plain, &Options::default()).unwrap().callback,
        None
    );
}

#[test]
fn every_protochain_loop_stops_when_its_state_repeats() {
    // libpcap's protochain carries only A and X from pass to pass (its
    // scratch word is written before it is read), so the callback can
    // find a repeated state: where libpcap never returns, the filter
    // returns 0 within a few passes of the repeat.
    for expr in [
        "ip6 protochain 6",
        "protochain 17",
        "ip protochain 58",
        "ip6 protochain 6 and ip protochain 17",
    ] {
        for dlt in [libpcap::DLT_EN10MB, libpcap::DLT_RAW] {
            let prog = libpcap::compile(expr, dlt, 262144).unwrap();
            let t = translate(&prog, &Options::default()).unwrap();
            assert!(t.callback.is_some() && t.stats.cycle_detection, "{expr}");
        }
    }
    // A loop that carries a scratch word (a counter) has no such check.
    let counter = [
        Insn::new(op::LD | op::IMM, 0, 0, 5),
        Insn::new(op::ST, 0, 0, 3),
        Insn::new(op::LD | op::MEM, 0, 0, 3),
        Insn::new(op::JMP | op::JEQ | op::K, 3, 0, 0),
        Insn::new(op::ALU | op::SUB | op::K, 0, 0, 1),
        Insn::new(op::ST, 0, 0, 3),
        Insn::new(op::JMP | op::JA, 0, 0, (-5i32) as u32),
        Insn::new(op::RET | op::K, 0, 0, 1),
    ];
    let t = translate(&counter, &Options::default()).unwrap();
    assert!(t.callback.is_some() && !t.stats.cycle_detection);
}

#[test]
fn bad_programs_are_refused_with_the_reason() {
    let cases: [(&[Insn], &str); 5] = [
        (&[], "empty"),
        (&[Insn::new(op::LD | op::IMM, 0, 0, 1)], "not a return"),
        (
            &[
                Insn::new(op::JMP | op::JEQ | op::K, 5, 0, 1),
                Insn::new(op::RET | op::K, 0, 0, 0),
            ],
            "outside the program",
        ),
        (
            &[
                Insn::new(op::ALU | op::DIV | op::K, 0, 0, 0),
                Insn::new(op::RET | op::K, 0, 0, 0),
            ],
            "division",
        ),
        (
            &[
                Insn::new(op::LD | op::MEM, 0, 0, 16),
                Insn::new(op::RET | op::K, 0, 0, 0),
            ],
            "scratch",
        ),
    ];
    for (prog, why) in cases {
        let err = translate(prog, &Options::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(why), "{err:?} should mention {why:?}");
    }
}
