//! Loads a translated expression in the kernel and prints the verifier's
//! verdict (debugging aid): `cargo run -p xcap-tests --example verify -- EXPR [direct|skb|probe]`
use cbpf2ebpf::{libpcap, translate, Hook, Mode, Options};
use xcap_runner::KernelFilter;

fn main() {
    let mut args = std::env::args().skip(1);
    let expr = args.next().unwrap_or_default();
    let mode = match args.next().as_deref() {
        Some("skb") => Mode::Skb,
        Some("probe") => Mode::Probe,
        _ => Mode::Direct,
    };
    let prog = libpcap::compile(&expr, libpcap::DLT_EN10MB, 262144).expect("compile");
    let t = translate(
        &prog,
        &Options {
            mode,
            hook: Hook::Offline,
            ..Options::default()
        },
    )
    .expect("translate");
    match KernelFilter::load(&t.insns, mode) {
        Ok(f) => println!(
            "accepted: {} insns, verified {:?}",
            t.insns.len(),
            f.verified_insns()
        ),
        Err(e) => {
            println!("{e}");
            for l in e.verifier_log().unwrap_or_default() {
                println!("{l}");
            }
        }
    }
}
