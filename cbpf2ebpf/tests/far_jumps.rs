//! Jumps past 32,767 instructions laid out both ways (`gotol`, jump
//! islands), run in the user-space VM (which refuses out-of-range jumps
//! and unreachable instructions, as the verifier does) against each other
//! and libpcap's interpreter. The kernel runs them in
//! tests/tests/regressions.rs.

use cbpf2ebpf::cbpf::Insn;
use cbpf2ebpf::ebpf::{self, op as eop};
use cbpf2ebpf::{libpcap, translate, Hook, LoopForm, Mode, Options, Translation};
use xcap_runner::{Engine, Filter, RunFilter};
use xcap_tests::{far_jump_blocks, random_packets};

fn options(mode: Mode, iterations: u32, linear_fast_path: bool, gotol: bool) -> Options {
    Options {
        mode,
        hook: Hook::Offline,
        // The unrolled form: far jumps need thousands of copies of the
        // loop body (the callback form has none).
        loops: LoopForm::Unrolled,
        max_loop_iterations: iterations,
        linear_fast_path,
        gotol,
        ..Options::default()
    }
}

fn gotols(t: &Translation) -> usize {
    t.insns
        .iter()
        .filter(|i| i.code == eop::JMP32 | eop::JA)
        .count()
}

/// An IPv6 packet whose `chain` extension headers (8 bytes each) lead to
/// `last`: what `ip6 protochain` walks.
fn ip6_chain(chain: &[u8], last: u8) -> Vec<u8> {
    let mut p = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
    let payload = chain.len() * 8 + 20;
    let first = chain.first().copied().unwrap_or(last);
    p.extend_from_slice(&[
        0x60,
        0,
        0,
        0,
        (payload >> 8) as u8,
        payload as u8,
        first,
        64,
    ]);
    p.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    for (n, _) in chain.iter().enumerate() {
        let next = chain.get(n + 1).copied().unwrap_or(last);
        p.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    p.extend_from_slice(&[
        0, 80, 0x1f, 0x90, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 2, 0xff, 0xff,
    ]);
    p.extend_from_slice(&[0, 0, 0, 0]);
    p
}

/// Packets with 0 to `most` extension headers (around the loop bounds in
/// use), whole and cut short.
fn protochain_packets(most: usize) -> Vec<(Vec<u8>, u32, usize)> {
    let mut out = Vec::new();
    let mut counts = vec![0, 1, 2, 7, 30, 31, 32, 33];
    counts.extend((0..=most).step_by(97));
    for k in [299, 300, 301, 598, 599, 600, 601, 998, 999, 1000, 1001] {
        if k <= most {
            counts.push(k);
        }
    }
    for k in counts {
        // Hop-by-hop, routing and destination options headers.
        let chain: Vec<u8> = (0..k).map(|n| [60, 43, 0][n % 3]).collect();
        for last in [6, 17] {
            let p = ip6_chain(&chain, last);
            let len = p.len() as u32;
            out.push((p[..p.len() - 10].to_vec(), len, k));
            out.push((p, len, k));
        }
    }
    out
}

/// Runs both layouts in the VM on every packet: they agree with each other
/// and, where the loop bound does not cut the walk short, with libpcap.
/// Returns the instruction counts (gotol, islands) and how many different
/// verdicts the packets got.
fn same_verdicts(
    prog: &[Insn],
    opts: Options,
    packets: &[(Vec<u8>, u32, usize)],
) -> (usize, usize, usize) {
    let wide = translate(
        prog,
        &Options {
            gotol: true,
            ..opts.clone()
        },
    )
    .unwrap();
    let isl = translate(
        prog,
        &Options {
            gotol: false,
            ..opts.clone()
        },
    )
    .unwrap();
    assert!(
        isl.insns.len() > 32767,
        "{} instructions: no far jump",
        isl.insns.len()
    );
    assert!(
        gotols(&wide) > 0,
        "no gotol in {} instructions",
        wide.insns.len()
    );
    assert_eq!(gotols(&isl), 0, "gotol in the island layout");
    let a = Filter::load(Engine::Vm, &wide.insns, opts.mode).unwrap();
    let b = Filter::load(Engine::Vm, &isl.insns, opts.mode).unwrap();
    let mut verdicts = std::collections::BTreeSet::new();
    for (n, (data, wirelen, headers)) in packets.iter().enumerate() {
        let want = a.run(data, *wirelen).unwrap();
        let got = b.run(data, *wirelen).unwrap();
        assert_eq!(
            got, want,
            "{:?} packet {n}: islands {got}, gotol {want}",
            opts.mode
        );
        verdicts.insert(got);
        if (*headers as u32) + 2 < opts.max_loop_iterations {
            assert_eq!(
                got,
                libpcap::filter(prog, data, *wirelen),
                "{:?} packet {n}",
                opts.mode
            );
        }
    }
    (wide.insns.len(), isl.insns.len(), verdicts.len())
}

#[test]
fn unrolled_protochain_loops_give_the_same_verdicts_through_islands_as_with_gotol() {
    let prog = libpcap::compile("ip6 protochain 6", libpcap::DLT_EN10MB, 262144).unwrap();
    for (mode, iterations, fast) in [
        (Mode::Skb, 600, false),
        (Mode::Skb, 300, true),
        (Mode::Direct, 1000, true),
        (Mode::Probe, 600, true),
    ] {
        let packets = protochain_packets(iterations as usize + 1);
        let (wide, isl, verdicts) =
            same_verdicts(&prog, options(mode, iterations, fast, true), &packets);
        assert_eq!(verdicts, 2, "{mode:?}: matches and misses");
        println!(
            "ip6 protochain 6, {mode:?}, {iterations} iterations, fast path {fast}: {wide} instructions with gotol, {isl} with islands"
        );
    }
}

#[test]
fn thousands_of_far_jumps_reach_their_targets_through_islands() {
    let prog = far_jump_blocks(12_000);
    let packets: Vec<_> = random_packets(200, 70)
        .into_iter()
        .map(|(p, len)| (p, len, 0))
        .collect();
    for mode in [Mode::Direct, Mode::Skb, Mode::Probe] {
        let (wide, isl, verdicts) = same_verdicts(&prog, options(mode, 32, true, true), &packets);
        // Each match is a different block's return.
        assert!(verdicts > 100, "{mode:?}: {verdicts} different verdicts");
        println!(
            "{} cBPF, {mode:?}: {wide} instructions with gotol, {isl} with islands",
            prog.len()
        );
    }
}

#[test]
fn programs_without_far_jumps_are_the_same_with_and_without_gotol() {
    for expr in [
        "tcp port 443 and tcp[13]&8!=0",
        "ip6 protochain 6",
        "ip6 protochain 17 or ip6 protochain 58",
        "vlan and tcp",
        "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
        "ip[2:2] / (ip[9] - 6) = 1",
        "ip[0] >> (ip[9] & 0x3f) = 0",
        "net 192.168.0.0/16 or net 10.0.0.0/8",
    ] {
        let prog = libpcap::compile(expr, libpcap::DLT_EN10MB, 262144).unwrap();
        for mode in [Mode::Direct, Mode::Skb, Mode::Probe] {
            for fast in [true, false] {
                let a = translate(&prog, &options(mode, 32, fast, true)).unwrap();
                let b = translate(&prog, &options(mode, 32, fast, false)).unwrap();
                assert_eq!(a.insns, b.insns, "`{expr}` {mode:?}");
            }
        }
    }
}

#[test]
fn every_island_jump_fits_in_16_bits_and_lands_inside() {
    let prog = libpcap::compile("ip6 protochain 6", libpcap::DLT_EN10MB, 262144).unwrap();
    let t = translate(&prog, &options(Mode::Direct, 1000, true, false)).unwrap();
    let text = ebpf::disassemble(&t.insns);
    assert!(!text.contains("gotol"));
    for (pc, i) in t.insns.iter().enumerate() {
        let jump = matches!(i.class(), eop::JMP | eop::JMP32)
            && !matches!(i.code & 0xf0, eop::CALL | eop::EXIT);
        if jump {
            let to = pc as i64 + 1 + i64::from(i.off);
            assert!(
                (0..t.insns.len() as i64).contains(&to),
                "jump at {pc} leaves"
            );
        }
    }
}
