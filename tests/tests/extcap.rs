//! xcap as Wireshark's extcap, driven by the real tshark: once `xcap
//! --extcap-install` has linked it into the extcap folder tshark reads,
//! `tshark -D` lists xcap's interfaces, and `tshark -i xcap-IFACE -c N -f
//! FILTER` captures N packets of generated traffic, each one matching the
//! filter.
//!
//! Debian 12's tshark (4.0) reads extcap programs from one folder, the
//! system's, and ignores WIRESHARK_EXTCAP_DIR when run as root; so tshark
//! runs in a private mount namespace where a scratch folder is mounted
//! over that one (nothing outside changes). The traffic, numbered UDP
//! frames to ports 7777 and 8888 in turn, is sent through a packet socket
//! on one end of a veth pair between two private namespaces; tshark
//! captures on the other end. Needs root, tshark and bpftool.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xcap_tests::netns::{exec, send_frames, spawn_in, Pair};
use xcap_tests::process::{output, run, run_text};
use xcap_tests::{eth_ipv4, xcap_bin};

const TX_IF: &str = "et0";
const RX_IF: &str = "er0";

fn net() -> Pair {
    let pair = Pair::new("xcap-extcap");
    pair.link(TX_IF, RX_IF);
    pair.up(TX_IF, RX_IF);
    pair
}

/// The extcap folder tshark reads (`tshark -G folders`).
fn tshark_extcap_folder() -> PathBuf {
    let text = run_text(Command::new("tshark").args(["-G", "folders"]));
    text.lines()
        .find_map(|l| l.strip_prefix("Extcap path:"))
        .map(|p| PathBuf::from(p.trim()))
        .unwrap_or_else(|| panic!("tshark -G folders names no extcap path: {text}"))
}

/// `script` run by sh in the receiving namespace, in a private mount
/// namespace where `folder` is mounted over tshark's extcap folder and
/// xcap was installed there with `--extcap-install`.
fn with_xcap_installed(pair: &Pair, folder: &std::path::Path, script: &str) -> Command {
    let full = format!(
        "set -e; mount --bind {folder} {extcap}; {xcap} --extcap-install >/dev/null; {script}",
        folder = folder.display(),
        extcap = tshark_extcap_folder().display(),
        xcap = xcap_bin().display(),
    );
    let mut cmd = exec(&pair.b, "unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", &full]);
    cmd
}

/// Numbered UDP frames, to port 7777 (even numbers) and 8888 (odd), sent
/// until `stop`.
fn traffic_until(pair: &Pair, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    spawn_in(&pair.a, move || {
        let mut seq = 0u32;
        while !stop.load(Ordering::SeqCst) {
            let port = if seq.is_multiple_of(2) { 7777 } else { 8888 };
            let mut payload = seq.to_be_bytes().to_vec();
            payload.resize(100, 0);
            let frame = eth_ipv4(17, [10, 9, 0, 1], [10, 9, 0, 2], 4000, port, &payload);
            send_frames(TX_IF, &[frame]);
            seq += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

#[test]
fn tshark_lists_xcaps_interfaces_once_installed() {
    let pair = net();
    let folder = pair.path("extcap");
    std::fs::create_dir_all(&folder).unwrap();
    let out = run(&mut with_xcap_installed(&pair, &folder, "tshark -D"));
    let list = String::from_utf8_lossy(&out.stdout);
    for name in [format!("xcap-{RX_IF} (xcap: {RX_IF} "), "xcap-any (".into()] {
        assert!(list.contains(&name), "tshark -D has no {name}: {list}");
    }
    assert!(folder.join("xcap").is_symlink(), "the link");
}

#[test]
fn tshark_captures_n_packets_through_xcap_with_the_filter_applied() {
    let pair = net();
    let folder = pair.path("extcap");
    std::fs::create_dir_all(&folder).unwrap();
    let file = pair.path("tshark.pcap");
    let script = format!(
        "tshark -i xcap-{RX_IF} -c 5 -f 'udp port 7777' -w {} 2>&1",
        file.display()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let sender = traffic_until(&pair, stop.clone());
    let out = output(&mut with_xcap_installed(&pair, &folder, &script));
    stop.store(true, Ordering::SeqCst);
    sender.join().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tshark: {said}");
    assert!(
        !said.contains("Error by extcap"),
        "xcap wrote to stderr: {said}"
    );
    // Five packets, every one to port 7777.
    let ports = run_text(Command::new("tshark").arg("-r").arg(&file).args([
        "-T",
        "fields",
        "-e",
        "udp.dstport",
    ]));
    let ports: Vec<&str> = ports.lines().collect();
    assert_eq!(ports, ["7777"; 5], "{said}");
    // xcap was stopped with tshark and left nothing attached.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let attached = run_text(exec(&pair.b, "bpftool").args(["net", "show", "dev", RX_IF]));
        if !attached.contains("xcap") {
            break;
        }
        assert!(Instant::now() < deadline, "still attached: {attached}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
