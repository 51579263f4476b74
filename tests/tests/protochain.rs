//! `protochain` exactly as libpcap's interpreter (`bpf_filter()`, what
//! `tcpdump -r` runs), on generated packets whose chains of extension
//! headers are longer than any unrolling: IPv6 with 0 to several hundred
//! headers of every kind the loop walks (hop-by-hop, routing, fragment,
//! destination options, AH) ending in TCP, UDP, ICMPv6, no next header or
//! something else, IPv4 with AH chains, each whole and cut at a random
//! point. Every engine (the VM, the kernel with the filter called and
//! inlined) in every access mode.
//!
//! Where libpcap never returns (an AH header that leads back to itself),
//! the step model (`xcap_fuzzgen::bounded`) says so, libpcap is not asked,
//! and xcap must return 0.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use cbpf2ebpf::cbpf::Insn;
use cbpf2ebpf::{libpcap, translate, LoopForm, Options};
use xcap_fuzzgen::bounded::{self, Run};
use xcap_runner::{Engine, Filter, RunFilter};
use xcap_tests::chains::{self, Captured, Ext, Rng};
use xcap_tests::{on_two_threads, report, sampled_packets, Variant, VARIANTS};

const SNAPLEN: u32 = 262144;

/// The expressions compared, on Ethernet and raw IP.
const EXPRESSIONS: &[&str] = &[
    "ip6 protochain 6",
    "ip6 protochain 17",
    "ip6 protochain 58",
    "protochain 6",
    "protochain 17",
    "ip protochain 6",
    "ip protochain 17",
    "ip6 protochain 6 or ip6 protochain 17",
];

/// The model gives up past this many backward jumps (no packet here needs
/// a tenth of it).
const MODEL_BOUND: u32 = 1 << 20;

/// What libpcap does on each packet: `Some(result)`, or `None` when it
/// never returns (xcap must return 0 then).
fn expected(prog: &[Insn], packets: &[Captured]) -> Vec<Option<u32>> {
    packets
        .iter()
        .map(
            |p| match bounded::model(prog, &p.data, p.wirelen, MODEL_BOUND) {
                Run::Ends(v) => {
                    let lp = libpcap::filter(prog, &p.data, p.wirelen);
                    assert_eq!(lp, v, "the model disagrees with libpcap on {}", p.what);
                    Some(v)
                }
                Run::Endless => None,
                Run::TooLong => panic!("{}: past the model's bound", p.what),
            },
        )
        .collect()
}

/// IPv6 and IPv4 packets: chain lengths from 0 to `max_chain`, AH or not.
fn packets(seed: u64, ethernet: bool, count: usize, max_chain: usize) -> Vec<Captured> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for n in 0..count {
        let len = match n % 4 {
            0 => rng.below(9) as usize,
            1 => rng.below(65) as usize,
            _ => rng.below(max_chain as u64 + 1) as usize,
        };
        let ah = rng.below(3) == 0;
        let mut chain = chains::random_chain(&mut rng, len, ah);
        // Most packets fit the kernel's direct and skb test runs (3,504
        // bytes): their headers as short as can be.
        let size: usize = chain.iter().map(|e| e.size()).sum();
        if size > 3_300 && n % 3 != 0 {
            chain
                .iter_mut()
                .for_each(|e| e.len = u8::from(e.kind == 51));
            chain.truncate(3_300 / 8);
        }
        let last = rng.pick(&chains::LAST);
        let v4 = rng.below(5) == 0;
        let p = if v4 {
            // IPv4's loop walks AH only.
            let chain: Vec<Ext> = chain.into_iter().map(|e| Ext { kind: 51, ..e }).collect();
            chains::ipv4(ethernet, &chain, last, rng.below(40) as usize)
        } else {
            chains::ipv6(ethernet, &chain, last, rng.below(40) as usize)
        };
        let what = format!(
            "{} packet {n} (seed {seed}): {len} headers, {} bytes",
            if v4 { "IPv4" } else { "IPv6" },
            p.len()
        );
        out.extend(chains::with_cut(&mut rng, p, what));
    }
    out
}

/// A loaded filter, or why it could not be.
type Loaded = Result<Arc<Filter>, String>;

