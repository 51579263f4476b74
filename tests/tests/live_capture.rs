//! Live capture end to end: `xcap` and `tcpdump` capture the same real
//! traffic on the same interface with the same filter at the same time, and
//! must write the same packets (bytes and original lengths; timestamps are
//! not compared), at XDP and at TC (ingress, egress, both).
//!
//! Each test makes two private network namespaces joined by a veth pair
//! (10.200.0.1 and fd00:200::1 on the sending side, .2 and ::2 on the
//! receiving side, addresses that exist only inside them) and deletes them
//! when it ends, however it ends. The traffic is ARP (neighbour caches are
//! flushed first), ICMP and ICMPv6 echo (one of 1200 bytes), TCP with data
//! to port 443 (and its reply) and to port 8443, UDP to ports 5000 and 53
//! and back, and hand-made frames with 802.1Q tags (VLAN 100 and VLAN 200,
//! TCP to port 8080) sent through packet sockets; the kernel moves a received tag out of
//! the packet before TC and tcpdump see it, and both put it back.
//!
//! At TC, xcap attaches with TCX links where the kernel has TCX (6.6+) and
//! with clsact cls_bpf filters elsewhere; the tests expect what the kernel
//! they run on gives, and the `clsact_*` and `tc_through_clsact_*` tests
//! force the clsact path (`XCAP_TC_ATTACH=clsact`) so that a TCX kernel
//! covers it too. `XCAP_TC_ATTACH=clsact` in the tests' environment runs
//! every TC test through clsact (xcap inherits it).
//!
//! Needs root and the tools scripts/setup.sh installs (tcpdump, tshark,
//! ping, tc, trafgen); the namespaces and processes come from tests/src
//! (netns.rs, process.rs). Every refusal by the kernel is a failure, never
//! a skip.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use xcap_tests::chains::padded_ipv6;
use xcap_tests::netns::{exec, in_ns, mac_of, mac_text, send_frames, spawn_in, Pair};
use xcap_tests::process::{output, run, run_text, serial, sh, Proc};
use xcap_tests::{assert_one_error_line, tcpdump_path, xcap_bin};

/// The filters every hook is checked with; `ether host` gets the sending
/// side's MAC address.
const FILTERS: &[&str] = &[
    "tcp port 443 and tcp[13]&8!=0",
    "icmp",
    "udp and not port 53",
    "ip6",
    "arp",
    "greater 1000",
    "ether host {TX_MAC}",
    "vlan 100 and tcp",
];

/// The sending (tx) and receiving (rx) namespaces, joined by a veth pair.
struct Net {
    pair: Pair,
    tx_mac: [u8; 6],
    rx_mac: [u8; 6],
}

const TX_IF: &str = "xt0";
const RX_IF: &str = "xr0";

impl Net {
    fn new() -> Net {
        let pair = Pair::new("xcap-live");
        let (tx, rx) = (&pair.a, &pair.b);
        for ns in [tx, rx] {
            // No router solicitations or DAD: no IPv6 chatter at random
            // times. The MLD reports of new addresses (the first and its
            // repeats) within 10 ms instead of over 2 s.
            sh(&format!(
                "ip netns exec {ns} sysctl -qw net.ipv6.conf.default.router_solicitations=0 \
                 net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0 \
                 net.ipv6.conf.default.mldv1_unsolicited_report_interval=10 \
                 net.ipv6.conf.default.mldv2_unsolicited_report_interval=10"
            ));
        }
        pair.link(TX_IF, RX_IF);
        sh(&format!(
            "ip -n {tx} link set {TX_IF} addrgenmode none; ip -n {rx} link set {RX_IF} addrgenmode none
             ip -n {tx} addr add 10.200.0.1/24 dev {TX_IF}; ip -n {rx} addr add 10.200.0.2/24 dev {RX_IF}
             ip -n {tx} addr add fd00:200::1/64 dev {TX_IF} nodad; ip -n {rx} addr add fd00:200::2/64 dev {RX_IF} nodad"
        ));
        pair.up(TX_IF, RX_IF);
        // No neighbour probes at random times: an entry that is used goes
        // to DELAY and, 5 s later, sends a unicast ARP or NDP probe, which
        // can fall where one capture runs and the other not yet (starts
        // take seconds in a software-emulated guest). An hour's delay keeps
        // every probe out of the tests; traffic() still makes ARP and NDP
        // by flushing the caches.
        for (ns, ifname) in [(tx, TX_IF), (rx, RX_IF)] {
            sh(&format!(
                "ip netns exec {ns} sysctl -qw net.ipv4.neigh.{ifname}.delay_first_probe_time=3600 \
                 net.ipv6.neigh.{ifname}.delay_first_probe_time=3600"
            ));
        }
        let (tx_mac, rx_mac) = (mac_of(tx, TX_IF), mac_of(rx, RX_IF));
        // Let the MLD reports of the new addresses go by (measured: all
        // within 0.4 s of the link going up with 10 ms intervals, 1.7 s
        // with the defaults of 1 s and 10 s).
        std::thread::sleep(Duration::from_millis(800));
        Net {
            pair,
            tx_mac,
            rx_mac,
        }
    }

    fn tx(&self) -> &str {
        &self.pair.a
    }

    fn rx(&self) -> &str {
        &self.pair.b
    }

    fn path(&self, name: &str) -> PathBuf {
        self.pair.path(name)
    }
}

/// An 802.1Q-tagged IPv4 frame carrying TCP (PSH|ACK, port 8080) or UDP.
///
/// Only `vlan` filters may match them: the kernel takes the tag out of the
/// packet before TC and tcpdump's socket see it, so there a filter without
/// `vlan` (`tcp port 8080`) matches the inner headers, while XDP sees the tag
/// in the packet, where such a filter does not match (a documented limit).
fn vlan_frame(dst: &[u8; 6], src: &[u8; 6], vid: u16, tcp: bool) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(dst);
    f.extend_from_slice(src);
    f.extend_from_slice(&0x8100u16.to_be_bytes());
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let l4: Vec<u8> = if tcp {
        let mut t = vec![
            0x30, 0x39, 0x1f, 0x90, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0x10, 0, 0, 0, 0, 0,
        ];
        t.extend_from_slice(b"tagged");
        t
    } else {
        let mut u = vec![0x30, 0x39, 0x13, 0x88, 0, 14, 0, 0];
        u.extend_from_slice(b"tagged");
        u
    };
    let total = 20 + l4.len() as u16;
    let mut ip = vec![
        0x45,
        0,
        0,
        0,
        0,
        1,
        0,
        0,
        64,
        if tcp { 6 } else { 17 },
        0,
        0,
        10,
        201,
        0,
        1,
        10,
        201,
        0,
        2,
    ];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&l4);
    f
}

/// A gratuitous ARP request.
fn arp_frame(src: &[u8; 6], ip: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(src);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(src);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip);
    f
}

