//! `-i any` as interfaces come and go: xcap starts in a namespace whose
//! only interface, `lo`, is down (tcpdump captures there, and so must
//! xcap); then a veth pair is created, used and deleted, and another one
//! created and used, while it runs. Each packet must be in the files with
//! its interface: pcapng with an interface block per interface as it
//! appears, pcap in LINUX_SLL2 with the same records tcpdump `-i any`
//! writes, text lines (`-e`) as tcpdump `-i any -e` prints them, after
//! tcpdump's "listening on any" line; and xcap goes
//! on after the deletion, attached to what came next, and leaves nothing
//! attached at the end.
//!
//! The namespaces are private and deleted when the test ends; the traffic
//! is numbered UDP frames to port 7777 sent through a packet socket from
//! the peer namespace. Needs root, tcpdump (`-Z root`) and tshark.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcap_tests::netns::{exec, send_frames, spawn_in, Pair};
use xcap_tests::process::{run, run_text, Proc};
use xcap_tests::{eth_ipv4, tcpdump_path, xcap_bin};

const FILTER: &str = "udp port 7777";

/// Creates a veth pair, `name` in the capture namespace (B) and
/// `peer` in A, both up; `name`'s ifindex.
fn veth(pair: &Pair, name: &str, peer: &str) -> u32 {
    run(Command::new("ip").args([
        "link", "add", name, "netns", &pair.b, "type", "veth", "peer", "name", peer, "netns",
        &pair.a,
    ]));
    for (ns, dev) in [(&pair.b, name), (&pair.a, peer)] {
        run(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]));
    }
    let text = run_text(Command::new("ip").args(["-n", &pair.b, "-o", "link", "show", name]));
    text.split(':').next().unwrap().trim().parse().unwrap()
}

/// Frames `seqs` sent from the peer `peer` (they arrive on its twin).
fn send(pair: &Pair, peer: &'static str, seqs: std::ops::Range<u32>) {
    let frames: Vec<Vec<u8>> = seqs
        .map(|seq| {
            let mut payload = seq.to_be_bytes().to_vec();
            payload.resize(64, 0);
            eth_ipv4(17, [10, 9, 0, 1], [10, 9, 0, 2], 4000, 7777, &payload)
        })
        .collect();
    spawn_in(&pair.a, move || send_frames(peer, &frames))
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
}

/// Every record of a pcap file: (original length, bytes).
fn records(path: &Path) -> (i32, Vec<(u32, Vec<u8>)>) {
    let mut cap = pcap::Capture::from_file(path).unwrap();
    let link = cap.get_datalink().0;
    let mut out = Vec::new();
    while let Ok(p) = cap.next_packet() {
        out.push((p.header.len, p.data.to_vec()));
    }
    (link, out)
}

