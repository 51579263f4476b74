//! Regression tests for translator bugs other projects shipped (see
//! ../shared/notes/bpf-facts.md): each runs in the VM and in the kernel, in
//! all three access modes, against libpcap's interpreter.

use cbpf2ebpf::cbpf::{op, Insn};
use cbpf2ebpf::{ebpf, libpcap, translate, Hook, LoopForm, Mode, Options};
use xcap_runner::{Engine, Filter, RunFilter};
use xcap_tests::{assert_matches_libpcap, eth_ipv4, host_list};

fn compile(expr: &str) -> Vec<Insn> {
    libpcap::compile(expr, libpcap::DLT_EN10MB, 262144).unwrap()
}

fn sample_packets() -> Vec<(Vec<u8>, u32)> {
    let mut v = Vec::new();
    for (proto, sport, dport) in [
        (6u8, 443u16, 1234u16),
        (6, 1234, 80),
        (17, 53, 5353),
        (17, 1000, 2000),
    ] {
        for host in [
            [10, 0, 0, 1],
            [10, 0, 0, 99],
            [10, 0, 1, 44],
            [192, 168, 1, 1],
        ] {
            let p = eth_ipv4(proto, host, [10, 9, 9, 9], sport, dport, b"GET / HTTP/1.1");
            let len = p.len() as u32;
            v.push((p.clone(), len));
            v.push((p[..40.min(p.len())].to_vec(), len));
        }
    }
    v.push((vec![], 60));
    v.push((vec![0xff; 13], 13));
    v
}

#[test]
fn long_host_lists_jt_255_and_far_jumps() {
    // About 85 host terms give jt = 255. (libpcap's optimizer needs about a
    // minute and a half for 1000 terms, so longer lists stay out of tests.)
    for n in [100, 300] {
        let prog = compile(&host_list(n));
        assert!(
            prog.iter().any(|i| i.jt == 255 || i.jf == 255) || n > 100,
            "expected jt/jf = 255 in a {n}-host filter"
        );
        let mut packets = sample_packets();
        for i in [0usize, 1, n / 2, n - 1] {
            let host = [
                10,
                (i / 65536 % 256) as u8,
                (i / 256 % 256) as u8,
                (i % 256) as u8,
            ];
            let p = eth_ipv4(6, host, [1, 1, 1, 1], 1, 2, b"");
            let len = p.len() as u32;
            packets.push((p, len));
        }
        assert_matches_libpcap(&format!("{n} hosts"), &prog, &packets);
    }
}

/// Loads both layouts of `prog` (far jumps as islands and as gotol) in the
/// kernel and the VM and compares every answer with libpcap's. The kernel
/// must load the islands; it loads gotol exactly when the probe says it
/// has it (its verifier refuses it otherwise), so the probe is tested too.
/// Returns the instruction counts (islands, gotol) and the gotols.
fn far_jumps_both_ways(
    what: &str,
    prog: &[Insn],
    opts: Options,
    packets: &[(Vec<u8>, u32)],
) -> (usize, usize, usize) {
    let islands = translate(
        prog,
        &Options {
            gotol: false,
            ..opts.clone()
        },
    )
    .unwrap();
    let wide = translate(
        prog,
        &Options {
            gotol: true,
            ..opts.clone()
        },
    )
    .unwrap();
    let gotols = |t: &cbpf2ebpf::Translation| {
        let gotol = ebpf::op::JMP32 | ebpf::op::JA;
        t.insns.iter().filter(|i| i.code == gotol).count()
    };
    assert!(
        islands.insns.len() > 32767,
        "{what}: only {} instructions",
        islands.insns.len()
    );
    assert_eq!(gotols(&islands), 0, "{what}");
    assert!(
        gotols(&wide) > 0,
        "{what}: no gotol in {}",
        wide.insns.len()
    );
    let has_gotol = xcap_runner::kernel_has_gotol();
    let mut filters = Vec::new();
    for engine in [Engine::Kernel, Engine::Vm] {
        let f = Filter::load(engine, &islands.insns, opts.mode);
        filters.push((format!("islands, {engine}"), f.unwrap()));
        let f = Filter::load(engine, &wide.insns, opts.mode);
        match f {
            Ok(f) if has_gotol || engine == Engine::Vm => {
                filters.push((format!("gotol, {engine}"), f))
            }
            Ok(_) => panic!("{what}: the kernel loads gotol, but the probe says it has none"),
            Err(e) if has_gotol => panic!("{what}: gotol, {engine}: {e}"),
            Err(e) => assert!(
                matches!(e, xcap_runner::Error::Refused { .. }),
                "{what}: gotol on a kernel without it: {e}"
            ),
        }
    }
    for (n, (p, len)) in packets.iter().enumerate() {
        let want = libpcap::filter(prog, p, *len);
        for (name, f) in &filters {
            assert_eq!(f.run(p, *len).unwrap(), want, "{what}: {name}, packet {n}");
        }
    }
    (islands.insns.len(), wide.insns.len(), gotols(&wide))
}