/// Each (link type, expression, variant, engine) translated and loaded
/// once for the whole test binary: the Ethernet tests share their
/// programs, and verifying the skb variant's callback form is most of
/// what these tests cost in an emulated kernel (a second each on the
/// host's 6.18 for the largest, a hundred times that under emulation).
fn loaded(dlt: i32, expr: &'static str, prog: &[Insn], variant: Variant, engine: Engine) -> Loaded {
    type Cells = HashMap<(i32, &'static str, &'static str, Engine), Arc<OnceLock<Loaded>>>;
    static CELLS: OnceLock<Mutex<Cells>> = OnceLock::new();
    let cell = CELLS
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry((dlt, expr, variant.name, engine))
        .or_default()
        .clone();
    // Loaded outside the map's lock, so the two workers verify at once.
    cell.get_or_init(|| {
        let t = translate(prog, &variant.options()).map_err(|e| format!("translation: {e}"))?;
        let f = Filter::load(engine, &t.insns, variant.mode).map_err(|e| format!("load: {e}"))?;
        Ok(Arc::new(f))
    })
    .clone()
}

#[derive(Default)]
struct Tally {
    cases: AtomicUsize,
    endless: AtomicUsize,
    too_large: AtomicUsize,
    mismatches: Mutex<Vec<String>>,
}

