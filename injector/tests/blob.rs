//! Filter blobs (`injector::blob`) with the real tools, as root:
//!
//! - the XDP and TC program objects load with `bpftool prog load` (libbpf),
//!   in a private mount namespace with its own bpffs (pins vanish with it);
//! - on a veth pair between two private network namespaces, the XDP object
//!   attached with `ip link set dev X xdp obj F.o sec xdp` and the TC object
//!   attached with `tc filter add dev X ingress bpf da obj F.o sec tc` let
//!   ICMP through and drop TCP (filter `icmp`), and the reverse with
//!   `invert`;
//! - the function object links with `bpftool gen object` against a C caller
//!   built by clang from `tests/fixtures/blob_caller.c`, the linked programs
//!   load, and under BPF_PROG_TEST_RUN (`bpftool prog run`) return what
//!   libpcap's interpreter returns.
//!
//! A missing tool (bpftool, ip, tc, ping, clang, unshare) or a kernel refusal
//! fails the test.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cbpf2ebpf::libpcap;
use cbpf2ebpf::{Hook, Mode};
use injector::blob::{compile_filter, BlobError, BlobOptions, FilterBlob, ProgramKind};
use xcap_tests::netns::{exec, in_ns, mac_of, mac_text, Pair};
use xcap_tests::process::{bpftool_link, output, run_text, with_bpffs};
use xcap_tests::TempDir;

fn blob(expr: &str, opts: &BlobOptions) -> FilterBlob {
    compile_filter(expr, opts).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

// --- Packets ----------------------------------------------------------------

fn checksum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
        .sum();
    while s > 0xffff {
        s = (s >> 16) + (s & 0xffff);
    }
    !(s as u16)
}

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    p.extend_from_slice(&ethertype.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0, 10, 201, 0, 1, 10, 201, 0, 2]);
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    eth(0x0800, &h)
}

fn tcp(dport: u16, flags: u8) -> Vec<u8> {
    let mut t = vec![0x9c, 0x40];
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    ipv4(6, &t)
}

fn udp(dport: u16) -> Vec<u8> {
    let mut u = vec![0x9c, 0x40];
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&[0, 12, 0, 0, 1, 2, 3, 4]);
    ipv4(17, &u)
}

/// (name, frame) pairs covering the filters below.
fn packets() -> Vec<(&'static str, Vec<u8>)> {
    let icmp = ipv4(1, &[8, 0, 0, 0, 0, 1, 0, 1, b'x', b'y', b'z', b'w']);
    let mut ip6 = vec![0x60, 0, 0, 0, 0, 8, 58, 64];
    ip6.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ip6.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    ip6.extend_from_slice(&[128, 0, 0, 0, 0, 1, 0, 1]);
    let arp = eth(
        0x0806,
        &[
            0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 201, 0, 1, 0, 0, 0, 0, 0, 0, 10, 201, 0,
            2,
        ],
    );
    // IPv6 with 40 hop-by-hop headers before TCP or UDP: past the
    // filter's unrolled passes of `ip6 protochain`, into its callback.
    let chain = |last: u8| {
        let mut p = vec![0x60, 0, 0, 0, 1, 84, 0, 64];
        p.resize(40, 0xfe);
        for h in 0..40 {
            p.extend_from_slice(&[if h == 39 { last } else { 0 }, 0, 0, 0, 0, 0, 0, 0]);
        }
        p.resize(p.len() + 20, 0);
        eth(0x86dd, &p)
    };
    vec![
        ("icmp", icmp),
        ("ipv6-40-hops-tcp", chain(6)),
        ("ipv6-40-hops-udp", chain(17)),
        ("tcp-syn-80", tcp(80, 0x02)),
        ("tcp-ack-443", tcp(443, 0x10)),
        ("udp-53", udp(53)),
        ("arp", arp),
        ("icmp6", eth(0x86dd, &ip6)),
        // Cut inside the TCP header (the flags are past the end). Shorter
        // IPv4 frames do not get through BPF_PROG_TEST_RUN for TC.
        ("tcp-syn-80-truncated", tcp(80, 0x02)[..40].to_vec()),
    ]
}

// --- (1) Program objects load with bpftool ----------------------------------

