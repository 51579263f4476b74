//! Runs N pseudo-random inputs through each check in the VM, without
//! cargo-fuzz: `cargo run --release -p xcap-fuzzgen --example smoke [N] [target]`.
//! Prints, per target, how many inputs libpcap refused and the cases run.

use std::time::Instant;

use xcap_fuzzgen::{check_cbpf, check_expr, check_parsers};
use xcap_runner::Engine;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(1000, |a| a.parse().expect("N"));
    let only = std::env::args().nth(2);
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for target in ["expr", "cbpf", "parsers"] {
        if only.as_deref().is_some_and(|o| o != target) {
            continue;
        }
        let (mut skipped, mut cases, mut findings, mut known) = (0, 0, 0, 0);
        let mut seen: Vec<String> = Vec::new();
        let t0 = Instant::now();
        for _ in 0..n {
            let len = next() as usize % 200;
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let r = match target {
                "expr" => check_expr(&data, &[Engine::Vm]),
                "cbpf" => check_cbpf(&data, &[Engine::Vm]),
                _ => check_parsers(&data),
            };
            match r {
                Ok(o) => {
                    skipped += o.skipped as usize;
                    cases += o.cases;
                    known += o.known;
                }
                Err(e) => {
                    findings += 1;
                    let sig: String = e
                        .lines()
                        .nth(1)
                        .unwrap_or("")
                        .chars()
                        .map(|c| if c.is_ascii_digit() { 'N' } else { c })
                        .collect();
                    // SMOKE_SAVE=dir: keep the shortest input of each kind.
                    if let Some(dir) = std::env::var_os("SMOKE_SAVE") {
                        let name: String = format!("{target}-{sig}")
                            .chars()
                            .map(|c| {
                                if c.is_ascii_alphanumeric() || c == '-' {
                                    c
                                } else {
                                    '_'
                                }
                            })
                            .collect();
                        let path = std::path::Path::new(&dir).join(name);
                        if std::fs::metadata(&path).map_or(true, |m| m.len() as usize > data.len())
                        {
                            std::fs::write(&path, &data).unwrap();
                        }
                    }
                    if std::env::var_os("SMOKE_VERBOSE").is_some() || !seen.contains(&sig) {
                        println!("--- finding\n{e}");
                        seen.push(sig);
                    }
                }
            }
        }
        println!(
            "{target}: {n} inputs in {:.1?}, {skipped} skipped, {cases} cases, {known} known, {findings} findings",
            t0.elapsed()
        );
    }
}
