//! `ip6 protochain 6` in its loop forms, measured as the filter benchmark
//! measures (bench/src/filters.rs: `bpf_loop` harnesses, paired against an
//! empty filter): eBPF size, verified instructions and load time, JIT
//! size, ns per call on IPv6 packets with 1, 8 and 64 hop-by-hop headers
//! before TCP (matching) and UDP (not matching). Run as root:
//! `cargo run --release -p xcap-bench --example protochain [direct|skb|probe]...`.

use std::time::Instant;

use cbpf2ebpf::{libpcap, translate, Hook, LoopForm, Mode, Options};
use xcap_bench::filters::{Bench, Config};
use xcap_bench::harness::{self, Env};

fn chain(hops: usize, last: u8) -> Vec<u8> {
    let mut f = vec![
        2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60, 0, 0, 0,
    ];
    f.extend_from_slice(&((hops * 8 + 20) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 64]);
    f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    for h in 0..hops {
        let next = if h + 1 == hops { last } else { 0 };
        f.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    f.resize(f.len() + 20, 0);
    f
}

fn main() -> anyhow::Result<()> {
    let modes: Vec<String> = std::env::args().skip(1).collect();
    let modes: Vec<&str> = if modes.is_empty() {
        vec!["direct", "skb"]
    } else {
        modes.iter().map(String::as_str).collect()
    };
    let prog = libpcap::compile("ip6 protochain 6", libpcap::DLT_EN10MB, 262144)?;
    let forms: [(&str, LoopForm, u32, u32); 6] = [
        ("unrolled 32 (before)", LoopForm::Unrolled, 0, 32),
        ("unrolled 64", LoopForm::Unrolled, 0, 64),
        ("callback, 0 unrolled", LoopForm::Callback, 0, 1 << 23),
        ("callback, 2 unrolled", LoopForm::Callback, 2, 1 << 23),
        ("callback, 4 unrolled", LoopForm::Callback, 4, 1 << 23),
        ("callback, 8 unrolled", LoopForm::Callback, 8, 1 << 23),
    ];
    let cfg = Config {
        loops: 4096,
        repeat: 4,
        samples: 9,
    };
    let mut bench = Bench::new(cfg);
    println!("| mode | form | eBPF insns (filter + callback) | verified insns | load ms | JIT bytes | ns 1 hdr (match / not) | ns 8 hdrs | ns 64 hdrs |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for mode in modes {
        let (m, hook, env) = match mode {
            "direct" => (Mode::Direct, Hook::Xdp, Env::Xdp),
            "skb" => (Mode::Skb, Hook::TcIngress, Env::Skb),
            _ => (Mode::Probe, Hook::None, Env::Syscall),
        };
        for &(name, loops, unrolled, max) in &forms {
            let t = translate(
                &prog,
                &Options {
                    mode: m,
                    hook,
                    loops,
                    unrolled_loop_passes: unrolled,
                    max_loop_iterations: max,
                    ..Options::default()
                },
            )?;
            let size = match t.callback {
                Some(c) => format!("{} + {}", c, t.insns.len() - c),
                None => format!("{}", t.insns.len()),
            };
            // Load time: the best of 5 loads of the harness called once.
            let once = harness::build(env, &t.insns, None);
            let mut best = f64::MAX;
            for _ in 0..5 {
                let start = Instant::now();
                let l = harness::load(env, &once)?;
                best = best.min(start.elapsed().as_secs_f64() * 1e3);
                drop(l);
            }
            let mut cells = Vec::new();
            let mut verified = None;
            for hops in [1usize, 8, 64] {
                let (yes, no) = (chain(hops, 6), chain(hops, 17));
                let want = [
                    libpcap::filter(&prog, &yes, yes.len() as u32) != 0,
                    libpcap::filter(&prog, &no, no.len() as u32) != 0,
                ];
                match bench.measure(env, &t.insns, [&yes, &no], want) {
                    Ok(row) => {
                        let ns = row.ns.unwrap();
                        verified = row.verified;
                        cells.push(format!("{:.1} / {:.1}", ns[0], ns[1]));
                    }
                    Err(e) => cells.push(format!("({e})")),
                }
            }
            let funcs = xcap_bench::sys::jited_func_lens(&harness::load(env, &once)?.fd)?;
            let jit = funcs[2..]
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" + ");
            println!(
                "| {mode} | {name} | {size} | {} | {best:.2} | {jit} | {} |",
                verified.map_or("-".into(), |v| v.to_string()),
                cells.join(" | ")
            );
        }
    }
    Ok(())
}