/// `bpftool prog load F.o` and `bpftool prog show` of the pinned program:
/// (type, name, has BTF).
fn bpftool_load(obj: &Path) -> (String, String, bool) {
    let out = with_bpffs(&format!(
        "bpftool prog load {o} \"$D/p\"; bpftool -j prog show pinned \"$D/p\"; rm \"$D/p\"",
        o = obj.display()
    ));
    let field = |key: &str| -> String {
        let at = out
            .find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("no {key} in {out}"));
        let rest = &out[at + key.len() + 3..];
        rest.trim_start_matches('"')
            .split(['"', ',', '}'])
            .next()
            .unwrap()
            .to_string()
    };
    (field("type"), field("name"), out.contains("\"btf_id\":"))
}

#[test]
fn program_objects_load_with_bpftool() {
    let dir = TempDir::new("xcap-blob");
    let cases: &[(&str, ProgramKind, Mode, bool, &str, &str)] = &[
        (
            "icmp",
            ProgramKind::Xdp,
            Mode::Direct,
            false,
            "xdp",
            "xcap_xdp",
        ),
        (
            "tcp port 80 and inbound",
            ProgramKind::Xdp,
            Mode::Direct,
            true,
            "xdp",
            "xcap_xdp",
        ),
        (
            "icmp",
            ProgramKind::Tc,
            Mode::Direct,
            false,
            "sched_cls",
            "xcap_tc",
        ),
        (
            "udp port 53 or inbound",
            ProgramKind::Tc,
            Mode::Skb,
            true,
            "sched_cls",
            "xcap_tc",
        ),
        // A loop: the filter's callback lands in .text.
        (
            "ip6 protochain 6",
            ProgramKind::Xdp,
            Mode::Direct,
            false,
            "xdp",
            "xcap_xdp",
        ),
        (
            "ip6 protochain 17",
            ProgramKind::Tc,
            Mode::Skb,
            false,
            "sched_cls",
            "xcap_tc",
        ),
        // A big filter: 200 hosts.
        (
            "__hosts__",
            ProgramKind::Tc,
            Mode::Direct,
            false,
            "sched_cls",
            "xcap_tc",
        ),
    ];
    for (i, &(expr, kind, mode, invert, ty, name)) in cases.iter().enumerate() {
        let expr = if expr == "__hosts__" {
            (0..200)
                .map(|h| format!("host 10.0.{}.{}", h / 250, h % 250 + 1))
                .collect::<Vec<_>>()
                .join(" or ")
        } else {
            expr.to_string()
        };
        let opts = BlobOptions {
            mode,
            ..BlobOptions::for_program(kind)
        };
        let b = blob(&expr, &opts);
        let bytes = b.program_object(kind, invert).unwrap();
        // The filter is inlined: no .text function, no call; only a loop
        // callback there.
        let elf = object::File::parse(&bytes[..]).unwrap();
        let text_functions: Vec<String> = object::Object::symbols(&elf)
            .filter(|s| {
                object::ObjectSymbol::kind(s) == object::SymbolKind::Text
                    && object::ObjectSymbol::section_index(s)
                        == object::Object::section_by_name(&elf, ".text")
                            .map(|t| object::ObjectSection::index(&t))
            })
            .map(|s| object::ObjectSymbol::name(&s).unwrap().to_string())
            .collect();
        let want: &[&str] = if b.callback().is_some() {
            &["xcap_filter_loop"]
        } else {
            &[]
        };
        assert_eq!(text_functions, want, "{expr}: the filter was not inlined");
        let obj = dir.file(&format!("p{i}.o"), &bytes);
        let (got_ty, got_name, btf) = bpftool_load(&obj);
        assert_eq!((got_ty.as_str(), got_name.as_str()), (ty, name), "{expr}");
        assert!(btf, "{expr}: loaded without BTF");
    }
}