/// The traffic of one round, in both directions.
fn traffic(net: &Net) {
    sh(&format!(
        "ip -n {} neigh flush dev {TX_IF}; ip -n {} neigh flush dev {RX_IF}",
        net.tx(),
        net.rx()
    ));
    // Receiving side: TCP servers on 443 (two connections) and 8443, UDP 5000.
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = spawn_in(net.rx(), move || {
        let l443 = TcpListener::bind("0.0.0.0:443").unwrap();
        let l8443 = TcpListener::bind("0.0.0.0:8443").unwrap();
        let udp = UdpSocket::bind("0.0.0.0:5000").unwrap();
        ready_tx.send(()).unwrap();
        let serve = |l: &TcpListener| {
            l.set_nonblocking(true).unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match l.accept() {
                    Ok((mut s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 4096];
                        while !buf.ends_with(b"\n") {
                            match s.read(&mut chunk) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        s.write_all(b"ok\n").unwrap();
                        return;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        assert!(Instant::now() < deadline, "no TCP connection came");
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
        };
        serve(&l443);
        serve(&l443);
        serve(&l8443);
        udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 64];
        let _ = udp.recv_from(&mut b);
        // UDP back, and tagged frames out of the receiving side (TC egress).
        let out = UdpSocket::bind("0.0.0.0:0").unwrap();
        out.send_to(b"back\n", "10.200.0.1:5001").unwrap();
        out.send_to(b"dns?\n", "10.200.0.1:53").unwrap();
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("servers ready");
    let (tx_mac, rx_mac) = (net.tx_mac, net.rx_mac);
    let client = spawn_in(net.tx(), move || {
        let talk = |port: u16, data: &[u8]| {
            let mut s = TcpStream::connect(("10.200.0.2", port)).unwrap();
            s.write_all(data).unwrap();
            let mut reply = String::new();
            BufReader::new(&s).read_line(&mut reply).unwrap();
            assert_eq!(reply, "ok\n");
        };
        talk(443, b"hello\n");
        let mut big = vec![b'x'; 3000];
        big.push(b'\n');
        talk(443, &big);
        talk(8443, b"other port\n");
        let udp = UdpSocket::bind("0.0.0.0:5001").unwrap();
        udp.send_to(b"udp\n", "10.200.0.2:5000").unwrap();
        udp.send_to(b"dns\n", "10.200.0.2:53").unwrap();
        send_frames(
            TX_IF,
            &[
                vlan_frame(&rx_mac, &tx_mac, 100, true),
                vlan_frame(&rx_mac, &tx_mac, 200, true),
                arp_frame(&tx_mac, [10, 200, 0, 1]),
            ],
        );
    });
    client.join().expect("client");
    server.join().expect("server");
    in_ns(net.rx(), move || {
        send_frames(
            RX_IF,
            &[
                vlan_frame(&tx_mac, &rx_mac, 100, true),
                arp_frame(&rx_mac, [10, 200, 0, 2]),
            ],
        )
    });
    sh(&format!(
        "ip netns exec {tx} ping -q -c 2 -i 0.2 10.200.0.2 >/dev/null
         ip netns exec {tx} ping -q -c 1 -s 1200 10.200.0.2 >/dev/null
         ip netns exec {tx} ping -q -6 -c 2 -i 0.2 fd00:200::2 >/dev/null",
        tx = net.tx()
    ));
}

/// Starts xcap in namespace `ns` with `args` and waits until it listens.
fn xcap_listening<S: AsRef<std::ffi::OsStr>>(ns: &str, args: impl IntoIterator<Item = S>) -> Proc {
    xcap_attached_by(ns, None, args)
}

/// [`xcap_listening`] with `XCAP_TC_ATTACH` set to `tc_attach`.
fn xcap_attached_by<S: AsRef<std::ffi::OsStr>>(
    ns: &str,
    tc_attach: Option<&str>,
    args: impl IntoIterator<Item = S>,
) -> Proc {
    let mut cmd = exec(ns, xcap_bin());
    cmd.args(args);
    if let Some(how) = tc_attach {
        cmd.env(TC_ATTACH, how);
    }
    let mut p = Proc::start(cmd);
    p.wait_listening("xcap");
    p
}

/// Starts tcpdump in namespace `ns` with `args`, writing `file` with
/// `filter`, and waits until it listens.
fn tcpdump_writing(ns: &str, args: &[&str], file: &Path, filter: &str) -> Proc {
    let mut cmd = exec(ns, tcpdump_path());
    cmd.args(args).arg("-w").arg(file).arg(filter);
    let mut p = Proc::start(cmd);
    p.wait_listening("tcpdump");
    p
}

/// (original length, bytes) of every packet of a pcap file (micro- or
/// nanosecond).
fn read_pcap(path: &Path) -> Vec<(u32, Vec<u8>)> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(data.len() >= 24, "{}: no pcap header", path.display());
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    assert!(
        magic == 0xa1b2c3d4 || magic == 0xa1b23c4d,
        "{}: magic {magic:#x}",
        path.display()
    );
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let incl = u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        let orig = u32::from_le_bytes(data[at + 12..at + 16].try_into().unwrap());
        assert!(
            at + 16 + incl <= data.len(),
            "{}: truncated record",
            path.display()
        );
        out.push((orig, data[at + 16..at + 16 + incl].to_vec()));
        at += 16 + incl;
    }
    assert_eq!(at, data.len(), "{}: trailing bytes", path.display());
    out
}

fn count_line(lines: &[String], what: &str) -> u64 {
    lines
        .iter()
        .find_map(|l| {
            l.strip_suffix(what)
                .and_then(|n| n.trim().split(' ').next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or_else(|| panic!("no '{what}' line in: {}", lines.join("\n")))
}

#[derive(Clone, Copy, Debug)]
enum Setup {
    Xdp,
    TcIn,
    TcOut,
    TcInOut,
}

impl Setup {
    fn xcap_args(self) -> &'static [&'static str] {
        match self {
            Setup::Xdp => &["--xdp"],
            Setup::TcIn => &["--tc", "-Q", "in"],
            Setup::TcOut => &["--tc", "-Q", "out"],
            Setup::TcInOut => &["--tc", "-Q", "inout"],
        }
    }

    fn tcpdump_args(self) -> &'static [&'static str] {
        match self {
            Setup::Xdp | Setup::TcIn => &["-Q", "in"],
            Setup::TcOut => &["-Q", "out"],
            Setup::TcInOut => &["-Q", "inout"],
        }
    }
}

/// One round: tcpdump and xcap on the receiving side with `filter`, the
/// traffic, SIGINT, and the comparison. Returns how many packets matched.
/// `tc_attach` goes to xcap as `XCAP_TC_ATTACH`.
fn round(net: &Net, setup: Setup, filter: &str, tc_attach: Option<&str>) -> usize {
    let tag = format!(
        "{setup:?}-{}",
        filter.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    let (tcpdump_file, xcap_file) = (
        net.path(&format!("{tag}.tcpdump.pcap")),
        net.path(&format!("{tag}.xcap.pcap")),
    );
    let mut tcpdump_args = vec!["-i", RX_IF, "-n", "-U", "--immediate-mode", "-s", "262144"];
    tcpdump_args.extend(setup.tcpdump_args());
    let td = tcpdump_writing(net.rx(), &tcpdump_args, &tcpdump_file, filter);
    // -v: the filter's sizes and linkage, and every counter at the end.
    let mut xcap_args = vec!["-v", "-i", RX_IF];
    xcap_args.extend(setup.xcap_args());
    xcap_args.extend(["-w", xcap_file.to_str().unwrap(), filter]);
    let xc = xcap_attached_by(net.rx(), tc_attach, xcap_args);
    std::thread::sleep(Duration::from_millis(200));

    traffic(net);
    std::thread::sleep(Duration::from_millis(300));
    xc.signal(libc::SIGINT);
    td.signal(libc::SIGINT);
    let (xcode, xlines) = xc.finish("xcap");
    let (tcode, tlines) = td.finish("tcpdump");
    assert_eq!(tcode, 0, "tcpdump: {}", tlines.join("\n"));
    assert_eq!(xcode, 0, "xcap {setup:?} '{filter}': {}", xlines.join("\n"));

    // Live capture inlines the filter (a call would cost more than it).
    let sizes = xlines
        .iter()
        .find(|l| l.contains("eBPF instructions at"))
        .unwrap_or_else(|| panic!("no filter line with -v: {}", xlines.join("\n")));
    assert!(
        sizes.matches("(inlined").count() == sizes.matches("eBPF instructions at").count(),
        "{sizes}"
    );
    // And says how each TC hook is attached.
    if !matches!(setup, Setup::Xdp) {
        let how = if expect_clsact(tc_attach) {
            "; clsact cls_bpf pref "
        } else {
            "; tcx link)"
        };
        assert_eq!(
            sizes.matches(how).count(),
            sizes.matches("eBPF instructions at").count(),
            "{sizes}"
        );
    }

    let mut theirs = read_pcap(&tcpdump_file);
    let mut ours = read_pcap(&xcap_file);
    let captured = count_line(&xlines, "captured");
    assert_eq!(
        captured as usize,
        ours.len(),
        "xcap's count vs its file: {}",
        xlines.join("\n")
    );
    assert_eq!(
        count_line(&xlines, "dropped by kernel"),
        0,
        "{}",
        xlines.join("\n")
    );
    assert_eq!(
        count_line(&xlines, "received by filter"),
        captured,
        "{}",
        xlines.join("\n")
    );
    // -v counts every packet the programs ran on.
    let seen = xlines
        .iter()
        .find_map(|l| {
            l.strip_prefix("xcap: ")?
                .split(" packets seen")
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or_else(|| panic!("no 'seen' counter: {}", xlines.join("\n")));
    assert!(seen >= captured && seen > 0, "{}", xlines.join("\n"));
    theirs.sort();
    ours.sort();
    if theirs != ours {
        let only = |a: &[(u32, Vec<u8>)], b: &[(u32, Vec<u8>)]| -> Vec<String> {
            a.iter()
                .filter(|p| !b.contains(p))
                .map(|(len, d)| {
                    format!(
                        "len {len}: {}",
                        d.iter()
                            .take(64)
                            .map(|b| format!("{b:02x}"))
                            .collect::<String>()
                    )
                })
                .collect()
        };
        panic!(
            "{setup:?} '{filter}': tcpdump {} packets, xcap {}\nonly tcpdump:\n{}\nonly xcap:\n{}",
            theirs.len(),
            ours.len(),
            only(&theirs, &ours).join("\n"),
            only(&ours, &theirs).join("\n")
        );
    }
    ours.len()
}

fn check_hook(setup: Setup) {
    check_hook_attached(setup, None);
}

/// [`check_hook`] with `XCAP_TC_ATTACH` set to `tc_attach`.
fn check_hook_attached(setup: Setup, tc_attach: Option<&str>) {
    let _guard = serial();
    let net = Net::new();
    let mut per_filter = Vec::new();
    for f in FILTERS {
        let filter = f.replace("{TX_MAC}", &mac_text(&net.tx_mac));
        let n = round(&net, setup, &filter, tc_attach);
        assert!(
            n > 0,
            "{setup:?} '{filter}': the traffic has packets for it, but none were captured"
        );
        per_filter.push(n);
    }
    assert_nothing_attached(&net);
    let through = tc_attach.map_or(String::new(), |a| format!(" through {a}"));
    xcap_tests::report(&format!(
        "live {setup:?}{through}: {} filters, {} packets captured, byte for byte what tcpdump captured",
        per_filter.len(),
        per_filter.iter().sum::<usize>()
    ));
}

#[test]
fn xdp_captures_what_tcpdump_captures() {
    check_hook(Setup::Xdp);
}

#[test]
fn tc_ingress_captures_what_tcpdump_captures() {
    check_hook(Setup::TcIn);
}

#[test]
fn tc_egress_captures_what_tcpdump_captures() {
    check_hook(Setup::TcOut);
}

#[test]
fn tc_both_directions_capture_what_tcpdump_captures() {
    check_hook(Setup::TcInOut);
}

/// The fallback of kernels without TCX, forced: both hooks, as filters on
/// a clsact qdisc.
#[test]
fn tc_through_clsact_captures_what_tcpdump_captures() {
    check_hook_attached(Setup::TcInOut, Some("clsact"));
}

const TC_ATTACH: &str = "XCAP_TC_ATTACH";

/// Whether this kernel has TCX: BPF_PROG_QUERY of TCX ingress on loopback
/// is refused with EINVAL where it has not (before 6.6).
fn kernel_has_tcx() -> bool {
    // SAFETY: bpf() on a zeroed attr (target_ifindex 1: loopback).
    unsafe {
        let mut attr = [0u32; 16];
        attr[0] = 1;
        attr[1] = 46;
        let r = libc::syscall(libc::SYS_bpf, 16, attr.as_mut_ptr(), 64u32);
        let e = std::io::Error::last_os_error();
        match (r, e.raw_os_error()) {
            (0, _) => true,
            (_, Some(libc::EINVAL)) => false,
            _ => panic!("BPF_PROG_QUERY: {e}"),
        }
    }
}

/// Whether xcap, given `XCAP_TC_ATTACH=tc_attach` (or what the tests'
/// environment says), attaches at TC through clsact filters.
fn expect_clsact(tc_attach: Option<&str>) -> bool {
    let env = std::env::var(TC_ATTACH).ok();
    match tc_attach.or(env.as_deref()) {
        Some("clsact") => true,
        Some("tcx") => false,
        _ => !kernel_has_tcx(),
    }
}

/// `tc filter show` of `dir` on `ifname`: the lines of filters (not of
/// their lists), in the kernel's order.
fn tc_filters(ns: &str, ifname: &str, dir: &str) -> Vec<String> {
    let out = run(Command::new("tc").args(["-n", ns, "filter", "show", "dev", ifname, dir]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(" handle "))
        .map(str::to_owned)
        .collect()
}

/// xcap's filters among [`tc_filters`].
fn xcap_filters(ns: &str, ifname: &str, dir: &str) -> Vec<String> {
    tc_filters(ns, ifname, dir)
        .into_iter()
        .filter(|l| l.contains(" xcap_tc"))
        .collect()
}

/// `tc qdisc show` and `tc filter show` of both directions, as printed.
fn tc_state(ns: &str, ifname: &str) -> String {
    let mut text = String::new();
    for what in [
        &["qdisc", "show", "dev", ifname][..],
        &["filter", "show", "dev", ifname, "ingress"],
        &["filter", "show", "dev", ifname, "egress"],
    ] {
        let out = run(Command::new("tc").args(["-n", ns]).args(what));
        text.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    text
}

/// How many programs are attached to `ifname` in namespace `ns` with
/// `attach_type` (BPF_PROG_QUERY; 46 = TCX ingress, 47 = TCX egress).
fn tcx_programs(ns: &str, ifname: &str, attach_type: u32) -> u32 {
    let ifname = ifname.to_owned();
    in_ns(ns, move || {
        let name = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: if_nametoindex on a C string; bpf() on a zeroed attr.
        unsafe {
            let ifindex = libc::if_nametoindex(name.as_ptr());
            assert!(ifindex != 0);
            let mut attr = [0u32; 16];
            attr[0] = ifindex; // target_ifindex
            attr[1] = attach_type;
            let r = libc::syscall(libc::SYS_bpf, 16, attr.as_mut_ptr(), 64u32); // BPF_PROG_QUERY
            let e = std::io::Error::last_os_error();
            if r != 0 && e.raw_os_error() == Some(libc::EINVAL) && !kernel_has_tcx() {
                return 0; // no TCX, so no TCX program either
            }
            assert_eq!(r, 0, "BPF_PROG_QUERY: {e}");
            attr[6] // prog_cnt
        }
    })
}

/// Neither an XDP program, nor TCX programs, nor a clsact (or ingress)
/// qdisc, nor tc filters on the receiving interface.
fn assert_nothing_attached(net: &Net) {
    assert!(
        Path::new(&format!("/var/run/netns/{}", net.rx())).exists(),
        "namespace {} is gone: nothing left to check",
        net.rx()
    );
    assert_no_qdisc(net.rx(), RX_IF);
    let text = run_text(Command::new("ip").args(["-n", net.rx(), "-d", "link", "show", RX_IF]));
    assert!(
        !text.contains(" xdp") && !text.contains("prog/xdp"),
        "XDP left attached: {text}"
    );
    for (t, what) in [(46, "ingress"), (47, "egress")] {
        assert_eq!(
            tcx_programs(net.rx(), RX_IF, t),
            0,
            "TCX {what} programs left attached"
        );
    }
    for dir in ["ingress", "egress"] {
        let tc =
            output(Command::new("tc").args(["-n", net.rx(), "filter", "show", "dev", RX_IF, dir]));
        assert!(
            tc.stdout.is_empty(),
            "tc filters left: {}",
            String::from_utf8_lossy(&tc.stdout)
        );
    }
}

/// No clsact or ingress qdisc on `ifname`.
fn assert_no_qdisc(ns: &str, ifname: &str) {
    let q = run(Command::new("tc").args(["-n", ns, "qdisc", "show", "dev", ifname]));
    let text = String::from_utf8_lossy(&q.stdout);
    assert!(
        !text.contains("clsact") && !text.contains("ingress"),
        "qdisc left on {ifname}: {text}"
    );
}

/// After SIGKILLs of TC captures: where they were clsact filters, which
/// outlive the process, the next xcap's start removes them (as a user's
/// next start would), and its own go at its exit.
fn after_kills(net: &Net) {
    if expect_clsact(None) {
        let next = xcap_listening(net.rx(), ["-i", RX_IF, "--tc", "icmp"]);
        assert!(
            next.lines
                .iter()
                .any(|l| l.contains("removed tc filters left by an xcap that was killed")),
            "{}",
            next.lines.join("\n")
        );
        next.signal(libc::SIGINT);
        let (code, lines) = next.finish("the next xcap");
        assert_eq!(code, 0, "{}", lines.join("\n"));
    }
}

/// The checks of [`assert_nothing_attached`] see what xcap attaches.
fn assert_attached(net: &Net, xdp: bool) {
    let text = run_text(Command::new("ip").args(["-n", net.rx(), "-d", "link", "show", RX_IF]));
    if xdp {
        assert!(text.contains(" xdp"), "no XDP program: {text}");
    } else if expect_clsact(None) {
        assert_eq!(xcap_filters(net.rx(), RX_IF, "ingress").len(), 1);
        assert_eq!(xcap_filters(net.rx(), RX_IF, "egress").len(), 1);
    } else {
        assert_eq!(tcx_programs(net.rx(), RX_IF, 46), 1);
        assert_eq!(tcx_programs(net.rx(), RX_IF, 47), 1);
    }
}

/// xcap with `args` in namespace `ns`, run to its end.
fn xcap_in(ns: &str, args: &[&str]) -> Output {
    output(exec(ns, xcap_bin()).args(args).stdin(Stdio::null()))
}

#[test]
fn bad_input_fails_with_one_line_and_leaves_nothing_attached() {
    let _guard = serial();
    let net = Net::new();
    assert_one_error_line(
        &xcap_in(net.rx(), &["-i", "nosuch0", "--xdp", "icmp"]),
        "nosuch0: No such device exists",
    );
    assert_one_error_line(
        &xcap_in(net.rx(), &["-i", "nosuch0", "--tc", "icmp"]),
        "nosuch0: No such device exists",
    );
    assert_nothing_attached(&net);
    // libpcap's text, as tcpdump prints it.
    assert_one_error_line(
        &xcap_in(net.rx(), &["-i", RX_IF, "--xdp", "tcp port"]),
        "xcap: can't parse filter expression: syntax error",
    );
    assert_one_error_line(
        &xcap_in(net.rx(), &["-i", RX_IF, "--tc", "ip and frobnicate"]),
        "xcap: syntax error in filter expression",
    );
    assert_nothing_attached(&net);
    assert_one_error_line(
        &xcap_in(
            net.rx(),
            &[
                "-i",
                RX_IF,
                "--xdp",
                "-w",
                "/nonexistent/dir/x.pcap",
                "icmp",
            ],
        ),
        "No such file or directory",
    );
    assert_one_error_line(
        &xcap_in(
            net.rx(),
            &["-i", RX_IF, "--tc", "-w", "/nonexistent/dir/x.pcap", "icmp"],
        ),
        "No such file or directory",
    );
    assert_nothing_attached(&net);
    assert_one_error_line(
        &xcap_in(net.rx(), &["-i", RX_IF, "--xdp", "-Q", "out", "icmp"]),
        "XDP sees received packets only",
    );
    // Ring buffers are a power of two pages; found after the TC links
    // are made, which must go again.
    assert_one_error_line(
        &xcap_in(
            net.rx(),
            &["-i", RX_IF, "--tc", "--buffer-pages", "3", "icmp"],
        ),
        "must be a power of two pages",
    );
    assert_nothing_attached(&net);
    // Without privileges (nobody, no capabilities).
    let out = output(
        exec(net.rx(), "setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(xcap_bin())
            .args(["-i", RX_IF, "--xdp", "icmp"]),
    );
    assert_one_error_line(
        &out,
        "needs root, or the capabilities CAP_BPF, CAP_NET_ADMIN",
    );
    assert_nothing_attached(&net);

    // An XDP program already there (another xcap): refused, and the first
    // one keeps running.
    let first = xcap_listening(net.rx(), ["-i", RX_IF, "--xdp", "icmp"]);
    assert_attached(&net, true);
    assert_one_error_line(
        &xcap_in(net.rx(), &["-i", RX_IF, "--xdp", "icmp"]),
        "an XDP program is already attached",
    );
    assert_one_error_line(
        &xcap_in(
            net.rx(),
            &["-i", RX_IF, "--xdp", "--xdp-mode", "generic", "icmp"],
        ),
        "an XDP program is already attached",
    );
    sh(&format!(
        "ip netns exec {} ping -q -c 1 10.200.0.2 >/dev/null",
        net.tx()
    ));
    std::thread::sleep(Duration::from_millis(200));
    first.signal(libc::SIGTERM);
    let (code, lines) = first.finish("first xcap");
    assert_eq!(code, 0, "{}", lines.join("\n"));
    assert_eq!(count_line(&lines, "captured"), 1, "{}", lines.join("\n"));
    assert_nothing_attached(&net);

    // SIGKILL: the kernel closes the links, so nothing stays attached.
    // clsact filters stay, until the next xcap's start removes them.
    for (hook, xdp) in [("--tc", false), ("--xdp", true)] {
        let x = xcap_listening(net.rx(), ["-i", RX_IF, hook, "icmp"]);
        assert_attached(&net, xdp);
        x.signal(libc::SIGKILL);
        let (code, _) = x.finish("xcap after SIGKILL");
        assert_eq!(code, -1);
        std::thread::sleep(Duration::from_millis(100));
        if !xdp && expect_clsact(None) {
            assert_attached(&net, false);
            after_kills(&net);
        }
        assert_nothing_attached(&net);
    }
}

#[test]
fn pcapng_files_carry_interfaces_directions_and_verdicts_and_w_dash_streams_to_tcpdump() {
    let _guard = serial();
    let net = Net::new();
    // -c 2: stops by itself; pcapng with its interface block and flags.
    let file = net.path("two.pcapng");
    let x = xcap_listening(
        net.rx(),
        [
            "-i",
            RX_IF,
            "--tc",
            "-c",
            "2",
            "-w",
            file.to_str().unwrap(),
            "icmp",
        ],
    );
    sh(&format!(
        "ip netns exec {} ping -q -c 2 -i 0.2 10.200.0.2 >/dev/null",
        net.tx()
    ));
    let (code, lines) = x.finish("xcap -c 2");
    assert_eq!(code, 0, "{}", lines.join("\n"));
    assert_eq!(count_line(&lines, "captured"), 2, "{}", lines.join("\n"));
    let tshark = run(Command::new("tshark").args(["-r"]).arg(&file).args([
        "-T",
        "fields",
        "-e",
        "frame.interface_name",
        "-e",
        "frame.interface_description",
        "-e",
        "frame.packet_flags_direction",
        "-e",
        "icmp.type",
    ]));
    let text = String::from_utf8_lossy(&tshark.stdout);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        rows[0].starts_with(&format!("{RX_IF}\txcap tc ingress, tc egress")),
        "{text}"
    );
    assert!(
        rows.iter().any(|r| r.ends_with("0x00000001\t8"))
            && rows.iter().any(|r| r.ends_with("0x00000002\t0")),
        "directions: {text}"
    );

    // XDP pcapng: the verdict option; tcpdump reads it too.
    let file = net.path("xdp.pcapng");
    let x = xcap_listening(
        net.rx(),
        [
            "-i",
            RX_IF,
            "--xdp",
            "-c",
            "1",
            "--pcapng",
            "-w",
            file.to_str().unwrap(),
            "icmp",
        ],
    );
    sh(&format!(
        "ip netns exec {} ping -q -c 1 10.200.0.2 >/dev/null",
        net.tx()
    ));
    let (code, lines) = x.finish("xcap --xdp -c 1");
    assert_eq!(code, 0, "{}", lines.join("\n"));
    let v = run(Command::new("tshark").arg("-r").arg(&file).arg("-V"));
    let v = String::from_utf8_lossy(&v.stdout);
    assert!(
        v.contains("xcap xdp native") && v.contains("Verdict"),
        "{v}"
    );
    let t = run(Command::new(tcpdump_path()).args(["-n", "-r"]).arg(&file));
    assert!(
        String::from_utf8_lossy(&t.stdout).contains("ICMP echo request"),
        "{:?}",
        t
    );

    // -w - | tcpdump -r -: streamed, readable while it runs.
    let script = format!(
        "ip netns exec {rx} {xcap} -i {RX_IF} --tc -U -c 3 -w - udp | {tcpdump} -n -r - 2>/dev/null",
        rx = net.rx(),
        xcap = xcap_bin().display(),
        tcpdump = tcpdump_path().display()
    );
    let mut pipe = Command::new("sh");
    pipe.args(["-c", &script]);
    // Sent once xcap listens (a fixed wait was too short in a loaded,
    // software-emulated guest, and -c 3 then waited for ever).
    let mut p = Proc::start_keeping_stdout(pipe);
    p.wait_listening("xcap -w - | tcpdump -r -");
    in_ns(net.tx(), || {
        let u = UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..3 {
            u.send_to(b"x", "10.200.0.2:5555").unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let (_, lines, text) = p.finish_with_stdout("xcap -w - | tcpdump -r -");
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("> 10.200.0.2.5555: UDP"))
            .count(),
        3,
        "{text}\n{}",
        lines.join("\n")
    );
    assert_nothing_attached(&net);
}

#[test]
fn interface_deleted_and_sigterm_leave_complete_files() {
    let _guard = serial();
    let net = Net::new();
    // SIGTERM: a complete file.
    let file = net.path("term.pcap");
    let x = xcap_listening(
        net.rx(),
        ["-i", RX_IF, "--xdp", "-w", file.to_str().unwrap(), "icmp"],
    );
    sh(&format!(
        "ip netns exec {} ping -q -c 3 -i 0.2 10.200.0.2 >/dev/null",
        net.tx()
    ));
    std::thread::sleep(Duration::from_millis(200));
    x.signal(libc::SIGTERM);
    let (code, lines) = x.finish("xcap");
    assert_eq!(code, 0, "{}", lines.join("\n"));
    assert_eq!(read_pcap(&file).len(), 3);
    assert_eq!(count_line(&lines, "captured"), 3);

    // The interface goes away: xcap stops by itself, says so, and the file
    // holds what was captured; with clsact filters too (they go with the
    // interface, and xcap has nothing left to remove).
    for (hook, name, tc_attach) in [
        ("--xdp", "gone-xdp.pcap", None),
        ("--tc", "gone-tc.pcap", None),
        ("--tc", "gone-clsact.pcap", Some("clsact")),
    ] {
        let n = Net::new();
        let file = n.path(name);
        let x = xcap_attached_by(
            n.rx(),
            tc_attach,
            ["-i", RX_IF, hook, "-w", file.to_str().unwrap(), "icmp"],
        );
        sh(&format!(
            "ip netns exec {} ping -q -c 2 -i 0.2 10.200.0.2 >/dev/null",
            n.tx()
        ));
        std::thread::sleep(Duration::from_millis(200));
        sh(&format!("ip -n {} link del {RX_IF}", n.rx()));
        let (code, lines) = x.finish("xcap after the interface went away");
        assert_eq!(code, 1, "{}", lines.join("\n"));
        assert!(
            lines
                .iter()
                .any(|l| l.contains("xr0: the interface disappeared")),
            "{}",
            lines.join("\n")
        );
        assert!(
            !lines.iter().any(|l| l.contains("may be left")),
            "{}",
            lines.join("\n")
        );
        let packets = read_pcap(&file);
        let want = if hook == "--xdp" { 2 } else { 4 };
        assert_eq!(packets.len(), want, "{}", lines.join("\n"));
        assert_eq!(count_line(&lines, "captured") as usize, want);
        let t = run(Command::new(tcpdump_path()).args(["-n", "-r"]).arg(&file));
        assert_eq!(String::from_utf8_lossy(&t.stdout).lines().count(), want);
    }
}

/// XDP multi-buffer packets (veth with a 9000-byte MTU: an 8 KB ping does
/// not fit one page) are captured whole, as tcpdump captures them; `greater`
/// sees their full length although the filter reads only the first buffer.
#[test]
fn xdp_multi_buffer_packets_are_captured_whole() {
    let _guard = serial();
    let net = Net::new();
    sh(&format!(
        "ip -n {} link set {TX_IF} mtu 9000; ip -n {} link set {RX_IF} mtu 9000",
        net.tx(),
        net.rx()
    ));
    let (ours, theirs) = (net.path("frags.xcap.pcap"), net.path("frags.tcpdump.pcap"));
    let td = tcpdump_writing(
        net.rx(),
        &["-i", RX_IF, "-Q", "in", "-U", "--immediate-mode"],
        &theirs,
        "greater 5000",
    );
    let xc = xcap_listening(
        net.rx(),
        [
            "-i",
            RX_IF,
            "--xdp",
            "-w",
            ours.to_str().unwrap(),
            "greater 5000",
        ],
    );
    sh(&format!(
        "ip netns exec {} ping -q -c 2 -i 0.2 -s 8000 10.200.0.2 >/dev/null",
        net.tx()
    ));
    std::thread::sleep(Duration::from_millis(300));
    xc.signal(libc::SIGINT);
    td.signal(libc::SIGINT);
    let (code, lines) = xc.finish("xcap");
    assert_eq!(code, 0, "{}", lines.join("\n"));
    td.finish("tcpdump");
    let (ours, theirs) = (read_pcap(&ours), read_pcap(&theirs));
    assert_eq!(ours.len(), 2, "{}", lines.join("\n"));
    assert!(ours.iter().all(|(len, d)| *len == 8042 && d.len() == 8042));
    let brief = |v: &[(u32, Vec<u8>)]| -> Vec<(u32, usize, Vec<u8>)> {
        v.iter()
            .map(|(len, d)| (*len, d.len(), d.iter().take(42).copied().collect()))
            .collect()
    };
    assert!(
        ours == theirs,
        "xcap {:?}\ntcpdump {:?}",
        brief(&ours),
        brief(&theirs)
    );
}

/// Senders that use PACKET_MMAP (trafgen) or zero-copy leave most of each
/// packet in page fragments: at TC the filter must read past the skb's
/// linear part (skb mode), or `udp port 9` never matches there.
#[test]
fn tc_filters_non_linear_skbs_as_tcpdump_does() {
    let _guard = serial();
    let net = Net::new();
    let mut frame = Vec::new();
    frame.extend_from_slice(&net.rx_mac);
    frame.extend_from_slice(&net.tx_mac);
    frame.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 58, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    frame.extend_from_slice(&[10, 200, 0, 1, 10, 200, 0, 2, 0x0f, 0xa0, 0, 9, 0, 38, 0, 0]);
    frame.resize(72, 0x5a);
    let conf = net.path("trafgen.cfg");
    let bytes: Vec<String> = frame.iter().map(|b| format!("{b:#04x}")).collect();
    std::fs::write(&conf, format!("{{ {} }}\n", bytes.join(", "))).unwrap();
    let (ours, theirs) = (net.path("mmap.xcap.pcap"), net.path("mmap.tcpdump.pcap"));
    let td = tcpdump_writing(
        net.rx(),
        &["-i", RX_IF, "-Q", "in", "-U", "--immediate-mode"],
        &theirs,
        "udp port 9",
    );
    let xc = xcap_listening(
        net.rx(),
        [
            "-i",
            RX_IF,
            "--tc",
            "-Q",
            "in",
            "-w",
            ours.to_str().unwrap(),
            "udp port 9",
        ],
    );
    run(exec(net.tx(), "trafgen")
        .args(["-o", TX_IF, "-i"])
        .arg(&conf)
        .args(["-n", "20", "--cpus", "1", "--no-sock-mem", "--no-cpu-stats"]));
    std::thread::sleep(Duration::from_millis(300));
    xc.signal(libc::SIGINT);
    td.signal(libc::SIGINT);
    let (code, lines) = xc.finish("xcap");
    assert_eq!(code, 0, "{}", lines.join("\n"));
    td.finish("tcpdump");
    let (ours, theirs) = (read_pcap(&ours), read_pcap(&theirs));
    assert_eq!(theirs.len(), 20, "tcpdump saw {} of 20", theirs.len());
    assert_eq!(ours, theirs, "{}", lines.join("\n"));
}

/// A burst into a one-page ring buffer loses packets, and every loss is
/// counted: captured + dropped == received by filter == sent, the file
/// holds exactly the captured packets, and each is intact. Run for XDP and
/// TC, under each wakeup policy (quarter-full default, `-U`, `--wakeup N`).
#[test]
fn full_buffers_lose_packets_counted_exactly() {
    let _guard = serial();
    let net = Net::new();
    const SENT: usize = 3000;
    // UDP to port 9, 1400 bytes: a 1,576-byte record, two to a page.
    let mut frame = Vec::new();
    frame.extend_from_slice(&net.rx_mac);
    frame.extend_from_slice(&net.tx_mac);
    frame.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0x05, 0x6a, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    frame.extend_from_slice(&[
        10, 200, 0, 1, 10, 200, 0, 2, 0x0f, 0xa0, 0, 9, 0x05, 0x56, 0, 0,
    ]);
    frame.resize(1400, 0x5a);
    let mut report = Vec::new();
    for (hook, wakeup) in [
        ("--xdp", None),
        ("--xdp", Some("-U")),
        ("--tc", Some("--wakeup=7")),
        ("--tc", None),
    ] {
        let file = net.path(&format!("full{hook}{}.pcap", wakeup.unwrap_or("")));
        let mut args = vec!["-v", "-i", RX_IF, hook, "-Q", "in", "--buffer-pages", "1"];
        args.extend(wakeup);
        args.extend(["-w", file.to_str().unwrap(), "udp port 9"]);
        let xc = xcap_listening(net.rx(), args);
        let frames = vec![frame.clone(); SENT];
        in_ns(net.tx(), move || send_frames(TX_IF, &frames));
        std::thread::sleep(Duration::from_millis(300));
        xc.signal(libc::SIGINT);
        let (code, lines) = xc.finish("xcap");
        let all = lines.join("\n");
        assert_eq!(code, 0, "{all}");
        let captured = count_line(&lines, "captured");
        let dropped = count_line(&lines, "dropped by kernel");
        assert_eq!(
            count_line(&lines, "received by filter"),
            SENT as u64,
            "{all}"
        );
        assert_eq!(captured + dropped, SENT as u64, "{all}");
        assert!(dropped > 0, "a one-page ring took {SENT} packets: {all}");
        let packets = read_pcap(&file);
        assert_eq!(packets.len() as u64, captured, "{all}");
        assert!(packets.iter().all(|(len, d)| *len == 1400 && *d == frame));
        report.push(format!(
            "{hook} {wakeup:?}: {captured} captured, {dropped} dropped"
        ));
    }
    eprintln!("{}", report.join("; "));
    assert_nothing_attached(&net);
}

/// TCP over loopback sends skbs of 64 KB and more (GSO): TC captures each
/// whole at the default snap length, however large (perf samples, used
/// before ring buffers, cut records at 64 KB), and nothing is lost with a
/// buffer that holds the burst.
#[test]
fn tc_captures_large_gso_packets_whole() {
    let _guard = serial();
    let net = Net::new();
    let file = net.path("gso.pcap");
    let xc = xcap_listening(
        net.rx(),
        [
            "-i",
            "lo",
            "--tc",
            "-Q",
            "out",
            "-B",
            "32768",
            "-w",
            file.to_str().unwrap(),
            "tcp port 5555",
        ],
    );
    const BYTES: usize = 3_000_000;
    in_ns(net.rx(), || {
        let listener = TcpListener::bind("127.0.0.1:5555").unwrap();
        let sink = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).unwrap();
            all.len()
        });
        let mut c = std::net::TcpStream::connect("127.0.0.1:5555").unwrap();
        c.write_all(&vec![0x5a; BYTES]).unwrap();
        drop(c);
        assert_eq!(sink.join().unwrap(), BYTES);
    });
    std::thread::sleep(Duration::from_millis(300));
    xc.signal(libc::SIGINT);
    let (code, lines) = xc.finish("xcap");
    let all = lines.join("\n");
    assert_eq!(code, 0, "{all}");
    assert_eq!(count_line(&lines, "dropped by kernel"), 0, "{all}");
    let packets = read_pcap(&file);
    assert_eq!(
        packets.len() as u64,
        count_line(&lines, "captured"),
        "{all}"
    );
    assert!(
        packets.iter().all(|(len, d)| *len as usize == d.len()),
        "a packet was cut"
    );
    let largest = packets.iter().map(|(len, _)| *len).max().unwrap_or(0);
    assert!(largest > 60_000, "largest packet {largest} bytes: {all}");
    let payload: usize = packets.iter().map(|(_, d)| d.len()).sum();
    assert!(payload > BYTES, "{payload} bytes captured for {BYTES} sent");
}

/// Voluntary context switches of each of `pid`'s ring reader threads.
fn reader_wakeups(pid: u32) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.starts_with("xcap-ring") {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let switches = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        out.push((comm.trim().to_owned(), switches));
    }
    out.sort();
    out
}

/// Waits up to 10 s for `file` to hold at least `n` packets.
fn wait_for_packets(file: &Path, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = read_pcap(file).len();
        if got >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn idle_readers_sleep_until_the_next_packet_wakes_them() {
    let _guard = serial();
    let net = Net::new();
    for (hook, per_ping) in [("--xdp", 1), ("--tc", 2)] {
        let file = net.path(&format!("idle{hook}.pcap"));
        // -l: every packet written at once (the file shows what the readers
        // handed over), while the kernel still wakes readers by watermark
        // only, so a reader that sleeps is woken by its flag or not at all.
        let x = xcap_listening(
            net.rx(),
            [
                "-i",
                RX_IF,
                hook,
                "-l",
                "-w",
                file.to_str().unwrap(),
                "icmp",
            ],
        );
        let pid = x.pid();
        for round in 1..=2 {
            // Idle: the readers stop polling after their first empty wait.
            std::thread::sleep(Duration::from_millis(300));
            let before = reader_wakeups(pid);
            std::thread::sleep(Duration::from_secs(1));
            let after = reader_wakeups(pid);
            assert!(!before.is_empty(), "no reader threads in /proc/{pid}/task");
            assert_eq!(
                before, after,
                "{hook}: readers woke up with nothing to read"
            );
            // One packet: its program wakes the sleeping reader, which hands
            // it over while xcap runs (not only at the final drain).
            sh(&format!(
                "ip netns exec {} ping -q -c 1 10.200.0.2 >/dev/null",
                net.tx()
            ));
            let want = round * per_ping;
            assert_eq!(
                wait_for_packets(&file, want),
                want,
                "{hook}, round {round}: the packet was not read while xcap ran"
            );
        }
        x.signal(libc::SIGINT);
        let (code, lines) = x.finish("xcap");
        assert_eq!(code, 0, "{}", lines.join("\n"));
        assert_eq!(read_pcap(&file).len(), 2 * per_ping);
    }
}

/// The packets of a pcap file from the network header on (`link` bytes
/// of link header stripped), sorted.
fn network_layer(file: &Path, link: usize) -> Vec<(u32, Vec<u8>)> {
    let mut v: Vec<(u32, Vec<u8>)> = read_pcap(file)
        .into_iter()
        .map(|(len, d)| (len - link as u32, d[link.min(d.len())..].to_vec()))
        .collect();
    v.sort();
    v
}

#[test]
fn loopback_and_any_capture_each_packet_once_as_tcpdump() {
    let _guard = serial();
    let net = Net::new();
    // Both write Ethernet for lo and Linux cooked v2 for any (whose
    // headers are compared in any_interface.rs). A loopback packet crosses
    // lo's egress and then its ingress: both keep one copy.
    for (iface, tcpdump_link, want) in [("lo", 14, 6), ("any", 20, 10)] {
        let theirs_file = net.path(&format!("{iface}.tcpdump.pcap"));
        let ours_file = net.path(&format!("{iface}.xcap.pcap"));
        let tcpdump = tcpdump_writing(
            net.rx(),
            &["-i", iface, "-n", "-U", "--immediate-mode", "-s", "262144"],
            &theirs_file,
            "icmp",
        );
        let xcap = xcap_listening(
            net.rx(),
            ["-i", iface, "-w", ours_file.to_str().unwrap(), "icmp"],
        );
        std::thread::sleep(Duration::from_millis(200));
        sh(&format!(
            "ip netns exec {} ping -q -c 3 -i 0.2 127.0.0.1 >/dev/null; \
             ip netns exec {} ping -q -c 2 -i 0.2 10.200.0.2 >/dev/null",
            net.rx(),
            net.tx()
        ));
        std::thread::sleep(Duration::from_millis(300));
        xcap.signal(libc::SIGINT);
        tcpdump.signal(libc::SIGINT);
        let (xcode, xlines) = xcap.finish("xcap");
        let (tcode, tlines) = tcpdump.finish("tcpdump");
        assert_eq!(tcode, 0, "tcpdump: {}", tlines.join("\n"));
        assert_eq!(xcode, 0, "xcap -i {iface}: {}", xlines.join("\n"));
        let theirs = network_layer(&theirs_file, tcpdump_link);
        let ours = network_layer(&ours_file, tcpdump_link);
        assert_eq!(theirs.len(), want, "tcpdump -i {iface}");
        assert_eq!(ours, theirs, "xcap -i {iface}: {}", xlines.join("\n"));
    }
}

/// The interface's promiscuity count (`ip -d link`).
fn promiscuity(ns: &str, ifname: &str) -> u32 {
    let out = sh(&format!("ip -n {ns} -d link show dev {ifname}"));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("promiscuity ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no promiscuity in: {text}"))
}

#[test]
fn promiscuous_mode_while_capturing_unless_p() {
    let _guard = serial();
    let net = Net::new();
    for (args, want) in [
        (&["--tc"][..], 1),
        (&["--xdp"][..], 1),
        (&["--tc", "-p"][..], 0),
    ] {
        let mut all = vec!["-i", RX_IF];
        all.extend(args);
        all.push("icmp");
        let x = xcap_listening(net.rx(), &all);
        assert_eq!(promiscuity(net.rx(), RX_IF), want, "xcap {all:?}");
        // Killed, as well as stopped: the kernel ends the membership with
        // the socket that holds it.
        x.signal(libc::SIGKILL);
        let _ = x.finish("xcap");
        assert_eq!(promiscuity(net.rx(), RX_IF), 0, "after xcap {all:?}");
    }
    after_kills(&net);
    assert_nothing_attached(&net);
}

#[test]
fn printed_lines_are_tcpdumps_on_one_interface_and_on_any() {
    let _guard = serial();
    let net = Net::new();
    for iface in [RX_IF, "any"] {
        let mut procs = Vec::new();
        for (name, program) in [("tcpdump", tcpdump_path()), ("xcap", xcap_bin())] {
            let path = net.path(&format!("{name}-{iface}.txt"));
            let mut cmd = exec(net.rx(), program);
            cmd.args(["-t", "-n", "-l", "-i", iface, "icmp or arp"]);
            let mut p = Proc::start_to(cmd, Stdio::from(File::create(&path).unwrap()));
            p.wait_listening(name);
            procs.push((p, path));
        }
        std::thread::sleep(Duration::from_millis(200));
        sh(&format!(
            "ip -n {rx} neigh flush dev {RX_IF}; ip -n {tx} neigh flush dev {TX_IF}; \
             ip netns exec {tx} ping -q -c 2 -i 0.2 10.200.0.2 >/dev/null; \
             ip netns exec {rx} ping -q -c 1 127.0.0.1 >/dev/null",
            rx = net.rx(),
            tx = net.tx()
        ));
        std::thread::sleep(Duration::from_millis(300));
        let mut texts = Vec::new();
        for (p, path) in procs {
            p.signal(libc::SIGINT);
            let (code, lines) = p.finish("capture");
            assert_eq!(code, 0, "{}", lines.join("\n"));
            let mut t: Vec<String> = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(String::from)
                .collect();
            t.sort();
            texts.push(t);
        }
        assert!(texts[0].len() >= 6, "tcpdump -i {iface}: {:?}", texts[0]);
        assert_eq!(texts[1], texts[0], "xcap -i {iface} vs tcpdump");
    }
}

/// The time stamps of a pcap file's packets, in file order (units of the
/// file's resolution).
fn pcap_times(path: &Path) -> Vec<u64> {
    let data = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let word = |o: usize| u32::from_le_bytes(data[at + o..at + o + 4].try_into().unwrap());
        out.push(u64::from(word(0)) * 1_000_000_000 + u64::from(word(4)));
        at += 16 + word(8) as usize;
    }
    out
}

#[test]
fn packets_from_every_cpu_come_out_in_time_order() {
    let _guard = serial();
    let net = Net::new();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    for hook in ["--xdp", "--tc"] {
        let file = net.path(&format!("order{hook}.pcap"));
        let x = xcap_listening(
            net.rx(),
            ["-i", RX_IF, hook, "-w", file.to_str().unwrap(), "icmp"],
        );
        // Each ping from another CPU: the receive path runs on the
        // sender's CPU, so the packets land in different rings, read
        // together at the end.
        let pings: Vec<String> = (0..12)
            .map(|i| {
                format!(
                    "taskset -c {} ip netns exec {} ping -q -c 1 10.200.0.2 >/dev/null",
                    i % cpus,
                    net.tx()
                )
            })
            .collect();
        sh(&pings.join("; "));
        x.signal(libc::SIGINT);
        let (code, lines) = x.finish("xcap");
        assert_eq!(code, 0, "{}", lines.join("\n"));
        let times = pcap_times(&file);
        let want = if hook == "--xdp" { 12 } else { 24 };
        assert_eq!(times.len(), want, "{}", lines.join("\n"));
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "{hook}: time stamps out of order: {times:?}"
        );
    }
}

/// `ip6 protochain 6` on chains longer than the filter's unrolled passes:
/// the rest of each walk runs in the filter's `bpf_loop` callback, the
/// filter inlined into the capture programs. xcap captures exactly what
/// tcpdump captures (tcpdump filters `protochain` in user space: the
/// kernel refuses its backward jump).
#[test]
fn protochain_on_long_chains_at_xdp_captures_what_tcpdump_captures() {
    protochain_on_long_chains("--xdp");
}

#[test]
fn protochain_on_long_chains_at_tc_captures_what_tcpdump_captures() {
    protochain_on_long_chains("--tc");
}

fn protochain_on_long_chains(hook: &str) {
    let _guard = serial();
    let net = Net::new();
    // 300 headers: 2.5 KB.
    sh(&format!(
        "ip -n {} link set {TX_IF} mtu 9000; ip -n {} link set {RX_IF} mtu 9000",
        net.tx(),
        net.rx()
    ));
    let mut frames = Vec::new();
    for hops in [0usize, 1, 3, 5, 8, 20, 40, 100, 300] {
        for last in [6u8, 17] {
            let mut f = Vec::new();
            f.extend_from_slice(&net.rx_mac);
            f.extend_from_slice(&net.tx_mac);
            f.extend_from_slice(&[0x86, 0xdd]);
            f.extend(padded_ipv6(2, 0, hops, last));
            frames.push(f);
        }
    }
    let (ours, theirs) = (
        net.path("chains.xcap.pcap"),
        net.path("chains.tcpdump.pcap"),
    );
    let td = tcpdump_writing(
        net.rx(),
        &["-i", RX_IF, "-Q", "in", "-U", "--immediate-mode"],
        &theirs,
        "ip6 protochain 6",
    );
    let xc = xcap_listening(
        net.rx(),
        [
            "-i",
            RX_IF,
            hook,
            "-Q",
            "in",
            "-v",
            "-w",
            ours.to_str().unwrap(),
            "ip6 protochain 6",
        ],
    );
    in_ns(net.tx(), move || send_frames(TX_IF, &frames));
    std::thread::sleep(Duration::from_millis(300));
    xc.signal(libc::SIGINT);
    td.signal(libc::SIGINT);
    let (code, lines) = xc.finish("xcap");
    assert_eq!(code, 0, "{hook}: {}", lines.join("\n"));
    td.finish("tcpdump");
    let sizes = lines
        .iter()
        .find(|l| l.contains("eBPF instructions at"))
        .unwrap_or_else(|| panic!("no filter line with -v: {}", lines.join("\n")));
    assert!(sizes.contains("(inlined"), "{hook}: {sizes}");
    let (ours, theirs) = (read_pcap(&ours), read_pcap(&theirs));
    assert_eq!(theirs.len(), 9, "{hook}: tcpdump saw {} of 9", theirs.len());
    assert_eq!(ours, theirs, "{hook}: {}", lines.join("\n"));
}

/// Pings `to` `count` times from namespace `ns` (`-W 1`: replies may not
/// come, and the exit status is not looked at).
fn ping(ns: &str, to: &str, count: u32) {
    output(
        exec(ns, "ping")
            .args(["-q", "-W", "1", "-i", "0.2", "-c"])
            .arg(count.to_string())
            .arg(to),
    );
}

/// Stops a capture with SIGINT; its stderr lines after a clean exit.
fn stop(x: Proc) -> Vec<String> {
    x.signal(libc::SIGINT);
    let (code, lines) = x.finish("xcap");
    assert_eq!(code, 0, "{}", lines.join("\n"));
    lines
}

const CLSACT: Option<&str> = Some("clsact");

/// A user's no-match cBPF filter (`tc filter ... bpf bytecode`): returns 0,
/// so classification goes on.
const NO_MATCH: &str = "1,6 0 0 0,";

/// With clsact filters: xcap's go at priority 1 on ingress and 65535 on
/// egress while it runs, and at exit nothing of xcap's is left: no filter,
/// and no qdisc where xcap made it; a user's own clsact qdisc and filters
/// stay exactly as they were, and packets still pass xcap's filters
/// (TC_ACT_UNSPEC goes on to the next filter).
#[test]
fn clsact_filters_go_at_exit_and_a_users_qdisc_and_filters_stay() {
    let _guard = serial();
    let net = Net::new();

    // No qdisc before: xcap makes it and removes it.
    let x = xcap_attached_by(net.rx(), CLSACT, ["-v", "-i", RX_IF, "--tc", "icmp"]);
    let (ingress, egress) = (
        xcap_filters(net.rx(), RX_IF, "ingress"),
        xcap_filters(net.rx(), RX_IF, "egress"),
    );
    assert!(
        ingress.len() == 1
            && ingress[0].contains("pref 1 bpf")
            && ingress[0].contains("direct-action"),
        "{ingress:?}"
    );
    assert!(
        egress.len() == 1
            && egress[0].contains("pref 65535 bpf")
            && egress[0].contains("direct-action"),
        "{egress:?}"
    );
    // The qdisc's creator says so in its filters' names.
    assert!(ingress[0].contains("+clsact"), "{ingress:?}");
    ping(net.tx(), "10.200.0.2", 2);
    let lines = stop(x);
    assert_eq!(count_line(&lines, "captured"), 4, "{}", lines.join("\n"));
    assert_nothing_attached(&net);

    // A user's clsact qdisc with a filter on each side.
    sh(&format!(
        "set -e; tc -n {ns} qdisc add dev {RX_IF} clsact
         tc -n {ns} filter add dev {RX_IF} ingress pref 5 bpf bytecode '{NO_MATCH}'
         tc -n {ns} filter add dev {RX_IF} egress pref 7 bpf bytecode '{NO_MATCH}'",
        ns = net.rx()
    ));
    let before = tc_state(net.rx(), RX_IF);
    let x = xcap_attached_by(net.rx(), CLSACT, ["-i", RX_IF, "--tc", "icmp"]);
    let ingress = tc_filters(net.rx(), RX_IF, "ingress");
    assert!(
        ingress.len() == 2 && ingress[0].contains(" xcap_tc:") && !ingress[0].contains("+clsact"),
        "xcap's first, not the qdisc's creator: {ingress:?}"
    );
    let egress = tc_filters(net.rx(), RX_IF, "egress");
    assert!(
        egress.len() == 2 && egress[1].contains(" xcap_tc_egress:"),
        "xcap's last: {egress:?}"
    );
    ping(net.tx(), "10.200.0.2", 2);
    let lines = stop(x);
    assert_eq!(count_line(&lines, "captured"), 4, "{}", lines.join("\n"));
    assert_eq!(tc_state(net.rx(), RX_IF), before);
    sh(&format!("tc -n {} qdisc del dev {RX_IF} clsact", net.rx()));
    assert_nothing_attached(&net);
}

/// With clsact filters, what tcpdump sees: xcap's ingress filter runs
/// before a user's filter that drops every packet (tcpdump sees a
/// received packet before TC), and its egress filter after one that drops
/// every packet (tcpdump sees a sent packet after TC): the same packets
/// as tcpdump, and the user's filters still do their work after xcap's.
#[test]
fn clsact_filters_see_what_tcpdump_sees_around_a_users_dropping_filters() {
    let _guard = serial();
    let net = Net::new();
    // The drops take ARP too: fixed neighbours.
    sh(&format!(
        "set -e; ip -n {tx} neigh replace 10.200.0.2 lladdr {rx_mac} dev {TX_IF}
         ip -n {rx} neigh replace 10.200.0.1 lladdr {tx_mac} dev {RX_IF}
         tc -n {rx} qdisc add dev {RX_IF} clsact
         tc -n {rx} filter add dev {RX_IF} ingress pref 5 bpf da bytecode '1,6 0 0 2,'
         tc -n {rx} filter add dev {RX_IF} egress pref 7 bpf da bytecode '1,6 0 0 2,'",
        tx = net.tx(),
        rx = net.rx(),
        rx_mac = mac_text(&net.rx_mac),
        tx_mac = mac_text(&net.tx_mac),
    ));
    let (theirs, ours) = (net.path("drop.tcpdump.pcap"), net.path("drop.xcap.pcap"));
    let td = tcpdump_writing(
        net.rx(),
        &["-i", RX_IF, "-n", "-U", "--immediate-mode", "-Q", "inout"],
        &theirs,
        "icmp",
    );
    let x = xcap_attached_by(
        net.rx(),
        CLSACT,
        ["-i", RX_IF, "--tc", "-w", ours.to_str().unwrap(), "icmp"],
    );
    // In: requests that the user's filter drops after xcap's.
    ping(net.tx(), "10.200.0.2", 3);
    // Out: requests that the user's filter drops before xcap's.
    ping(net.rx(), "10.200.0.1", 3);
    std::thread::sleep(Duration::from_millis(300));
    let lines = stop(x);
    td.signal(libc::SIGINT);
    let (code, tlines) = td.finish("tcpdump");
    assert_eq!(code, 0, "{}", tlines.join("\n"));
    let (mut theirs, mut ours) = (read_pcap(&theirs), read_pcap(&ours));
    theirs.sort();
    ours.sort();
    assert_eq!(theirs.len(), 3, "tcpdump: received requests only");
    assert_eq!(ours, theirs, "{}", lines.join("\n"));
    sh(&format!("tc -n {} qdisc del dev {RX_IF} clsact", net.rx()));
    assert_nothing_attached(&net);
}

/// SIGKILL leaves clsact filters (only links die with the process); the
/// next xcap's start removes them, on every interface of its network
/// namespace (here loopback too, which it does not capture), says so, and
/// leaves those of an xcap that still runs alone.
#[test]
fn clsact_filters_of_a_killed_xcap_go_at_the_next_start_and_a_running_ones_stay() {
    let _guard = serial();
    let net = Net::new();
    let killed = xcap_attached_by(net.rx(), CLSACT, ["-i", RX_IF, "-i", "lo", "--tc", "icmp"]);
    let running = xcap_attached_by(net.rx(), CLSACT, ["-i", RX_IF, "--tc", "icmp"]);
    killed.signal(libc::SIGKILL);
    let (code, _) = killed.finish("xcap after SIGKILL");
    assert_eq!(code, -1);
    // What a SIGKILL leaves: its filters (loopback: ingress only, as each
    // packet crosses both) and the qdiscs it created.
    assert_eq!(xcap_filters(net.rx(), RX_IF, "ingress").len(), 2);
    assert_eq!(xcap_filters(net.rx(), RX_IF, "egress").len(), 2);
    assert_eq!(xcap_filters(net.rx(), "lo", "ingress").len(), 1);

    let next = xcap_attached_by(net.rx(), CLSACT, ["-i", RX_IF, "--tc", "icmp"]);
    let said = next
        .lines
        .iter()
        .find(|l| l.contains("removed tc filters left by an xcap that was killed"))
        .unwrap_or_else(|| panic!("{}", next.lines.join("\n")))
        .clone();
    assert_eq!(said.matches(" xcap_tc").count(), 3, "{said}");
    assert!(said.contains("lo ingress xcap_tc:"), "{said}");
    assert_no_qdisc(net.rx(), "lo");
    // The running one's and the new one's.
    assert_eq!(xcap_filters(net.rx(), RX_IF, "ingress").len(), 2);
    assert_eq!(xcap_filters(net.rx(), RX_IF, "egress").len(), 2);
    stop(next);
    // The running one still captures, on its own filters.
    assert_eq!(xcap_filters(net.rx(), RX_IF, "ingress").len(), 1);
    ping(net.tx(), "10.200.0.2", 1);
    let lines = stop(running);
    assert_eq!(count_line(&lines, "captured"), 2, "{}", lines.join("\n"));
    assert_nothing_attached(&net);
    assert_no_qdisc(net.rx(), "lo");
}

/// With clsact filters, refusals are one line, exit 1, and leave nothing
/// of xcap's: a priority of xcap's held by a filter of another protocol
/// (found after the ingress filters went on, and a qdisc xcap made on
/// another interface), and an `ingress` qdisc where clsact must go. The
/// user's setup stays as it was.
#[test]
fn clsact_refusals_are_one_line_and_leave_the_users_setup_alone() {
    let _guard = serial();
    let net = Net::new();
    sh(&format!(
        "set -e; tc -n {ns} qdisc add dev {RX_IF} clsact
         tc -n {ns} filter add dev {RX_IF} egress pref 65535 protocol ip bpf bytecode '{NO_MATCH}'",
        ns = net.rx()
    ));
    let before = tc_state(net.rx(), RX_IF);
    let mut cmd = exec(net.rx(), xcap_bin());
    cmd.args(["-i", "lo", "-i", RX_IF, "--tc", "icmp"])
        .env(TC_ATTACH, "clsact")
        .stdin(Stdio::null());
    let out = output(&mut cmd);
    assert_one_error_line(
        &out,
        "xr0: cannot attach at tc egress: tc priority 65535 (xcap's: the last on egress) holds a filter of another kind or protocol",
    );
    assert_eq!(tc_state(net.rx(), RX_IF), before);
    assert_no_qdisc(net.rx(), "lo");
    assert!(xcap_filters(net.rx(), "lo", "ingress").is_empty());

    sh(&format!(
        "set -e; tc -n {ns} qdisc del dev {RX_IF} clsact; tc -n {ns} qdisc add dev {RX_IF} ingress",
        ns = net.rx()
    ));
    let before = tc_state(net.rx(), RX_IF);
    let out = output(&mut cmd);
    assert_one_error_line(
        &out,
        "xr0: cannot attach at tc ingress: its 'ingress' qdisc leaves no room for clsact",
    );
    assert_eq!(tc_state(net.rx(), RX_IF), before);
    assert_no_qdisc(net.rx(), "lo");
    sh(&format!("tc -n {} qdisc del dev {RX_IF} ingress", net.rx()));
    assert_nothing_attached(&net);
}
