//! The ABI plumbing of both engines, in every mode: the same tiny filters
//! must give the same answers. Kernel tests fail (never skip) when the
//! kernel refuses: run them as root.

mod common;

use common::*;
use xcap_runner::kernel::max_packet_len;
use xcap_runner::{Engine, Filter, Mode, RunFilter};

fn load(engine: Engine, insns: &[cbpf2ebpf::ebpf::Insn], mode: Mode) -> Filter {
    Filter::load(engine, insns, mode)
        .unwrap_or_else(|e| panic!("{engine} {mode:?}: {e}\n{:#?}", e.verifier_log()))
}

fn run(f: &Filter, packet: &[u8], wirelen: u32) -> u32 {
    f.run(packet, wirelen)
        .unwrap_or_else(|e| panic!("{} run: {e}", f.engine()))
}

/// Packet lengths every mode must handle: empty, tiny, typical, the largest
/// the kernel engine takes in that mode.
fn lengths(mode: Mode) -> Vec<usize> {
    vec![0, 1, 13, 14, 60, 1514, max_packet_len(mode)]
}

#[test]
fn returns_wirelen() {
    for engine in Engine::ALL {
        for mode in MODES {
            let f = load(engine, &wirelen(), mode);
            for len in lengths(mode) {
                let p = packet(len);
                for wl in [len as u32, len as u32 + 100, 65535, 262144, u32::MAX] {
                    assert_eq!(run(&f, &p, wl), wl, "{engine} {mode:?} len {len}");
                }
            }
        }
    }
}

#[test]
fn end_minus_start_is_captured_length() {
    for engine in Engine::ALL {
        for mode in MODES {
            let f = load(engine, &caplen(), mode);
            for len in lengths(mode) {
                // Truncated: fewer bytes than the wire length.
                assert_eq!(run(&f, &packet(len), 9000), len as u32, "{engine} {mode:?}");
            }
        }
    }
}

#[test]
fn any_u32_comes_back() {
    for engine in Engine::ALL {
        for mode in MODES {
            for k in [0, 1, 4, 5, 96, 65535, 262144, 0x8000_0000, u32::MAX] {
                let f = load(engine, &constant(k), mode);
                assert_eq!(run(&f, &packet(60), 60), k, "{engine} {mode:?}");
                assert_eq!(run(&f, &[], 0), k, "{engine} {mode:?} empty");
            }
        }
    }
}

#[test]
fn reads_bytes_with_the_mode_load_method() {
    for engine in Engine::ALL {
        for mode in MODES {
            let first = load(engine, &byte_at(mode, 0), mode);
            let fourteenth = load(engine, &byte_at(mode, 13), mode);
            for len in lengths(mode) {
                let p = packet(len);
                let want = |k: usize| if k < len { p[k] as u32 } else { NONE };
                assert_eq!(
                    run(&first, &p, len as u32),
                    want(0),
                    "{engine} {mode:?} len {len}"
                );
                assert_eq!(
                    run(&fourteenth, &p, len as u32),
                    want(13),
                    "{engine} {mode:?} len {len}"
                );
                // Truncated capture: the wire length does not make more
                // bytes readable.
                assert_eq!(
                    run(&fourteenth, &p, 1514),
                    want(13),
                    "{engine} {mode:?} len {len}"
                );
            }
        }
    }
}

#[test]
fn last_byte_of_the_largest_packet() {
    for engine in Engine::ALL {
        for mode in MODES {
            let max = max_packet_len(mode);
            // ldx offsets are 16-bit: Probe's 65519 does not fit; read near it.
            let k = max.min(i16::MAX as usize + 1) - 1;
            let f = load(engine, &byte_at(mode, k as i16), mode);
            let p = packet(max);
            assert_eq!(run(&f, &p, max as u32), p[k] as u32, "{engine} {mode:?}");
            assert_eq!(
                run(&f, &p[..k], max as u32),
                NONE,
                "{engine} {mode:?} one short"
            );
        }
    }
}

#[test]
fn skb_load_bytes_fails_past_the_end() {
    // The helper's own check (the kernel's skb->len, the VM's packet) agrees
    // with `end`: reading at `end` fails with -EFAULT.
    for engine in Engine::ALL {
        let f = load(engine, &skb_load_result(60), Mode::Skb);
        assert_eq!(run(&f, &packet(60), 60), -14i32 as u32, "{engine}");
        assert_eq!(run(&f, &packet(61), 61), 0, "{engine}");
    }
}
