use std::path::PathBuf;

use anyhow::Result;
use xcap_bench::filters::{self, Config};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |f: &str| args.iter().any(|a| a == f);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cfg = if has("--quick") { Config { loops: 1 << 12, repeat: 2, samples: 3 } } else { Config::FULL };
    let mut out = String::new();
    if !has("--capture-only") {
        let (reports, bench) = filters::run(cfg, &root.join("c/filters.c"), true, &mut |m| eprintln!("[bench] {m}"))?;
        out += &filters::markdown(&reports, &bench);
    }
    print!("{out}");
    Ok(())
}
