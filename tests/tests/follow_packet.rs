//! One packet followed across hooks (issue 17, part 3): an interface hook
//! (`--tc` or `--xdp` on `-i IFACE`) and tracing hooks in one run, one
//! pcapng file, each record with the packet's id (`epb_packetid`, tshark's
//! `frame.packet_id`), the same at every hook the packet passes while its
//! skb lives.
//!
//! Each test makes two private network namespaces joined by a veth pair
//! (10.234.N.1 on side A, 10.234.N.2 on side B); B's nftables input chain
//! drops `udp dport 9999`. Datagrams of distinct lengths are sent from A
//! with python3, so that each record can be told to belong to one of them
//! (the skb's address alone does not: the kernel reuses a freed skb for
//! the next datagram). xcap runs inside B (`--netns`).
//!
//! Tracing hooks see every namespace, so the tests run one at a time and
//! each uses its own subnet. Needs root, nft, python3, tshark, tc and
//! bpftool; every refusal by the kernel is a failure, except the host's
//! refusal of trampolines (fentry), whose one-line refusal is then the
//! contract.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcap_tests::netns::{drop_udp_input, exec, Pair};
use xcap_tests::process::{output, run, run_text, serial, Proc};
use xcap_tests::programs::{loaded_programs, programs_left};
use xcap_tests::{assert_one_error_line, xcap_bin};

/// Side B's interface, where xcap captures.
const B_IF: &str = "vb";

/// Sides A and B (see the top), and the subnet.
struct Net {
    pair: Pair,
    subnet: String,
}

impl Net {
    fn new() -> Net {
        let pair = Pair::new("xcap-follow");
        let subnet = pair.subnet(234);
        pair.link("va", B_IF);
        pair.address("va", B_IF, &subnet);
        pair.up("va", B_IF);
        drop_udp_input(&pair.b, "xcapf", 9999);
        Net { pair, subnet }
    }

    /// The datagrams to B's port 9999 (tracing hooks see every namespace:
    /// other tests' datagrams to port 9999 are left out).
    fn filter(&self) -> String {
        format!("udp dst port 9999 and dst host {}.2", self.subnet)
    }

    /// Sends one UDP datagram from A to B's port 9999 per payload length.
    fn send(&self, lengths: &[usize]) {
        let script = format!(
            "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor n in {lengths:?}:\n  s.sendto(b'x'*n,('{}.2',9999))\n  time.sleep(0.05)\n",
            self.subnet
        );
        run(exec(&self.pair.a, "python3").args(["-c", &script]));
    }
}

/// xcap inside B with `args`; waits until both captures report their
/// hooks attached (the tracing hooks start first, the interface last).
fn start(net: &Net, args: &[&str]) -> Proc {
    let mut cmd = Command::new(xcap_bin());
    cmd.args(["--netns", &net.pair.b]).args(args);
    Proc::start_hooked(cmd, "listening on")
}

/// SIGINT once the packets had time to arrive: the exit status, stderr
/// and stdout.
fn finish(p: Proc) -> (i32, Vec<String>, String) {
    std::thread::sleep(Duration::from_millis(500));
    p.signal(libc::SIGINT);
    p.finish_with_stdout("xcap")
}

/// The file's records: (interface name, packet id, UDP payload length,
/// comment), in file order.
fn records(path: &Path) -> Vec<(String, u64, usize, String)> {
    let text = run_text(Command::new("tshark").arg("-r").arg(path).args([
        "-T",
        "fields",
        "-e",
        "frame.interface_name",
        "-e",
        "frame.packet_id",
        "-e",
        "udp.length",
        "-e",
        "frame.comment",
    ]));
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let id = f.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            let udp = f.get(2).and_then(|s| s.parse::<usize>().ok()).unwrap_or(8);
            let comment = f.get(3).copied().unwrap_or("").to_owned();
            (f[0].to_owned(), id, udp - 8, comment)
        })
        .collect()
}