#[test]
fn far_jumps_load_as_islands_on_every_kernel_and_as_gotol_where_it_exists() {
    // 600 unrolled protochain iterations in skb mode pass 32767 eBPF
    // instructions (more iterations hit the verifier's limit of 8192
    // pending branches on one path).
    let prog = compile("ip6 protochain 6");
    let opts = Options {
        mode: Mode::Skb,
        hook: Hook::Offline,
        loops: LoopForm::Unrolled,
        max_loop_iterations: 600,
        unrolled_loop_passes: 0,
        // The linear fast path would double the code (and the verifier's
        // work) past its limit.
        linear_fast_path: false,
        ..Options::default()
    };
    // TCP right after the IPv6 header, after 40 extension headers, and UDP.
    let ip6 = |chain: usize, last: u8| {
        let mut p = vec![
            2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60, 0, 0, 0,
        ];
        let payload = 8 * chain + 20;
        let first = if chain > 0 { 60 } else { last };
        p.extend_from_slice(&[(payload >> 8) as u8, payload as u8, first, 64]);
        p.extend_from_slice(&[0; 32]);
        for n in 0..chain {
            p.extend_from_slice(&[if n + 1 < chain { 60 } else { last }, 0, 1, 4, 0, 0, 0, 0]);
        }
        p.extend_from_slice(&[0; 20]);
        let len = p.len() as u32;
        (p, len)
    };
    let packets = [ip6(0, 6), ip6(40, 6), ip6(40, 17), ip6(300, 6)];
    let (islands, wide, gotols) = far_jumps_both_ways("ip6 protochain 6", &prog, opts, &packets);
    xcap_tests::report(&format!(
        "ip6 protochain 6, skb, 600 iterations: {islands} instructions with jump islands, {wide} with {gotols} gotols"
    ));
}

#[test]
fn a_72000_instruction_filter_loads_with_islands_on_every_kernel() {
    // 12,000 blocks, each with its own return; in direct mode (the other
    // modes take the verifier past its limits at this size).
    let prog = xcap_tests::far_jump_blocks(12_000);
    let opts = Options {
        mode: Mode::Direct,
        hook: Hook::Offline,
        ..Options::default()
    };
    let packets = xcap_tests::random_packets(300, 70);
    let (islands, wide, gotols) = far_jumps_both_ways("12,000 blocks", &prog, opts, &packets);
    xcap_tests::report(&format!(
        "12,000 blocks, direct: {islands} instructions with jump islands, {wide} with {gotols} gotols"
    ));
}

#[test]
fn ja_lands_exactly() {
    // ja +1 skips exactly one instruction; jt = jf = 0 falls through.
    let prog = [
        Insn::new(op::LD | op::IMM, 0, 0, 7),
        Insn::new(op::JMP | op::JA, 0, 0, 1),
        Insn::new(op::LD | op::IMM, 0, 0, 9),
        Insn::new(op::JMP | op::JEQ | op::K, 0, 0, 7),
        Insn::new(op::RET | op::A, 0, 0, 0),
    ];
    assert_matches_libpcap("ja +1, jt = jf = 0", &prog, &sample_packets());
}

#[test]
fn alu_is_32_bit() {
    for expr in [
        "ip[0:4] << 8 >> 8 = 0x28",
        "ip[0:4] << 8 >> 8 = 0x00001c",
        "ip[0:4] * 0x10000 / 0x10000 = 0x28",
        "ip[12:4] + 0xffffffff = 0x0a000000",
        "-ip[0] = 0xffffffbb",
    ] {
        assert_matches_libpcap(expr, &compile(expr), &sample_packets());
    }
    // A constant above 0x7fffffff must compare as unsigned 32-bit.
    let prog = [
        Insn::new(op::LD | op::IMM, 0, 0, 0x8000_0000),
        Insn::new(op::JMP | op::JEQ | op::K, 0, 1, 0x8000_0000),
        Insn::new(op::RET | op::K, 0, 0, 1),
        Insn::new(op::RET | op::K, 0, 0, 2),
    ];
    assert_matches_libpcap("jeq #0x80000000", &prog, &sample_packets());
}