#[test]
fn blobs_refuse_bad_expressions_programs_and_names_with_the_reason() {
    let xdp = BlobOptions::for_program(ProgramKind::Xdp);
    assert!(
        matches!(compile_filter("tcp port", &xdp), Err(BlobError::Compile(m)) if m.contains("syntax error"))
    );
    let tc = blob("icmp", &BlobOptions::for_program(ProgramKind::Tc));
    let e = tc.program_object(ProgramKind::Xdp, false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "an XDP program needs a filter translated for the xdp hook, not tc ingress"
    );
    let skb = blob(
        "icmp",
        &BlobOptions {
            mode: Mode::Skb,
            ..BlobOptions::default()
        },
    );
    assert!(skb.program_object(ProgramKind::Xdp, false).is_err());
    assert!(skb.program_object(ProgramKind::Tc, false).is_ok());
    assert!(matches!(
        skb.function_object("1x"),
        Err(BlobError::BadName(_))
    ));
    // Ancillary loads need a hook.
    assert!(matches!(
        compile_filter("inbound", &BlobOptions::default()),
        Err(BlobError::Translate(_))
    ));
    let any = blob("icmp", &BlobOptions::default());
    assert_eq!(any.hook(), Hook::None);
    assert!(any.program_object(ProgramKind::Xdp, false).is_ok());
    assert!(any.program_object(ProgramKind::Tc, true).is_ok());
    assert_eq!(any.bytes().len(), 8 * any.insns().len());
}

#[test]
fn far_jumps_in_blobs_are_jump_islands_unless_gotol_is_asked_for() {
    // 1000 unrolled protochain iterations: 45,000 instructions, far jumps.
    let opts = BlobOptions {
        loops: cbpf2ebpf::LoopForm::Unrolled,
        max_loop_iterations: 1000,
        ..BlobOptions::default()
    };
    let gotol = cbpf2ebpf::ebpf::op::JMP32 | cbpf2ebpf::ebpf::op::JA;
    let gotols = |b: &FilterBlob| b.insns().iter().filter(|i| i.code == gotol).count();
    let portable = blob("ip6 protochain 6", &opts);
    assert!(portable.insns().len() > 32767);
    assert_eq!(gotols(&portable), 0, "a gotol in a blob for any kernel");
    let wide = blob(
        "ip6 protochain 6",
        &BlobOptions {
            gotol: true,
            ..opts
        },
    );
    assert!(gotols(&wide) > 0);
}

// --- (2) Real traffic on a veth pair ------------------------------------------

/// Two network namespaces joined by a veth pair, A (10.201.0.1/24) and B
/// (10.201.0.2/24), with static neighbour entries (so a filter may drop
/// ARP). Deleted on drop, also when the test panics.
struct VethPair {
    pair: Pair,
    dev_b: String,
}

const ADDR_A: &str = "10.201.0.1";
const ADDR_B: &str = "10.201.0.2";
const TCP_PORT: u16 = 80;

impl VethPair {
    fn new() -> Self {
        let pair = Pair::new("xcap-blob");
        // Names of their own: the tests run in parallel.
        let id = format!("{}{}", std::process::id() % 100_000, pair.n);
        let (dev_a, dev_b) = (format!("xa{id}"), format!("xb{id}"));
        pair.link(&dev_a, &dev_b);
        for (ns, dev, addr) in [(&pair.a, &dev_a, ADDR_A), (&pair.b, &dev_b, ADDR_B)] {
            run_text(Command::new("ip").args([
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                dev,
            ]));
        }
        pair.up(&dev_a, &dev_b);
        let mac_a = mac_text(&mac_of(&pair.a, &dev_a));
        let mac_b = mac_text(&mac_of(&pair.b, &dev_b));
        for (ns, dev, addr, mac) in [
            (&pair.a, &dev_a, ADDR_B, &mac_b),
            (&pair.b, &dev_b, ADDR_A, &mac_a),
        ] {
            run_text(Command::new("ip").args([
                "-n",
                ns,
                "neigh",
                "replace",
                addr,
                "lladdr",
                mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ]));
        }
        VethPair { pair, dev_b }
    }

    fn ip_b(&self, args: &[&str]) -> String {
        run_text(Command::new("ip").args(["-n", &self.pair.b]).args(args))
    }

    fn tc_b(&self, args: &str) -> String {
        run_text(exec(&self.pair.b, "tc").args(args.split_whitespace()))
    }

    /// Whether two pings from A to B get answers.
    fn ping_passes(&self) -> bool {
        let out = output(
            exec(&self.pair.a, "ping")
                .args(["-q", "-n", "-c", "2", "-i", "0.2", "-W", "1", ADDR_B]),
        );
        match out.status.code() {
            Some(0) => true,
            Some(1) => false,
            _ => panic!("ping failed: {}", String::from_utf8_lossy(&out.stderr)),
        }
    }

