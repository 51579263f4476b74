//! Writes the seed corpus, `fuzz/corpus/<target>/seed-NNN`: small inputs
//! from a fixed xorshift stream, so the seeds are reproducible. Regression
//! files (`regress-*`) sit next to them and are never touched.
//!
//! `cargo run -p xcap-fuzzgen --example seed_corpus [N]` (default 40 a
//! target). The `parsers` seeds also embed the BPF objects given in
//! XCAP_SEED_ELF (colon-separated paths), prefixed with the ELF selector.

use std::path::PathBuf;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(40, |a| a.parse().expect("N"));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (target, max_len) in [("expr", 96usize), ("cbpf", 128), ("parsers", 64)] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..n {
            let len = 8 + next() as usize % max_len;
            let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if target == "parsers" {
                // Spread the seeds over the four input kinds.
                data[0] = (i % 4) as u8;
            }
            std::fs::write(dir.join(format!("seed-{i:03}")), &data).unwrap();
        }
    }
    if let Ok(paths) = std::env::var("XCAP_SEED_ELF") {
        for (i, p) in paths.split(':').filter(|p| !p.is_empty()).enumerate() {
            let mut data = vec![2u8];
            data.extend(std::fs::read(p).unwrap());
            std::fs::write(root.join("parsers").join(format!("seed-elf-{i}")), data).unwrap();
        }
    }
}
