//! `smoke IFACE xdp|tc SECONDS EXPR`: prints what a capture sees (development aid).
use std::time::{Duration, Instant};
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let cfg = capture::Config {
        interfaces: vec![a[1].clone()],
        hook: if a[2] == "xdp" {
            capture::HookKind::Xdp
        } else {
            capture::HookKind::Tc
        },
        direction: if a[2] == "xdp" {
            capture::DirectionFilter::In
        } else {
            capture::DirectionFilter::InOut
        },
        expression: a[4..].join(" "),
        ..Default::default()
    };
    let mut cap = match capture::Capture::start(&cfg) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1)
        }
    };
    eprintln!("attached: {:?}", cap.interfaces());
    let end = Instant::now() + Duration::from_secs(a[3].parse().unwrap());
    let mut n = 0;
    loop {
        if Instant::now() > end {
            cap.detach();
        }
        match cap.recv_timeout(Duration::from_millis(100)) {
            Ok(b) => {
                for p in b.packets {
                    n += 1;
                    println!(
                        "{:?} {:?} len {} cap {} cpu {} q {} vlan {:?}",
                        p.hook,
                        p.direction,
                        p.wirelen,
                        p.data.len(),
                        p.cpu,
                        p.queue,
                        p.vlan
                    );
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    eprintln!("captured {n}, stats {:?}", cap.stats());
}