/// Whether `id` is a kernel address (an skb's): the top bit set (x86-64
/// kernels live in the upper half; their top 16 bits are all set with
/// 4-level paging, not with 5-level paging, as in the guests).
fn is_kernel_address(id: u64) -> bool {
    id >> 63 == 1
}

/// The records of each datagram, by payload length.
fn by_datagram(
    records: &[(String, u64, usize, String)],
) -> BTreeMap<usize, Vec<&(String, u64, usize, String)>> {
    let mut map: BTreeMap<usize, Vec<_>> = BTreeMap::new();
    for r in records {
        map.entry(r.2).or_default().push(r);
    }
    map
}

/// Every datagram dropped by B's rule was seen once at each of `hooks`
/// (interface names in the file) with one id, an skb address, and once at
/// kfree_skb with the reason NETFILTER_DROP; and the counters add up.
fn assert_each_datagram_followed(
    file: &Path,
    stderr: &[String],
    lengths: &[usize],
    hooks: &[&str],
) {
    let recs = records(file);
    let datagrams = by_datagram(&recs);
    assert_eq!(
        datagrams.keys().copied().collect::<Vec<_>>(),
        lengths,
        "{recs:#?}"
    );
    for (len, seen) in &datagrams {
        let mut at: Vec<&str> = seen.iter().map(|r| r.0.as_str()).collect();
        at.sort_unstable();
        let mut want = hooks.to_vec();
        want.push("kfree_skb:EN10MB");
        want.sort_unstable();
        assert_eq!(at, want, "datagram of {len} bytes: {seen:#?}");
        let id = seen[0].1;
        assert!(is_kernel_address(id), "{id:#x}: {seen:#?}");
        assert!(seen.iter().all(|r| r.1 == id), "ids differ: {seen:#?}");
        let drop = seen.iter().find(|r| r.0 == "kfree_skb:EN10MB").unwrap();
        assert!(drop.3.contains("reason=NETFILTER_DROP"), "{drop:?}");
    }
    let n = recs.len();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    for counter in [
        format!("{n} packet{} captured", plural(n)),
        format!("{n} packet{} received by filter", plural(n)),
        "0 packets dropped by kernel".to_owned(),
    ] {
        assert!(stderr.contains(&counter), "{counter:?} not in {stderr:#?}");
    }
}

/// Whether this kernel refuses fentry programs (the host does): xcap's
/// one-line refusal, or `None` when it attached (and `timeout` ended it).
fn fentry_refusal() -> Option<String> {
    let probe = output(Command::new("timeout").args([
        "3",
        xcap_bin().to_str().unwrap(),
        "--fentry",
        "ip_rcv",
        "udp port 1",
    ]));
    let err = String::from_utf8_lossy(&probe.stderr).into_owned();
    (probe.status.code() == Some(1) && err.contains("the kernel refuses fentry programs"))
        .then_some(err)
}

/// The programs a run with interface hooks and `--trace kfree_skb`,
/// `--trace netif_receive_skb` or `--fentry` loads (names are cut to 15
/// characters by the kernel).
const PROGRAMS: [&str; 5] = [
    "name xcap_tc",
    "name xcap_xdp",
    "name xcap_tp_kfree_s",
    "name xcap_tp_netif_r",
    "name xcap_fentry",
];

/// The ids of those programs loaded now.
fn xcap_programs() -> BTreeSet<u64> {
    loaded_programs(&PROGRAMS).into_keys().collect()
}