#[test]
fn any_follows_interfaces_that_come_and_go_and_says_which_each_packet_crossed() {
    // Namespace B, where the captures run, has only lo, down.
    let pair = Pair::new("xcap-any");
    let (ng, pc) = (pair.path("any.pcapng"), pair.path("any.pcap"));
    let td = pair.path("tcpdump.pcap");
    let start = |args: &[&str]| {
        let mut cmd = exec(&pair.b, xcap_bin());
        cmd.args(["-i", "any"]).args(args).arg(FILTER);
        let mut p = Proc::start_keeping_stdout(cmd);
        p.wait_for("xcap -i any", "listening on any (tc ingress");
        p
    };
    let mut xcaps = [
        start(&["-w", ng.to_str().unwrap()]),
        start(&["-w", pc.to_str().unwrap()]),
        start(&["-n", "-e"]),
    ];
    let tcpdump = {
        let mut cmd = exec(&pair.b, tcpdump_path());
        cmd.args(["-Z", "root", "-i", "any", "-n", "--immediate-mode", "-w"])
            .arg(&td)
            .arg(FILTER);
        let mut p = Proc::start(cmd);
        p.wait_listening("tcpdump");
        p
    };
    let tcpdump_text = {
        let mut cmd = exec(&pair.b, tcpdump_path());
        cmd.args(["-i", "any", "-n", "-e", "--immediate-mode", FILTER]);
        let mut p = Proc::start_keeping_stdout(cmd);
        p.wait_listening("tcpdump -e");
        p
    };
    let first = veth(&pair, "va0", "vp0");
    for x in &mut xcaps {
        x.wait_for("xcap", "listening on va0");
    }
    send(&pair, "vp0", 0..10);
    run(Command::new("ip").args(["-n", &pair.b, "link", "del", "va0"]));
    let second = veth(&pair, "vb0", "vq0");
    for x in &mut xcaps {
        x.wait_for("xcap", "listening on vb0");
    }
    send(&pair, "vq0", 10..15);
    std::thread::sleep(Duration::from_millis(1200));
    tcpdump.signal(libc::SIGINT);
    tcpdump_text.signal(libc::SIGINT);
    let mut outputs = Vec::new();
    let mut banners = Vec::new();
    for x in xcaps {
        x.signal(libc::SIGINT);
        let (code, lines, stdout) = x.finish_with_stdout("xcap");
        assert_eq!(code, 0, "{}", lines.join("\n"));
        assert!(
            lines.iter().any(|l| l == "15 packets captured"),
            "{lines:?}"
        );
        outputs.push(stdout);
        banners.push(lines.into_iter().find(|l| l.contains("listening on any")));
    }
    let (code, lines) = tcpdump.finish("tcpdump");
    assert_eq!(code, 0, "{}", lines.join("\n"));
    let (code, lines, tcpdump_lines) = tcpdump_text.finish_with_stdout("tcpdump -e");
    assert_eq!(code, 0, "{}", lines.join("\n"));

    // The link type said is the one written: Ethernet in pcapng, Linux
    // cooked v2 in pcap and text, as tcpdump -i any says.
    for (banner, link) in banners.iter().zip([
        "EN10MB (Ethernet)",
        "LINUX_SLL2 (Linux cooked v2)",
        "LINUX_SLL2 (Linux cooked v2)",
    ]) {
        let banner = banner.as_deref().unwrap_or("none");
        assert!(
            banner.ends_with(&format!("link-type {link}, snapshot length 262144 bytes")),
            "{banner}"
        );
    }

    // pcapng: each packet on its interface's block, named.
    let out = run_text(Command::new("tshark").arg("-r").arg(&ng).args([
        "-T",
        "fields",
        "-e",
        "frame.interface_name",
    ]));
    let names: Vec<&str> = out.lines().collect();
    let want: Vec<&str> = [vec!["va0"; 10], vec!["vb0"; 5]].concat();
    assert_eq!(names, want);

    // pcap: LINUX_SLL2, each record with its ifindex; tcpdump -i any's
    // records, byte for byte (tcpdump may lose the last packets of an
    // interface being deleted: each it kept must be one of ours).
    let (link, ours) = records(&pc);
    assert_eq!(link, 276, "LINKTYPE_LINUX_SLL2");
    let ifindexes: Vec<u32> = ours
        .iter()
        .map(|(_, d)| u32::from_be_bytes(d[4..8].try_into().unwrap()))
        .collect();
    assert_eq!(ifindexes, [vec![first; 10], vec![second; 5]].concat());
    let (their_link, theirs) = records(&td);
    assert_eq!(their_link, 276);
    assert!(theirs.len() >= 10, "tcpdump kept {} records", theirs.len());
    for record in &theirs {
        assert!(ours.contains(record), "tcpdump's {record:?} is not xcap's");
    }

    // Text: the interface's name and direction first, then (-e) the
    // cooked header, as tcpdump -i any -e prints them: each of tcpdump's
    // lines is one of xcap's, time stamps aside.
    let lines: Vec<&str> = outputs[2].lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 15, "{}", outputs[2]);
    for (n, line) in lines.iter().enumerate() {
        let (name, ifindex) = if n < 10 {
            ("va0", first)
        } else {
            ("vb0", second)
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            &fields[1..5],
            [name, "P", "ifindex", &ifindex.to_string()],
            "{line}"
        );
    }
    let untimed = |l: &str| l.split_once(' ').map(|(_, rest)| rest.to_string());
    let ours: Vec<String> = lines.iter().filter_map(|l| untimed(l)).collect();
    let theirs: Vec<String> = tcpdump_lines.lines().filter_map(untimed).collect();
    assert!(theirs.len() >= 10, "tcpdump printed {tcpdump_lines}");
    for line in &theirs {
        assert!(
            ours.contains(line),
            "tcpdump's line {line:?} is not among xcap's {ours:#?}"
        );
    }

    // Reading the pcap back prints what tcpdump -r prints: names by
    // index on this host (`?` for the deleted va0), the cooked header.
    let read = |program: &Path| {
        let mut cmd = exec(&pair.b, program);
        cmd.args(["-n", "-e", "-r"]).arg(&pc);
        run_text(&mut cmd)
    };
    assert_eq!(read(&xcap_bin()), read(&tcpdump_path()));

    // Nothing left on the interface that stayed.
    let attached = run_text(exec(&pair.b, "bpftool").args(["net", "show", "dev", "vb0"]));
    assert!(!attached.contains("xcap"), "{attached}");
}

#[test]
fn any_with_xdp_attaches_every_interface_and_those_that_come_and_go() {
    // As above, at XDP: lo (down) at the start, then a pair created, used
    // and deleted, then another; each packet in the pcapng file on its
    // interface's XDP block, and nothing attached at the end.
    let pair = Pair::new("xcap-anyx");
    let ng = pair.path("any.pcapng");
    let mut cmd = exec(&pair.b, xcap_bin());
    cmd.args(["-i", "any", "--xdp", "-w"]).arg(&ng).arg(FILTER);
    let mut x = Proc::start(cmd);
    x.wait_for("xcap -i any --xdp", "listening on any (xdp");
    veth(&pair, "xa0", "xp0");
    x.wait_for("xcap", "listening on xa0 (xdp");
    send(&pair, "xp0", 0..6);
    run(Command::new("ip").args(["-n", &pair.b, "link", "del", "xa0"]));
    veth(&pair, "xb0", "xq0");
    x.wait_for("xcap", "listening on xb0 (xdp");
    send(&pair, "xq0", 6..10);
    std::thread::sleep(Duration::from_millis(1200));
    x.signal(libc::SIGINT);
    let (code, lines) = x.finish("xcap");
    assert_eq!(code, 0, "{}", lines.join("\n"));
    assert!(
        lines.iter().any(|l| l == "10 packets captured"),
        "{lines:?}"
    );
    let out = run_text(Command::new("tshark").arg("-r").arg(&ng).args([
        "-T",
        "fields",
        "-e",
        "frame.interface_name",
        "-e",
        "frame.interface_description",
    ]));
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 10, "{out}");
    for (n, row) in rows.iter().enumerate() {
        let name = if n < 6 { "xa0" } else { "xb0" };
        assert!(row.starts_with(&format!("{name}\txcap xdp")), "{row}");
    }
    let attached = run_text(exec(&pair.b, "bpftool").args(["net", "show", "dev", "xb0"]));
    assert!(!attached.contains("xcap"), "{attached}");
}
