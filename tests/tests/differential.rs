//! Differential tests: libpcap's interpreter (`bpf_filter()`, what
//! `tcpdump -r` runs) against our translation, in the user-space VM and in
//! the kernel (BPF_PROG_TEST_RUN, so the real verifier accepts every
//! program; the filter called as a subprogram and inlined into its
//! caller), in all three access modes, over libpcap's own test
//! expressions and tcpdump's capture files.
//!
//! Each test prints how many (expression, packet) cases it compared.
//! `XCAP_DIFF_SAMPLE=N` compares every Nth packet only (for kernels in
//! emulated guests).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use cbpf2ebpf::cbpf::Insn;
use cbpf2ebpf::{libpcap, translate};
use xcap_runner::{Engine, Filter, RunFilter};
use xcap_tests::{
    accept_expressions, compile_distinct, l3_packets, on_two_threads, report, sampled_packets,
    tcpdump_packets, Packet, Variant, EXTRA_EXPRESSIONS, VARIANTS,
};

const SNAPLEN: u32 = 262144;

#[derive(Default)]
struct Tally {
    cases: AtomicUsize,
    too_large: AtomicUsize,
    mismatches: Mutex<Vec<String>>,
}

fn differential(label: &str, dlt: i32, exprs: &[String], packets: Vec<Packet>) {
    assert!(!packets.is_empty(), "{label}: no packets in the corpus");
    // XCAP_DIFF_SAMPLE: every Nth packet, for slow (emulated) kernels.
    let (packets, sampled) = sampled_packets(packets);
    let packets = &packets[..];
    let programs: Vec<(Vec<Insn>, Vec<String>)> = compile_distinct(exprs, dlt, SNAPLEN)
        .into_values()
        .collect();
    assert!(!programs.is_empty(), "{label}: no expression compiled");
    let expr_count: usize = programs.iter().map(|(_, e)| e.len()).sum();

    // libpcap's answers, once per program.
    let expected: Vec<Vec<u32>> = programs
        .iter()
        .map(|(p, _)| {
            packets
                .iter()
                .map(|pk| libpcap::filter(p, &pk.data, pk.wirelen))
                .collect()
        })
        .collect();

    // The kernel twice: the filter called as a subprogram (how `xcap
    // compile` objects and tracing programs run it) and inlined (how live
    // capture loads it).
    for engine in [Engine::Vm, Engine::Kernel, Engine::KernelInlined] {
        for variant in VARIANTS {
            let tally = Tally::default();
            on_two_threads(programs.len(), |_, n| {
                let (prog, names) = &programs[n];
                check_program(
                    engine,
                    variant,
                    prog,
                    &names[0],
                    packets,
                    &expected[n],
                    &tally,
                );
            });
            let mismatches = tally.mismatches.into_inner().unwrap();
            report(&format!(
                "{label}: {engine}/{}: {} cases ({} programs from {expr_count} expressions x {} packets{sampled}), {} mismatches, {} packets over the engine's size limit",
                variant.name,
                tally.cases.load(Ordering::Relaxed),
                programs.len(),
                packets.len(),
                mismatches.len(),
                tally.too_large.load(Ordering::Relaxed),
            ));
            assert!(
                mismatches.is_empty(),
                "{label} {engine}/{}: {} mismatches, first:\n{}",
                variant.name,
                mismatches.len(),
                mismatches
                    .iter()
                    .take(15)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

fn check_program(
    engine: Engine,
    variant: Variant,
    prog: &[Insn],
    expr: &str,
    packets: &[Packet],
    expected: &[u32],
    tally: &Tally,
) {
    let fail = |msg: String| tally.mismatches.lock().unwrap().push(msg);
    let mode = variant.mode;
    let t = match translate(prog, &variant.options()) {
        Ok(t) => t,
        Err(e) => return fail(format!("`{expr}`: translation failed: {e}")),
    };
    let filter = match Filter::load(engine, &t.insns, mode) {
        Ok(f) => f,
        Err(e) => return fail(format!("`{expr}`: load failed: {e}")),
    };
    for (p, &want) in packets.iter().zip(expected) {
        if p.data.len() > filter.max_packet_len() {
            tally.too_large.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        tally.cases.fetch_add(1, Ordering::Relaxed);
        match filter.run(&p.data, p.wirelen) {
            Ok(got) if got == want => {}
            Ok(got) => fail(format!(
                "`{expr}` on {} ({} of {} bytes): libpcap {want}, ours {got}",
                p.origin,
                p.data.len(),
                p.wirelen
            )),
            Err(e) => fail(format!("`{expr}` on {}: run failed: {e}", p.origin)),
        }
    }
}

fn expressions(dlt_name: &str) -> Vec<String> {
    let mut exprs = accept_expressions(dlt_name);
    exprs.extend(EXTRA_EXPRESSIONS.iter().map(|s| s.to_string()));
    exprs
}

/// Every packet also in truncated form (caplen < wire length), as a short
/// snaplen would capture it.
fn with_truncations(packets: Vec<Packet>) -> Vec<Packet> {
    let mut out = packets.clone();
    for (n, p) in packets.iter().enumerate() {
        let cut = [14usize, 34, 54, 60][n % 4];
        if p.data.len() > cut {
            out.push(Packet {
                data: p.data[..cut].to_vec(),
                wirelen: p.wirelen,
                origin: format!("{} cut to {cut}", p.origin),
            });
        }
    }
    out
}

#[test]
fn en10mb() {
    differential(
        "EN10MB",
        libpcap::DLT_EN10MB,
        &expressions("EN10MB"),
        with_truncations(tcpdump_packets(libpcap::DLT_EN10MB)),
    );
}

#[test]
fn raw() {
    differential(
        "RAW",
        libpcap::DLT_RAW,
        &expressions("RAW"),
        with_truncations(l3_packets(None)),
    );
}

#[test]
fn ipv4() {
    differential(
        "IPV4",
        libpcap::DLT_IPV4,
        &expressions("IPV4"),
        with_truncations(l3_packets(Some(4))),
    );
}

#[test]
fn ipv6() {
    differential(
        "IPV6",
        libpcap::DLT_IPV6,
        &expressions("IPV6"),
        with_truncations(l3_packets(Some(6))),
    );
}
