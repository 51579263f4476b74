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
    // XCAP_LIVE=IFACE compiles as for a live capture on that interface.
    let compiled = match std::env::var("XCAP_LIVE") {
        Ok(iface) => libpcap::compile_live(&expr, &iface, 262144),
        Err(_) => libpcap::compile(&expr, libpcap::DLT_EN10MB, 262144),
    };
    let hook = if std::env::var_os("XCAP_LIVE").is_some() {
        Hook::TcIngress
    } else {
        Hook::Offline
    };
    let cbpf = match compiled {
        Ok(p) => p,
        Err(e) => return eprintln!("{e}"),
    };
    match translate(
        &cbpf,
        &Options {
            mode,
            hook,
            ..Options::default()
        },
    ) {
        Ok(t) => {
            print!("{}", ebpf::disassemble(&t.insns));
            println!("{:?}", t.stats);
        }
        Err(e) => eprintln!("{e}"),
    }
}