#[test]
fn division_and_modulo_by_zero_x_return_zero() {
    for expr in [
        "ip[2:2] / (ip[9] - 6) = 1",
        "ip[2:2] % (ip[9] - 17) = 1",
        "ip[2:2] / (ip[9] - 6) = 0 or ip[2:2] / (ip[9] - 17) = 0",
    ] {
        assert_matches_libpcap(expr, &compile(expr), &sample_packets());
    }
    // A return after the division must not be reached.
    let prog = [
        Insn::new(op::LD | op::IMM, 0, 0, 10),
        Insn::new(op::ALU | op::DIV | op::X, 0, 0, 0),
        Insn::new(op::RET | op::K, 0, 0, 0xffff),
    ];
    assert_matches_libpcap("div by X = 0", &prog, &sample_packets());
}

#[test]
fn shifts_by_x_of_32_or_more_give_zero() {
    for x in [0u32, 1, 31, 32, 33, 64, 0xffff_ffff] {
        for alu in [op::LSH, op::RSH] {
            let prog = [
                Insn::new(op::LDX | op::IMM, 0, 0, x),
                Insn::new(op::LD | op::IMM, 0, 0, 0x8000_0001),
                Insn::new(op::ALU | alu | op::X, 0, 0, 0),
                Insn::new(op::RET | op::A, 0, 0, 0),
            ];
            assert_matches_libpcap(
                &format!("shift {alu:#x} by X={x}"),
                &prog,
                &sample_packets()[..2],
            );
        }
    }
}

#[test]
fn loads_past_the_packet_return_zero() {
    for expr in [
        "ip[100] = 0",
        "ip[100] != 0",
        "tcp[100:4] = 0 or udp",
        "ether[1514] = 0 or ip",
        "ip[65530:2] = 0 or tcp",
    ] {
        assert_matches_libpcap(expr, &compile(expr), &sample_packets());
    }
}

#[test]
fn neg_is_encoded_as_the_verifier_wants() {
    let prog = compile("-ip[0] = 0xffffffbb");
    for mode in [Mode::Direct, Mode::Skb, Mode::Probe] {
        let t = translate(
            &prog,
            &Options {
                mode,
                hook: Hook::Offline,
                ..Options::default()
            },
        )
        .unwrap();
        let neg = t
            .insns
            .iter()
            .find(|i| i.code == ebpf::op::ALU | ebpf::op::NEG)
            .expect("a NEG instruction");
        assert_eq!((neg.src, neg.imm), (0, 0));
    }
    assert_matches_libpcap("neg", &prog, &sample_packets());
}

#[test]
fn msh_keeps_a() {
    let prog = [
        Insn::new(op::LD | op::IMM, 0, 0, 5),
        Insn::new(op::LDX | op::B | op::MSH, 0, 0, 14),
        Insn::new(op::ALU | op::ADD | op::X, 0, 0, 0),
        Insn::new(op::RET | op::A, 0, 0, 0),
    ];
    assert_matches_libpcap("ldxb 4*([14]&0xf) keeps A", &prog, &sample_packets());
}

#[test]
fn a_x_and_scratch_start_at_zero() {
    let prog = [
        Insn::new(op::ALU | op::ADD | op::X, 0, 0, 0),
        Insn::new(op::ALU | op::ADD | op::K, 0, 0, 3),
        Insn::new(op::RET | op::A, 0, 0, 0),
    ];
    assert_matches_libpcap("A and X start at 0", &prog, &sample_packets());
    let prog = [
        Insn::new(op::ST, 0, 0, 3),
        Insn::new(op::LDX | op::MEM, 0, 0, 3),
        Insn::new(op::TXA | op::MISC, 0, 0, 0),
        Insn::new(op::RET | op::A, 0, 0, 0),
    ];
    assert_matches_libpcap("scratch round trip", &prog, &sample_packets());
}

#[test]
fn protochain_walks_extension_headers() {
    // Ethernet + IPv6 with `depth` hop-by-hop/destination headers, then TCP.
    fn packet(depth: usize, last: u8) -> Vec<u8> {
        let mut p = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
        let payload = depth * 8 + 20;
        p.extend_from_slice(&[
            0x60,
            0,
            0,
            0,
            (payload >> 8) as u8,
            payload as u8,
            if depth > 0 { 0 } else { last },
            64,
        ]);
        p.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        for d in 0..depth {
            let next = if d + 1 == depth { last } else { 60 };
            p.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        }
        p.extend_from_slice(&[0; 20]);
        p
    }
    let mut packets = Vec::new();
    for depth in [0, 1, 2, 5, 10, 20, 31] {
        for last in [6u8, 17, 58] {
            let p = packet(depth, last);
            let len = p.len() as u32;
            packets.push((p.clone(), len));
            packets.push((p[..p.len() - 24].to_vec(), len));
        }
    }
    for expr in [
        "ip6 protochain 6",
        "ip6 protochain 17 or ip6 protochain 58",
        "ip6 protochain 6 and not ip6 protochain 17",
    ] {
        assert_matches_libpcap(expr, &compile(expr), &packets);
    }
}