/// Nothing of the xcap that ran since `before` is left: none of the
/// programs loaded since is still loaded without a process holding it
/// (other xcaps may run on this machine; an exited xcap holds nothing, so
/// what stays is attached where no process holds it: netlink, a pin), no
/// tc filter or clsact qdisc on B's interface, no XDP program on it.
fn assert_nothing_attached(net: &Net, before: &BTreeSet<u64>) {
    let mut left = BTreeSet::new();
    for _ in 0..20 {
        let now: BTreeSet<u64> = programs_left(&PROGRAMS).into_keys().collect();
        left = &now - before;
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(left.is_empty(), "left loaded: {left:?}");
    let b = &net.pair.b;
    for what in [
        &["qdisc", "show", "dev", B_IF][..],
        &["filter", "show", "dev", B_IF, "ingress"],
        &["filter", "show", "dev", B_IF, "egress"],
    ] {
        let text = run_text(Command::new("tc").args(["-n", b]).args(what));
        assert!(
            !text.contains("clsact") && !text.contains("xcap"),
            "{what:?}: {text}"
        );
    }
    let link = run_text(Command::new("ip").args(["-n", b, "-d", "link", "show", B_IF]));
    assert!(!link.contains("prog/xdp"), "{link}");
}

#[test]
fn a_dropped_datagram_has_one_id_at_tc_at_netif_receive_skb_and_at_kfree_skb() {
    let _g = serial();
    let net = Net::new();
    let file = net.pair.path("followed.pcapng");
    let before = xcap_programs();
    let p = start(
        &net,
        &[
            "-i",
            B_IF,
            "--tc",
            "--trace",
            "netif_receive_skb",
            "--trace",
            "kfree_skb",
            "-w",
            file.to_str().unwrap(),
            &net.filter(),
        ],
    );
    let lengths = [5, 17, 29];
    net.send(&lengths);
    let (code, stderr, _) = finish(p);
    assert_eq!(code, 0, "{stderr:#?}");
    assert_each_datagram_followed(
        &file,
        &stderr,
        &lengths,
        &[B_IF, "netif_receive_skb:EN10MB"],
    );
    assert_nothing_attached(&net, &before);
    xcap_tests::report(
        "follow: 3 datagrams dropped by nftables, each at tc, netif_receive_skb and kfree_skb (NETFILTER_DROP) with one skb id in one pcapng",
    );
}

#[test]
fn text_lines_name_the_hook_come_in_time_order_and_end_with_the_packet_id() {
    let _g = serial();
    let net = Net::new();
    let p = start(
        &net,
        &[
            "-i",
            B_IF,
            "--tc",
            "-Q",
            "in",
            "--trace",
            "kfree_skb",
            &net.filter(),
        ],
    );
    net.send(&[11]);
    let (code, stderr, out) = finish(p);
    assert_eq!(code, 0, "{stderr:#?}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let id_of = |l: &str| l.split("[id ").nth(1).map(|s| s[..18].to_owned());
    // In time order: TC ingress before the drop in the input chain.
    let (tc, drop) = (lines[0], lines[1]);
    assert!(tc.contains(" tc vb In "), "{out}");
    assert!(
        drop.contains(" kfree_skb reason NETFILTER_DROP vb "),
        "{out}"
    );
    assert!(tc.ends_with(']') && id_of(tc).is_some(), "{tc}");
    assert_eq!(id_of(tc), id_of(drop), "{out}");
    let id = u64::from_str_radix(&id_of(tc).unwrap()[2..], 16).unwrap();
    assert!(is_kernel_address(id), "{out}");
}

#[test]
fn xdp_records_have_ids_of_their_own_next_to_the_skb_ids() {
    let _g = serial();
    let net = Net::new();
    let file = net.pair.path("xdp.pcapng");
    let before = xcap_programs();
    let p = start(
        &net,
        &[
            "-i",
            B_IF,
            "--xdp",
            "--trace",
            "kfree_skb",
            "-w",
            file.to_str().unwrap(),
            &net.filter(),
        ],
    );
    let lengths = [7, 19];
    net.send(&lengths);
    let (code, stderr, _) = finish(p);
    assert_eq!(code, 0, "{stderr:#?}");
    let recs = records(&file);
    let xdp: Vec<_> = recs.iter().filter(|r| r.0 == B_IF).collect();
    let drops: Vec<_> = recs.iter().filter(|r| r.0 == "kfree_skb:EN10MB").collect();
    assert_eq!((xdp.len(), drops.len()), (2, 2), "{recs:#?}\n{stderr:#?}");
    for r in &xdp {
        // The CPU in the top 16 bits, the CPU's count of matches below.
        assert!(
            !is_kernel_address(r.1) && r.1 & 0xffff_ffff_ffff != 0,
            "{r:?}"
        );
    }
    assert_ne!(xdp[0].1, xdp[1].1, "{xdp:?}");
    assert!(drops.iter().all(|r| is_kernel_address(r.1)), "{drops:?}");
    assert_nothing_attached(&net, &before);
}

/// In the guests, whose kernels run trampolines: the same with `--fentry
/// ip_rcv` in place of the receive tracepoint (in the matrix's
/// trampolines plan); on the host, which refuses them, the one-line
/// refusal, with nothing attached at TC either.
#[test]
fn a_dropped_datagram_has_one_id_at_tc_at_fentry_ip_rcv_and_at_kfree_skb_or_is_refused_in_one_line()
{
    let _g = serial();
    let net = Net::new();
    let file = net.pair.path("fentry.pcapng");
    let filter = net.filter();
    let args = [
        "--netns",
        &net.pair.b,
        "-i",
        B_IF,
        "--tc",
        "--fentry",
        "ip_rcv",
        "--trace",
        "kfree_skb",
        "-w",
        file.to_str().unwrap(),
        &filter,
    ];
    let before = xcap_programs();
    if let Some(err) = fentry_refusal() {
        assert_eq!(err.lines().count(), 1, "{err}");
        let out = output(Command::new(xcap_bin()).args(args));
        assert_one_error_line(&out, "the kernel refuses fentry programs");
        assert_nothing_attached(&net, &before);
        xcap_tests::report("follow: this kernel refuses fentry programs; --tc with --fentry refused in one line, nothing attached");
        return;
    }
    let p = start(&net, &args[2..]);
    let lengths = [3, 23, 43];
    net.send(&lengths);
    let (code, stderr, _) = finish(p);
    assert_eq!(code, 0, "{stderr:#?}");
    assert_each_datagram_followed(&file, &stderr, &lengths, &[B_IF, "fentry:ip_rcv:EN10MB"]);
    assert_nothing_attached(&net, &before);
    xcap_tests::report(
        "follow: 3 datagrams dropped by nftables, each at tc, fentry ip_rcv and kfree_skb (NETFILTER_DROP) with one skb id in one pcapng",
    );
}

/// xcap with `args` refuses in one line containing `want`, prints
/// nothing, and leaves nothing loaded or attached.
fn refused(net: &Net, args: &[&str], want: &str) {
    let before = xcap_programs();
    let out = output(
        Command::new(xcap_bin())
            .args(["--netns", &net.pair.b])
            .args(args),
    );
    assert_one_error_line(&out, want);
    assert!(out.stdout.is_empty(), "{args:?}");
    assert_nothing_attached(net, &before);
}

#[test]
fn bad_combinations_fail_with_one_line_and_attach_nothing() {
    let _g = serial();
    let net = Net::new();
    let file = net.pair.path("f.pcap");
    refused(
        &net,
        &["-i", B_IF, "--tc", "--trace", "kfree_skbb", "udp"],
        "unknown tracepoint 'kfree_skbb'",
    );
    refused(
        &net,
        &["-i", "nosuch0", "--tc", "--trace", "kfree_skb", "udp"],
        "nosuch0",
    );
    refused(
        &net,
        &[
            "-i",
            B_IF,
            "--tc",
            "--trace",
            "kfree_skb",
            "-w",
            file.to_str().unwrap(),
            "udp",
        ],
        "interface and tracing hooks in one run write pcapng",
    );
    refused(
        &net,
        &["-i", B_IF, "--tc", "--trace", "kfree_skb", "udp porta 9"],
        "syntax error",
    );
    refused(
        &net,
        &[
            "-i",
            B_IF,
            "--xdp",
            "-Q",
            "out",
            "--trace",
            "kfree_skb",
            "udp",
        ],
        "XDP sees received packets only",
    );
    refused(
        &net,
        &["-i", B_IF, "--trace", "kfree_skb", "udp"],
        "interfaces do not apply to tracing hooks alone",
    );
    assert!(!file.exists());
}