    /// Whether a TCP connection from A to a listener in B completes within
    /// 1.5 s (a dropped SYN is retransmitted only after 1 s).
    fn tcp_passes(&self, listener: &TcpListener) -> bool {
        let addr: SocketAddr = format!("{ADDR_B}:{TCP_PORT}").parse().unwrap();
        let result = in_ns(&self.pair.a, move || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(1500))
        });
        // Empty the backlog.
        listener.set_nonblocking(true).unwrap();
        while listener.accept().is_ok() {}
        match result {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => false,
            Err(e) => panic!("connect to {addr}: {e}"),
        }
    }

    fn listen_b(&self) -> TcpListener {
        in_ns(&self.pair.b, || TcpListener::bind((ADDR_B, TCP_PORT))).expect("listen in B")
    }

    /// (ping passes, TCP passes)
    fn traffic(&self, listener: &TcpListener) -> (bool, bool) {
        (self.ping_passes(), self.tcp_passes(listener))
    }
}

#[test]
fn xdp_object_attached_by_ip_passes_icmp_and_drops_tcp_and_inverted_the_reverse() {
    let dir = TempDir::new("xcap-blob");
    let b = blob("icmp", &BlobOptions::for_program(ProgramKind::Xdp));
    let pass = dir.file("xdp.o", &b.program_object(ProgramKind::Xdp, false).unwrap());
    let invert = dir.file(
        "xdp-invert.o",
        &b.program_object(ProgramKind::Xdp, true).unwrap(),
    );

    let pair = VethPair::new();
    let listener = pair.listen_b();
    assert_eq!(pair.traffic(&listener), (true, true), "without a program");

    for (obj, expected) in [(&pass, (true, false)), (&invert, (false, true))] {
        let obj = obj.to_str().unwrap();
        pair.ip_b(&[
            "link",
            "set",
            "dev",
            &pair.dev_b,
            "xdp",
            "obj",
            obj,
            "sec",
            "xdp",
        ]);
        let shown = pair.ip_b(&["link", "show", "dev", &pair.dev_b]);
        assert!(
            shown.contains("prog/xdp id") && shown.contains("name xcap_xdp"),
            "not attached: {shown}"
        );
        assert_eq!(pair.traffic(&listener), expected, "{obj}: (ping, tcp)");
        pair.ip_b(&["link", "set", "dev", &pair.dev_b, "xdp", "off"]);
    }
    assert_eq!(pair.traffic(&listener), (true, true), "after xdp off");
}

#[test]
fn tc_object_attached_by_tc_passes_icmp_and_drops_tcp_and_inverted_the_reverse() {
    let dir = TempDir::new("xcap-blob");
    let b = blob("icmp", &BlobOptions::for_program(ProgramKind::Tc));
    let pass = dir.file("tc.o", &b.program_object(ProgramKind::Tc, false).unwrap());
    let invert = dir.file(
        "tc-invert.o",
        &b.program_object(ProgramKind::Tc, true).unwrap(),
    );

    let pair = VethPair::new();
    let listener = pair.listen_b();
    assert_eq!(pair.traffic(&listener), (true, true), "without a program");

    let dev = &pair.dev_b;
    pair.tc_b(&format!("qdisc add dev {dev} clsact"));
    // `sec tc`, and iproute2's default section (`classifier`) for the
    // inverted object.
    for (obj, sec, prog, expected) in [
        (&pass, " sec tc", "xcap_tc", (true, false)),
        (&invert, "", "xcap_tc_cls", (false, true)),
    ] {
        let obj = obj.to_str().unwrap();
        pair.tc_b(&format!(
            "filter add dev {dev} ingress bpf da obj {obj}{sec}"
        ));
        let shown = pair.tc_b(&format!("filter show dev {dev} ingress"));
        assert!(
            shown.contains(&format!("name {prog}")) && shown.contains("direct-action"),
            "{shown}"
        );
        assert_eq!(pair.traffic(&listener), expected, "{obj}{sec}: (ping, tcp)");
        pair.tc_b(&format!("filter del dev {dev} ingress"));
    }
    pair.tc_b(&format!("qdisc del dev {dev} clsact"));
    assert_eq!(
        pair.traffic(&listener),
        (true, true),
        "after removing clsact"
    );
}

// --- (3) The function object, linked into a C caller --------------------------

