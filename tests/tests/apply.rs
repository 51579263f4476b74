//! libpcap's apply tests (`libpcap-apply.json`): each expression on each
//! packet of its savefile must give what the installed libpcap's
//! interpreter gives, in the VM and in the kernel, in all three modes.
//! (The JSON's own expected results come from libpcap's development head;
//! the test also reports how many of those the installed 1.10.3 reproduces.)

use cbpf2ebpf::libpcap;
use xcap_tests::{assert_matches_libpcap, corpus_dir, packets_in};

#[test]
fn libpcap_apply_tests() {
    let dir = corpus_dir();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("libpcap-apply.json")).unwrap())
            .unwrap();
    let (mut tests, mut cases, mut not_compiled, mut upstream_agree, mut upstream_total) =
        (0, 0, 0, 0, 0);
    for t in json["tests"].as_array().unwrap() {
        if t.get("skip").is_some() {
            continue;
        }
        let savefile = dir
            .join("libpcap-filter-pcaps")
            .join(t["savefile"].as_str().unwrap());
        let cap = pcap::Capture::from_file(&savefile)
            .unwrap_or_else(|e| panic!("{}: {e}", savefile.display()));
        let dlt = cap.get_datalink().0;
        drop(cap);
        let expr = t["expr"].as_str().unwrap();
        let netmask = t
            .get("netmask")
            .and_then(|n| n.as_str())
            .and_then(|s| s.parse::<std::net::Ipv4Addr>().ok())
            .map_or(libpcap::NETMASK_UNKNOWN, |a| u32::from_ne_bytes(a.octets()));
        let Ok(prog) = libpcap::compile_with(expr, dlt, 262144, true, netmask) else {
            not_compiled += 1;
            continue;
        };
        // Only this savefile's packets (packets_in reads a folder).
        let tmp = tempdir_with(&savefile);
        let packets: Vec<(Vec<u8>, u32)> = packets_in(&tmp, dlt)
            .into_iter()
            .map(|p| (p.data, p.wirelen))
            .collect();
        std::fs::remove_dir_all(&tmp).ok();
        let expected: Vec<u64> = t["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        for (p, want) in packets.iter().zip(&expected) {
            upstream_total += 1;
            upstream_agree += (libpcap::filter(&prog, &p.0, p.1) as u64 == *want) as usize;
        }
        cases += assert_matches_libpcap(&format!("{} ({expr})", t["name"]), &prog, &packets);
        tests += 1;
    }
    xcap_tests::report(&format!("libpcap apply tests: {tests} tests, {cases} (mode, engine, packet) cases identical to the installed libpcap; {not_compiled} expressions need a newer libpcap; installed libpcap agrees with upstream's expected results on {upstream_agree} of {upstream_total} packets"));
    assert!(tests > 100, "only {tests} apply tests ran");
}

/// A folder holding just `file` (so `packets_in` reads one savefile).
fn tempdir_with(file: &std::path::Path) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "xcap-apply-{}-{}",
        std::process::id(),
        file.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(file, dir.join(file.file_name().unwrap())).unwrap();
    dir
}
