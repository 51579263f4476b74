//! Reruns one case by hand: `cargo run -p xcap-fuzzgen --example repro --
//! (-e EXPR [-l LINKTYPE] | -c DDD) [PACKET_HEX [WIRELEN]]`, where DDD is a
//! `tcpdump -ddd` listing with commas for newlines. Prints libpcap's result
//! and each mode/engine's, or why it failed. `-f FILE` replays a corpus
//! file instead (`-f expr:path` / `-f cbpf:path`), VM and kernel.

use cbpf2ebpf::{cbpf::parse, libpcap, translate, Hook, Options};
use xcap_fuzzgen::{check_cbpf, check_expr, MODES};
use xcap_runner::{Engine, Filter, RunFilter};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args[0] == "-f" {
        let (target, path) = args[1].split_once(':').expect("target:path");
        let data = std::fs::read(path).unwrap();
        if target == "expr" {
            let c = xcap_fuzzgen::expr::Case::generate(&mut xcap_fuzzgen::Src::new(&data));
            eprintln!(
                "expression `{}` linktype {} snaplen {}",
                c.expr, c.linktype, c.snaplen
            );
            for p in &c.packets {
                eprintln!(
                    "packet {} (wirelen {})",
                    xcap_fuzzgen::hex(&p.data).replace('\n', ""),
                    p.wirelen
                );
            }
        }
        let engines = [Engine::Vm, Engine::Kernel];
        let r = if target == "expr" {
            check_expr(&data, &engines)
        } else {
            check_cbpf(&data, &engines)
        };
        match r {
            Ok(o) => println!("ok: {o:?}"),
            Err(e) => println!("FINDING\n{e}"),
        }
        return;
    }
    if args[0] == "-m" {
        return minimize(
            &args[1],
            &args[2],
            args.get(3).map(String::as_str).unwrap_or(""),
        );
    }
    let mut rest = &args[..];
    let prog = match rest[0].as_str() {
        "-e" => {
            let mut lt = libpcap::DLT_EN10MB;
            let expr = rest[1].clone();
            rest = &rest[2..];
            if rest.first().map(String::as_str) == Some("-l") {
                lt = rest[1].parse().unwrap();
                rest = &rest[2..];
            }
            libpcap::compile(&expr, lt, libpcap::DEFAULT_SNAPLEN).unwrap()
        }
        _ => {
            let p = parse::parse_auto(&rest[1].replace(',', "\n")).unwrap();
            rest = &rest[2..];
            p
        }
    };
    print!("{}", cbpf2ebpf::cbpf::dump::dump_d(&prog));
    let packet = rest.first().map(|h| unhex(h)).unwrap_or_default();
    let wirelen = rest
        .get(1)
        .map_or(packet.len() as u32, |w| w.parse().unwrap());
    println!("libpcap: {}", libpcap::filter(&prog, &packet, wirelen));
    for mode in MODES {
        let t = match translate(
            &prog,
            &Options {
                mode,
                hook: Hook::Offline,
                ..Options::default()
            },
        ) {
            Ok(t) => t,
            Err(e) => {
                println!("{mode:?}: translation failed: {e}");
                continue;
            }
        };
        for engine in [Engine::Vm, Engine::Kernel] {
            let r = Filter::load(engine, &t.insns, mode).and_then(|f| f.run(&packet, wirelen));
            match r {
                Ok(v) => println!("{engine}/{mode:?}: {v}"),
                Err(e) => println!("{engine}/{mode:?}: {e}"),
            }
        }
    }
}

/// Everything the engines say about `prog` on `packet`, one line each.
fn outcome(prog: &[cbpf2ebpf::cbpf::Insn], packet: &[u8], wirelen: u32) -> String {
    let mut out = String::new();
    let want = libpcap::filter(prog, packet, wirelen);
    for mode in MODES {
        match translate(
            prog,
            &Options {
                mode,
                hook: Hook::Offline,
                ..Options::default()
            },
        ) {
            Err(e) => out += &format!("{mode:?}: translation failed: {e}\n"),
            Ok(t) => match Filter::load(Engine::Vm, &t.insns, mode)
                .and_then(|f| f.run(packet, wirelen))
            {
                Ok(v) if v == want => {}
                Ok(v) => out += &format!("{mode:?}: mismatch libpcap {want} ours {v}\n"),
                Err(e) => out += &format!("{mode:?}: {e}\n"),
            },
        }
    }
    out
}

/// Greedy cBPF minimisation keeping `sig` in the outcome: delete
/// instructions (re-aiming jumps), then simplify the rest to `ld #0`.
fn minimize(ddd: &str, packet_hex: &str, sig: &str) {
    use cbpf2ebpf::cbpf::{op, Insn};
    let packet = unhex(packet_hex);
    let wirelen = packet.len() as u32;
    let mut prog = parse::parse_auto(&ddd.replace(',', "\n")).unwrap();
    let fails = |p: &[Insn]| {
        libpcap::try_filter(p, &packet, wirelen).is_ok() && {
            let o = outcome(p, &packet, wirelen);
            !o.is_empty() && o.contains(sig)
        }
    };
    assert!(
        fails(&prog),
        "does not fail: {}",
        outcome(&prog, &packet, wirelen)
    );
    loop {
        let mut changed = false;
        let mut i = 0;
        while i < prog.len() {
            // Delete i.
            let mut q = Vec::new();
            let mut ok = true;
            for (pc, insn) in prog.iter().enumerate() {
                if pc == i {
                    continue;
                }
                let np = |t: i64| if t > i as i64 { t - 1 } else { t };
                let newpc = np(pc as i64);
                let mut n = *insn;
                if insn.class() == op::JMP {
                    if insn.op() == op::JA {
                        let t = pc as i64 + 1 + insn.k as i32 as i64;
                        n.k = (np(t) - newpc - 1) as i32 as u32;
                    } else {
                        let jt = np(pc as i64 + 1 + insn.jt as i64) - newpc - 1;
                        let jf = np(pc as i64 + 1 + insn.jf as i64) - newpc - 1;
                        if !(0..256).contains(&jt) || !(0..256).contains(&jf) {
                            ok = false;
                        }
                        n.jt = jt as u8;
                        n.jf = jf as u8;
                    }
                }
                q.push(n);
            }
            if ok && !q.is_empty() && fails(&q) {
                prog = q;
                changed = true;
                continue;
            }
            // Simplify i.
            for simpler in [
                Insn::new(op::LD | op::IMM, 0, 0, 0),
                Insn::new(op::RET | op::K, 0, 0, 0),
            ] {
                if prog[i] != simpler {
                    let mut q = prog.clone();
                    q[i] = simpler;
                    if fails(&q) {
                        prog = q;
                        changed = true;
                        break;
                    }
                }
            }
            i += 1;
        }
        if !changed {
            break;
        }
    }
    print!("{}", cbpf2ebpf::cbpf::dump::dump_d(&prog));
    println!(
        "-ddd: {}",
        cbpf2ebpf::cbpf::dump::dump_ddd(&prog)
            .trim_end()
            .replace('\n', ",")
    );
    print!("{}", outcome(&prog, &packet, wirelen));
}