fn compare(label: &str, dlt: i32, packets: Vec<Captured>, engines: &[Engine]) {
    // XCAP_DIFF_SAMPLE: every Nth packet, for emulated kernels.
    let (packets, sampled) = sampled_packets(packets);
    let packets = &packets[..];
    let programs: Vec<(&'static str, Vec<Insn>)> = EXPRESSIONS
        .iter()
        .map(|e| (*e, libpcap::compile(e, dlt, SNAPLEN).unwrap()))
        .collect();
    let expected: Vec<Vec<Option<u32>>> =
        programs.iter().map(|(_, p)| expected(p, packets)).collect();
    for &engine in engines {
        for variant in VARIANTS {
            let tally = Tally::default();
            on_two_threads(programs.len(), |_, n| {
                let (expr, prog) = &programs[n];
                let fail = |m: String| tally.mismatches.lock().unwrap().push(m);
                let f = match loaded(dlt, expr, prog, variant, engine) {
                    Ok(f) => f,
                    Err(e) => return fail(format!("`{expr}`: {e}")),
                };
                for (p, want) in packets.iter().zip(&expected[n]) {
                    if p.data.len() > f.max_packet_len() {
                        tally.too_large.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    tally.cases.fetch_add(1, Ordering::Relaxed);
                    if want.is_none() {
                        tally.endless.fetch_add(1, Ordering::Relaxed);
                    }
                    let want = want.unwrap_or(0);
                    match f.run(&p.data, p.wirelen) {
                        Ok(got) if got == want => {}
                        Ok(got) => fail(format!(
                            "`{expr}` on {}: libpcap {want}, ours {got}",
                            p.what
                        )),
                        Err(e) => fail(format!("`{expr}` on {}: {e}", p.what)),
                    }
                }
            });
            let mismatches = tally.mismatches.into_inner().unwrap();
            report(&format!(
                "protochain {label}: {engine}/{}: {} cases ({} expressions x {} packets{sampled}, {} where libpcap never returns), {} mismatches, {} packets over the engine's size limit",
                variant.name,
                tally.cases.load(Ordering::Relaxed),
                programs.len(),
                packets.len(),
                tally.endless.load(Ordering::Relaxed),
                mismatches.len(),
                tally.too_large.load(Ordering::Relaxed),
            ));
            assert!(
                mismatches.is_empty(),
                "protochain {label} {engine}/{}: {} mismatches, first:\n{}",
                variant.name,
                mismatches.len(),
                mismatches
                    .iter()
                    .take(10)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

#[test]
fn filter_protochain_on_long_chains_equals_libpcap_in_every_engine_ethernet() {
    let packets = packets(1, true, 400, 400);
    compare("EN10MB", libpcap::DLT_EN10MB, packets, &Engine::ALL);
}

#[test]
fn filter_protochain_on_long_chains_equals_libpcap_in_every_engine_raw() {
    let packets = packets(2, false, 300, 300);
    compare("RAW", libpcap::DLT_RAW, packets, &Engine::ALL);
}

/// Packets up to 64 KiB, the largest a hook hands a filter (XDP
/// multi-buffer frames, TC GSO skbs, the snap length): thousands of
/// headers. The VM takes any size, the kernel's probe mode up to 65,519
/// bytes.
#[test]
fn filter_protochain_on_64k_chains_equals_libpcap() {
    let mut rng = Rng::new(3);
    let mut packets = Vec::new();
    for n in 0..6 {
        // 8 bytes a header: 65,535 - 14 - 40 - 20 leaves room for 8,182.
        let headers = [8_100, 8_182, 4_000, 8_000, 1_000, 8_182][n];
        let mut chain = chains::random_chain(&mut rng, headers, n % 2 == 1);
        // Length 0: 8 bytes for every kind, AH's (0 + 2) * 4 included.
        chain.iter_mut().for_each(|e| e.len = 0);
        let last = chains::LAST[n % 4];
        let p = chains::ipv6(true, &chain, last, 0);
        let p = if p.len() > 65535 {
            p[..65535].to_vec()
        } else {
            p
        };
        let what = format!("64 KiB packet {n}: {headers} headers, {} bytes", p.len());
        packets.extend(chains::with_cut(&mut rng, p, what));
    }
    compare("64 KiB", libpcap::DLT_EN10MB, packets, &Engine::ALL);
}

/// An AH header whose length sends libpcap's loop back to itself (the
/// fuzzer's find: `fuzz/corpus/expr/regress-libpcap-protochain-ah-loop`):
/// libpcap's interpreter never returns; xcap returns 0 in every engine,
/// and finds out in a few passes.
#[test]
fn filter_protochain_returns_0_where_libpcap_loops_forever() {
    // IPv6 whose first header is AH at offset 40 of the network header,
    // with length 8: libpcap sets X = (8 + 2) * 4 = 40, the same header.
    let chain = [Ext { kind: 51, len: 8 }];
    let mut p = chains::ipv6(true, &chain, 51, 0);
    p[14 + 40] = 51; // the AH's next header: AH again
    let prog = libpcap::compile("ip6 protochain 6", libpcap::DLT_EN10MB, SNAPLEN).unwrap();
    assert_eq!(
        bounded::model(&prog, &p, p.len() as u32, 1000),
        Run::Endless
    );
    for variant in VARIANTS {
        let t = translate(&prog, &variant.options()).unwrap();
        for engine in Engine::ALL {
            let f = Filter::load(engine, &t.insns, variant.mode).unwrap();
            assert_eq!(
                f.run(&p, p.len() as u32).unwrap(),
                0,
                "{engine}/{}",
                variant.name
            );
        }
    }
    // The VM counts its steps: cycle detection stops the loop within a
    // few dozen passes, not at bpf_loop's 2^23.
    let t = translate(&prog, &Options::default()).unwrap();
    let vm = xcap_runner::VmFilter::new(&t.insns, cbpf2ebpf::Mode::Direct).unwrap();
    let (got, steps) = vm.run_counted(&p, p.len() as u32).unwrap();
    assert_eq!(got, 0);
    assert!(steps < 5_000, "{steps} instructions");
}

/// `max_loop_iterations` bounds the passes in the callback form too: a
/// chain longer than unrolled passes plus the bound returns 0, and the
/// default bound decides nothing.
#[test]
fn filter_loop_bound_returns_0_past_it_and_the_default_decides_nothing() {
    let prog = libpcap::compile("ip6 protochain 6", libpcap::DLT_EN10MB, SNAPLEN).unwrap();
    let chain = vec![Ext { kind: 0, len: 0 }; 40];
    let p = chains::ipv6(true, &chain, 6, 0);
    assert_eq!(libpcap::filter(&prog, &p, p.len() as u32), SNAPLEN);
    for (max, want) in [
        (2, 0),
        (40, SNAPLEN),
        (cbpf2ebpf::DEFAULT_LOOP_ITERATIONS, SNAPLEN),
    ] {
        let opts = Options {
            max_loop_iterations: max,
            unrolled_loop_passes: 0,
            ..Options::default()
        };
        let t = translate(&prog, &opts).unwrap();
        for engine in Engine::ALL {
            let f = Filter::load(engine, &t.insns, cbpf2ebpf::Mode::Direct).unwrap();
            assert_eq!(
                f.run(&p, p.len() as u32).unwrap(),
                want,
                "{engine}, bound {max}"
            );
        }
    }
    // The unrolled form: 32 passes, then 0 where libpcap matches.
    let opts = Options {
        loops: LoopForm::Unrolled,
        max_loop_iterations: 32,
        ..Options::default()
    };
    let t = translate(&prog, &opts).unwrap();
    assert_eq!(t.callback, None);
    let f = Filter::load(Engine::Vm, &t.insns, cbpf2ebpf::Mode::Direct).unwrap();
    assert_eq!(f.run(&p, p.len() as u32).unwrap(), 0);
}
