//! `cbpf::dump` against libpcap: every corpus expression's listing against
//! libpcap's own `bpf_image()`, every opcode against it, and a few
//! expressions against the real `tcpdump -d/-dd/-ddd`.
#![cfg(feature = "libpcap")]

use std::process::Command;

use cbpf2ebpf::cbpf::{dump, parse, Insn};
use cbpf2ebpf::libpcap;
use xcap_tests::{corpus_dir, tcpdump_path};

fn assert_same_as_bpf_image(prog: &[Insn], what: &str) {
    let ours = dump::dump_d(prog);
    for (n, (line, insn)) in ours.lines().zip(prog).enumerate() {
        assert_eq!(
            line,
            libpcap::image(insn, n),
            "{what}: instruction {n} {insn:?}"
        );
    }
    assert_eq!(ours.lines().count(), prog.len(), "{what}");
}

/// Every expression of libpcap's accept tests that this libpcap compiles
/// for its DLT, optimised and not.
#[test]
fn corpus_listings_match_bpf_image() {
    let path = corpus_dir().join("libpcap-accept.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let corpus: serde_json::Value = serde_json::from_str(&text).unwrap();
    let blocks = corpus["blocks"].as_array().unwrap();
    let (mut compared, mut programs, mut insns, mut not_compiled, mut skipped) = (0, 0, 0, 0, 0);
    for block in blocks {
        // `skip_on_this_host` is non-empty when the block needs /etc/hosts,
        // ethers or networks entries, or another OS; those with an empty
        // one (Linux-only, little-endian-only) apply here.
        let skipped_here = block["skip_on_this_host"]
            .as_str()
            .is_some_and(|s| !s.is_empty());
        if skipped_here || block.get("special").is_some() {
            skipped += 1;
            continue;
        }
        let dlt_name = block["DLT"].as_str().unwrap();
        let Some(linktype) = libpcap::linktype_from_name(dlt_name) else {
            not_compiled += block["exprs"].as_array().unwrap().len();
            continue;
        };
        let snaplen = block["snaplen"]
            .as_u64()
            .map_or(libpcap::DEFAULT_SNAPLEN, |s| s as u32);
        let netmask = block["netmask"]
            .as_str()
            .map_or(libpcap::NETMASK_UNKNOWN, |m| {
                u32::from(m.parse::<std::net::Ipv4Addr>().unwrap())
            });
        for expr in block["exprs"].as_array().unwrap() {
            let expr = expr.as_str().unwrap();
            let mut any = false;
            for optimize in [true, false] {
                let Ok(prog) = libpcap::compile_with(expr, linktype, snaplen, optimize, netmask)
                else {
                    continue;
                };
                assert_same_as_bpf_image(
                    &prog,
                    &format!("{dlt_name} {expr:?} optimize={optimize}"),
                );
                // The -ddd / -dd printers must read back.
                assert_eq!(parse::parse_ddd(&dump::dump_ddd(&prog)).unwrap(), prog);
                assert_eq!(parse::parse_dd(&dump::dump_dd(&prog)).unwrap(), prog);
                any = true;
                programs += 1;
                insns += prog.len();
            }
            if any {
                compared += 1;
            } else {
                not_compiled += 1;
            }
        }
    }
    eprintln!(
        "compared {compared} expressions ({programs} programs, {insns} instructions); \
         {not_compiled} did not compile here; {skipped} blocks skipped"
    );
    assert!(
        compared > 1500,
        "only {compared} corpus expressions compiled"
    );
}

/// Every 16-bit opcode, with operands that hit libpcap's formatting corner
/// cases (negative `%d`, ancillary names, wrapping `ja` targets).
#[test]
fn every_opcode_matches_bpf_image() {
    let ks = [
        0,
        1,
        12,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_f004,
        0xffff_fff1,
        u32::MAX,
    ];
    for code in 0..=u16::MAX {
        for (i, &k) in ks.iter().enumerate() {
            let insn = Insn::new(code, (i as u8).wrapping_mul(37), 255 - i as u8, k);
            let n = [0, 7, 999, 1000, 4095][i % 5];
            assert_eq!(
                dump::image(&insn, n),
                libpcap::image(&insn, n),
                "{insn:?} at {n}"
            );
        }
    }
    // Every ancillary offset libpcap might name, and the gaps between them.
    for ad in 0..=0x50 {
        for code in [0x20, 0x28, 0x30] {
            let insn = Insn::new(code, 0, 0, 0xffff_f000 + ad);
            assert_eq!(dump::image(&insn, 3), libpcap::image(&insn, 3), "{insn:?}");
        }
    }
}

/// `tcpdump FLAG -y LINKTYPE EXPR`'s listing.
fn tcpdump(flag: &str, linktype: &str, expr: &str) -> String {
    let out = Command::new(tcpdump_path())
        .args([flag, "-y", linktype, expr])
        .output()
        .unwrap_or_else(|e| panic!("tcpdump: {e}"));
    assert!(
        out.status.success(),
        "tcpdump {flag} -y {linktype} {expr:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Byte-for-byte against the installed tcpdump (scripts/setup.sh installs
/// it; without it the test fails).
#[test]
fn dumps_match_tcpdump() {
    let cases = [
        ("EN10MB", "tcp port 443"),
        ("EN10MB", "ip6 protochain 6"),
        ("EN10MB", "inbound and vlan 10"),
        (
            "EN10MB",
            "ip[2:2] - 4 * (ip[0] & 0xf) > 100 or tcp[13] & 2 != 0",
        ),
        ("LINUX_SLL", "inbound and ifindex 3"),
        ("RAW", "udp and len < 100"),
    ];
    for (dlt, expr) in cases {
        let prog =
            libpcap::compile(expr, libpcap::linktype_from_name(dlt).unwrap(), 262_144).unwrap();
        assert_eq!(
            tcpdump("-d", dlt, expr),
            dump::dump_d(&prog),
            "-d {dlt} {expr}"
        );
        assert_eq!(
            tcpdump("-dd", dlt, expr),
            dump::dump_dd(&prog),
            "-dd {dlt} {expr}"
        );
        let ddd = tcpdump("-ddd", dlt, expr);
        assert_eq!(ddd, dump::dump_ddd(&prog), "-ddd {dlt} {expr}");
        assert_eq!(parse::parse_auto(&ddd).unwrap(), prog);
    }
}