/// clang -O2 -g -target bpf on the C caller fixture.
fn build_caller(dir: &TempDir) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/blob_caller.c");
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let out = dir.path("caller.o");
    run_text(
        Command::new("clang")
            .args(["-O2", "-g", "-target", "bpf", "-c", "-I"])
            .arg(&include)
            // Debian keeps <asm/types.h> under the multiarch directory.
            .args(["-I", "/usr/include/x86_64-linux-gnu"])
            .arg(&src)
            .arg("-o")
            .arg(&out),
    );
    out
}

#[test]
fn function_object_links_into_c_caller() {
    let dir = TempDir::new("xcap-blob");
    let caller = build_caller(&dir);
    let packets = packets();
    for (i, (_, p)) in packets.iter().enumerate() {
        dir.file(&format!("pkt{i}.bin"), p);
    }
    for (n, expr) in [
        "icmp",
        "tcp dst port 80 and tcp[tcpflags] & tcp-syn != 0",
        "udp port 53 or arp or icmp6",
        "not ip",
        "ip6 protochain 6",
    ]
    .iter()
    .enumerate()
    {
        let opts = BlobOptions {
            snaplen: 1000 + n as u32,
            ..BlobOptions::default()
        };
        let b = blob(expr, &opts);
        let filter = dir.file(
            &format!("filter{n}.o"),
            &b.function_object("xcap_match").unwrap(),
        );
        let linked = dir.path(&format!("linked{n}.o"));
        bpftool_link(&linked, &[&caller, &filter]);

        // Load every program, then run each on every packet.
        let mut script = format!("bpftool prog loadall {} \"$D/progs\"", linked.display());
        for prog in ["xdp_caller", "tc_caller"] {
            for i in 0..packets.len() {
                script += &format!(
                    "; printf '{prog} {i} '; bpftool prog run pinned \"$D/progs/{prog}\" data_in {} | grep -o 'Return value: [0-9]*'",
                    dir.path(&format!("pkt{i}.bin")).display()
                );
            }
        }
        script += "; rm -r \"$D/progs\"";
        let out = with_bpffs(&script);

        let cbpf = libpcap::compile(expr, libpcap::DLT_EN10MB, opts.snaplen).unwrap();
        let mut seen = 0;
        for line in out.lines().filter(|l| l.contains("Return value:")) {
            let mut w = line.split_whitespace();
            let (prog, i) = (
                w.next().unwrap(),
                w.next().unwrap().parse::<usize>().unwrap(),
            );
            let got: u32 = w.last().unwrap().parse().unwrap();
            let (name, pkt) = &packets[i];
            let want = libpcap::filter(&cbpf, pkt, pkt.len() as u32);
            let want = match prog {
                "xdp_caller" => {
                    if want != 0 {
                        2
                    } else {
                        1
                    }
                }
                _ => want,
            };
            assert_eq!(got, want, "{expr}: {prog} on {name}");
            seen += 1;
        }
        assert_eq!(seen, 2 * packets.len(), "{expr}: results missing in\n{out}");
    }
}

/// The hidden visibility matters: the same function with default
/// visibility is verified as a global function, which may not take packet
/// pointers.
#[test]
fn function_object_symbol_is_global_hidden_with_global_btf() {
    use object::{Object, ObjectSymbol};
    let b = blob("icmp", &BlobOptions::default());
    let elf = b.function_object("my_filter").unwrap();
    let file = object::File::parse(&*elf).unwrap();
    let sym = file
        .symbols()
        .find(|s| s.name() == Ok("my_filter"))
        .unwrap();
    assert!(sym.is_global());
    assert_eq!(sym.size(), b.insns().len() as u64 * 8);
    match sym.flags() {
        object::SymbolFlags::Elf { st_info, st_other } => {
            assert_eq!(st_info >> 4, object::elf::STB_GLOBAL);
            assert_eq!(st_info & 0xf, object::elf::STT_FUNC);
            assert_eq!(st_other & 3, object::elf::STV_HIDDEN);
        }
        other => panic!("{other:?}"),
    }
    let dir = TempDir::new("xcap-blob");
    let f = dir.file("f.o", &elf);
    let dump = run_text(
        Command::new("bpftool")
            .args(["btf", "dump", "file"])
            .arg(&f),
    );
    assert!(
        dump.contains("FUNC 'my_filter' type_id=") && dump.contains("linkage=global"),
        "{dump}"
    );
    assert!(dump.contains("'wirelen' type_id="), "{dump}");
}