#[test]
fn backward_jumps_past_the_bound_return_zero_or_error_clearly() {
    let prog = compile("ip6 protochain 6");
    let unrolled = |n| Options {
        loops: LoopForm::Unrolled,
        max_loop_iterations: n,
        hook: Hook::Offline,
        ..Options::default()
    };
    let t = translate(&prog, &unrolled(2)).unwrap();
    assert!(t.insns.len() < translate(&prog, &unrolled(32)).unwrap().insns.len());
    // A loop that never ends in libpcap: unrolled, "return 0" after the
    // bound; as a callback, 0 once its state repeats, in every engine.
    let spin = [Insn::new(op::JMP | op::JA, 0, 0, 0xffff_ffff)];
    let t = translate(&spin, &unrolled(32)).unwrap();
    assert_eq!(t.insns.len(), 2, "{}", ebpf::disassemble(&t.insns));
    for variant in xcap_tests::VARIANTS {
        let t = translate(&spin, &variant.options()).unwrap();
        assert!(t.callback.is_some());
        for engine in Engine::ALL {
            let f = Filter::load(engine, &t.insns, variant.mode).unwrap();
            assert_eq!(f.run(&[0; 60], 60).unwrap(), 0, "{engine}/{}", variant.name);
        }
    }
}

#[test]
fn inbound_and_ifindex_follow_the_hook() {
    let inbound = compile("inbound");
    // Offline, as libpcap's interpreter: an ancillary load is out of bounds.
    assert_matches_libpcap("inbound offline", &inbound, &sample_packets());
    // Without a hook the translation names the primitive.
    let err = translate(&inbound, &Options::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("inbound"), "{err}");
    // ifindex has no meaning in probe mode.
    let err = translate(
        &compile("ifindex 3"),
        &Options {
            mode: Mode::Probe,
            hook: Hook::TcIngress,
            ..Options::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("ifindex"), "{err}");

    // In the kernel: BPF_PROG_TEST_RUN runs on the loopback device
    // (ifindex 1); a broadcast frame is an incoming packet.
    let mut frame = eth_ipv4(17, [10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"x");
    frame[..6].copy_from_slice(&[0xff; 6]);
    let len = frame.len() as u32;
    let cases = [
        ("inbound", Hook::TcIngress, Mode::Skb, true),
        ("outbound", Hook::TcIngress, Mode::Skb, false),
        ("inbound", Hook::TcEgress, Mode::Skb, false),
        ("outbound", Hook::TcEgress, Mode::Skb, true),
        ("ifindex 1", Hook::TcIngress, Mode::Skb, true),
        ("ifindex 2", Hook::TcIngress, Mode::Skb, false),
        ("inbound", Hook::Xdp, Mode::Direct, true),
        ("outbound", Hook::Xdp, Mode::Direct, false),
        ("ifindex 1", Hook::Xdp, Mode::Direct, true),
        ("ifindex 7", Hook::Xdp, Mode::Direct, false),
    ];
    for (expr, hook, mode, matches) in cases {
        let t = translate(
            &compile(expr),
            &Options {
                mode,
                hook,
                ..Options::default()
            },
        )
        .unwrap();
        let f = Filter::load(Engine::Kernel, &t.insns, mode).unwrap();
        let got = f.run(&frame, len).unwrap();
        assert_eq!(
            got != 0,
            matches,
            "`{expr}` at {hook:?} in {mode:?} mode returned {got}"
        );
    }
}

#[test]
fn offsets_past_2_pow_31_in_helper_modes() {
    // Found by the cbpf fuzz target: a 64-bit constant (ld_imm64, two
    // slots) was counted twice by the layout pass, so every jump after it
    // missed. Loads this far always fail; the code must still verify.
    let progs: [&[Insn]; 3] = [
        &[
            Insn::new(op::LD | op::H | op::ABS, 0, 0, 2147483647),
            Insn::new(op::RET | op::K, 0, 0, 1),
        ],
        &[
            Insn::new(op::LD | op::B | op::IND, 0, 0, 4294963220),
            Insn::new(op::LD | op::B | op::ABS, 0, 0, 2147483648),
            Insn::new(op::RET | op::K, 0, 0, 0),
        ],
        &[
            Insn::new(op::LD | op::H | op::IND, 0, 0, 4294963200),
            Insn::new(op::RET | op::A, 0, 0, 0),
        ],
    ];
    for prog in progs {
        assert_matches_libpcap("far constant offset", prog, &sample_packets());
    }
    let expr = compile("ether[2749557696] = 0x0 and ip");
    assert_matches_libpcap("ether[2749557696]", &expr, &sample_packets());
}
