//! Deterministic replay of the committed fuzz corpus (`fuzz/corpus/<target>/`,
//! seeds and regressions) under plain `cargo test`, without cargo-fuzz:
//! every `expr` and `cbpf` entry in the user-space VM *and* in the kernel
//! (BPF_PROG_TEST_RUN: the verifier must accept every translation and the
//! results must match libpcap's), every `parsers` entry through the parsers
//! and the injector. Without root the kernel stage fails: it never skips.

use std::path::PathBuf;

use xcap_fuzzgen::{check_cbpf, check_expr, check_parsers, Outcome};
use xcap_runner::Engine;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: empty corpus", dir.display());
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

fn replay(target: &str, check: impl Fn(&[u8]) -> Result<Outcome, String>) {
    let entries = corpus(target);
    let mut total = Outcome::default();
    let mut skipped = 0;
    let mut findings = Vec::new();
    for (name, data) in &entries {
        match check(data) {
            Ok(o) => {
                skipped += o.skipped as usize;
                total.cases += o.cases;
                total.too_large += o.too_large;
                total.endless += o.endless;
                total.beyond_loop_bound += o.beyond_loop_bound;
            }
            Err(report) => findings.push(format!("== {target}/{name}\n{report}")),
        }
    }
    println!(
        "{target}: {} entries ({skipped} skipped by libpcap), {} cases, {} packets where libpcap never returns (0 expected), {} past the model's bound, {} packets over an engine's size limit, {} findings",
        entries.len(),
        total.cases,
        total.endless,
        total.beyond_loop_bound,
        total.too_large,
        findings.len()
    );
    assert_eq!(
        total.beyond_loop_bound, 0,
        "{target}: cases the model gave up on"
    );
    if target == "expr" {
        // regress-libpcap-protochain-ah-loop: an AH header that leads back
        // to itself.
        assert!(total.endless > 0, "the AH loop regression is not replayed");
    }
    assert!(
        findings.is_empty(),
        "{} findings:\n{}",
        findings.len(),
        findings.join("\n\n")
    );
}

/// Every engine: the VM, the kernel with the filter called and inlined.
/// Not root means a refused load, which fails the replay: kernel tests
/// never skip.
fn engines() -> Vec<Engine> {
    vec![Engine::Vm, Engine::Kernel, Engine::KernelInlined]
}

#[test]
fn replay_expr() {
    let engines = engines();
    replay("expr", |d| check_expr(d, &engines));
}

#[test]
fn replay_cbpf() {
    let engines = engines();
    replay("cbpf", |d| check_cbpf(d, &engines));
}

#[test]
fn replay_parsers() {
    replay("parsers", check_parsers);
}
