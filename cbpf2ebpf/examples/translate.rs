//! Prints the eBPF for a tcpdump expression:
//! `cargo run -p cbpf2ebpf --example translate -- 'tcp port 443' [direct|skb|probe]`
use cbpf2ebpf::{ebpf, libpcap, translate, Hook, Mode, Options};

fn main() {
    let mut args = std::env::args().skip(1);
    let expr = args.next().unwrap_or_else(|| "tcp port 443".into());
    let mode = match args.next().as_deref() {
        Some("skb") => Mode::Skb,
        Some("probe") => Mode::Probe,
        _ => Mode::Direct,
    };
    let cbpf = match libpcap::compile(&expr, libpcap::DLT_EN10MB, 262144) {
        Ok(p) => p,
        Err(e) => return eprintln!("{e}"),
    };
    match translate(&cbpf, &Options { mode, hook: Hook::Offline, ..Options::default() }) {
        Ok(t) => {
            print!("{}", ebpf::disassemble(&t.insns));
            println!("{:?}", t.stats);
        }
        Err(e) => eprintln!("{e}"),
    }
}
