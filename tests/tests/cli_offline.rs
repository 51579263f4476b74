//! The `xcap` binary against the real tcpdump, offline: `-r FILE -w OUT`
//! must write byte-identical files (kernel and VM engines), `-d`, `-dd` and
//! `-ddd` must print byte-identical listings, and bad input must fail the
//! same way (libpcap's error text, exit status 1, never a panic).
//!
//! Needs tcpdump (the tests fail without it) and, for the kernel engine,
//! root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use xcap_tests::{corpus_dir, tcpdump_path, xcap_bin};

/// Filters users type, plus the shapes with special semantics offline:
/// backward jumps (`protochain`), netmask 0 (`ip broadcast`), ancillary
/// loads (`inbound` never matches a file), the empty filter.
const EXPRESSIONS: &[&str] = &[
    "tcp port 80",
    "icmp",
    "udp and not port 53",
    "ip6",
    "vlan",
    "vlan and tcp",
    "arp",
    "greater 500",
    "less 100",
    "ip6 protochain 6",
    "tcp[13] & 2 != 0",
    "ip6 and udp",
    "icmp6",
    "not ip",
    "ether broadcast",
    "ip[6:2] & 0x3fff != 0",
    "ip broadcast",
    "inbound",
    "ifindex 1",
    "",
];

/// Ethernet captures from tcpdump's tests, the ones with many packets, a
/// pcapng, huge packets (over the kernel engine's size limit: the VM
/// fallback), VLAN tags, IPv6 extension headers, and fuzzer-made malformed
/// packets (`*oobr*`).
const FILES: &[&str] = &[
    "tcpdump-pcaps/arp-oobr.pcap",
    "tcpdump-pcaps/afs.pcap",
    "tcpdump-pcaps/nfs-attr-oobr.pcap",
    "tcpdump-pcaps/of10_s4810.pcap",
    "tcpdump-pcaps/of13_ericsson.pcapng",
    "tcpdump-pcaps/mptcp-v0.pcap",
    "tcpdump-pcaps/pim-packet-assortment.pcap",
    "tcpdump-pcaps/ptp_ethernet.pcap",
    "tcpdump-pcaps/AoE_Linux.pcap",
    "tcpdump-pcaps/vrrp.pcap",
    "tcpdump-pcaps/various_gre.pcap",
    "tcpdump-pcaps/babel_update_oobr.pcap",
    "tcpdump-pcaps/hoobr_nfs_printfh.pcap",
    "tcpdump-pcaps/edns-opts.pcap",
    "tcpdump-pcaps/icmp6-rfc8335.pcap",
    "tcpdump-pcaps/isakmp-rfc3948-oobr.pcap",
    "tcpdump-pcaps/huge-tipc-messages.pcap",
    "tcpdump-pcaps/802.1ad_QinQ.pcap",
    "tcpdump-pcaps/rpvstp-trunk-native-vid5.pcap",
    "libpcap-filter-pcaps/ipv6_ext_headers.pcap",
];

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xcap-cli-offline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs a command with backtraces on, so that a panic would show.
fn run(cmd: &mut Command) -> Output {
    cmd.env("RUST_BACKTRACE", "1").stdin(Stdio::null());
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn xcap(args: &[&str]) -> Output {
    run(Command::new(xcap_bin()).args(args))
}

fn tcpdump(args: &[&str]) -> Output {
    run(Command::new(tcpdump_path()).args(args))
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_no_panic(out: &Output, what: &str) {
    let err = stderr_of(out);
    assert!(
        !err.contains("panicked")
            && !err.contains("RUST_BACKTRACE")
            && !err.contains("stack backtrace"),
        "{what}: xcap panicked:\n{err}"
    );
}

/// stderr without tcpdump's and xcap's informational lines ("reading from
/// file ...", "Warning: assuming Ethernet", the VM fallback note), with the
/// program name normalised: what remains is the error.
fn error_lines(out: &Output, program: &str) -> Vec<String> {
    stderr_of(out)
        .lines()
        .filter(|l| {
            !l.starts_with("reading from file ")
                && !l.starts_with("Warning: ")
                && !l.contains("filtered by the vm engine")
        })
        .map(|l| l.replacen(&format!("{program}: "), "PROG: ", 1))
        .collect()
}

/// The input files, plus a malformed one: afs.pcap cut in the middle of a
/// packet (both tools write what they read before the damage and exit 1).
fn input_files(scratch: &Path) -> Vec<PathBuf> {
    let corpus = corpus_dir();
    let mut files: Vec<PathBuf> = FILES.iter().map(|f| corpus.join(f)).collect();
    for f in &files {
        assert!(f.is_file(), "{} missing from the corpus", f.display());
    }
    let afs = std::fs::read(corpus.join("tcpdump-pcaps/afs.pcap")).unwrap();
    let truncated = scratch.join("afs-truncated.pcap");
    std::fs::write(&truncated, &afs[..100_000]).unwrap();
    files.push(truncated);
    files
}

/// `xcap -r F -w A --engine E EXPR` against `tcpdump -r F -w B EXPR`, for
/// every file and expression: same bytes, same exit status.
fn offline_equals_tcpdump(engine: &str) {
    let scratch = scratch_dir().join(engine);
    std::fs::create_dir_all(&scratch).unwrap();
    let files = input_files(&scratch);
    let cases: Vec<(usize, &str)> = (0..files.len())
        .flat_map(|f| EXPRESSIONS.iter().map(move |e| (f, *e)))
        .collect();
    let next = AtomicUsize::new(0);
    let compared = AtomicUsize::new(0);
    let packets = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..2 {
            let (scratch, files, cases) = (&scratch, &files, &cases);
            let (next, compared, packets, failures) = (&next, &compared, &packets, &failures);
            s.spawn(move || loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(f, expr)) = cases.get(n) else {
                    break;
                };
                let file = files[f].to_str().unwrap();
                let ours = scratch.join(format!("xcap-{t}.pcap"));
                let theirs = scratch.join(format!("tcpdump-{t}.pcap"));
                let _ = std::fs::remove_file(&ours);
                let _ = std::fs::remove_file(&theirs);
                let xo = xcap(&[
                    "-r",
                    file,
                    "-w",
                    ours.to_str().unwrap(),
                    "--engine",
                    engine,
                    expr,
                ]);
                let to = tcpdump(&["-r", file, "-w", theirs.to_str().unwrap(), expr]);
                assert_no_panic(&xo, &format!("{file} {expr:?}"));
                let label = format!(
                    "{engine}: -r {} {expr:?}",
                    files[f].file_name().unwrap().to_string_lossy()
                );
                let mut problems = Vec::new();
                if xo.status.code() != to.status.code() {
                    problems.push(format!(
                        "exit {:?} vs tcpdump {:?}; xcap said {}",
                        xo.status.code(),
                        to.status.code(),
                        stderr_of(&xo)
                    ));
                }
                if error_lines(&xo, "xcap").len() > 1 {
                    problems.push(format!("more than one error line: {}", stderr_of(&xo)));
                }
                match (std::fs::read(&ours), std::fs::read(&theirs)) {
                    (Ok(a), Ok(b)) if a == b => {
                        packets.fetch_add(count_records(&b), Ordering::Relaxed);
                    }
                    (Ok(a), Ok(b)) => {
                        problems.push(format!("files differ ({} vs {} bytes)", a.len(), b.len()))
                    }
                    // Both refused the filter (`inbound` on a savefile):
                    // the same message.
                    (Err(_), Err(_)) if to.status.code() == Some(1) => {
                        if error_lines(&xo, "xcap") != error_lines(&to, "tcpdump") {
                            problems.push(format!(
                                "different errors: {} / {}",
                                stderr_of(&xo),
                                stderr_of(&to)
                            ));
                        }
                    }
                    (a, b) => problems.push(format!(
                        "output missing: xcap {:?}, tcpdump {:?}",
                        a.err(),
                        b.err()
                    )),
                }
                compared.fetch_add(1, Ordering::Relaxed);
                if !problems.is_empty() {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{label}: {}", problems.join("; ")));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    println!(
        "engine {engine}: {} (file, expression) cases compared with tcpdump -r -w, {} packets written, {} mismatches",
        compared.into_inner(),
        packets.into_inner(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let _ = std::fs::remove_dir_all(&scratch);
}

/// Packet records in a little- or big-endian micro-second pcap file.
fn count_records(file: &[u8]) -> usize {
    let le = file[..4] == [0xd4, 0xc3, 0xb2, 0xa1];
    let (mut at, mut n) = (24, 0);
    while at + 16 <= file.len() {
        let b: [u8; 4] = file[at + 8..at + 12].try_into().unwrap();
        let caplen = if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        } as usize;
        at += 16 + caplen;
        n += 1;
    }
    n
}

#[test]
fn read_write_kernel_engine_equals_tcpdump() {
    offline_equals_tcpdump("kernel");
}

#[test]
fn read_write_vm_engine_equals_tcpdump() {
    offline_equals_tcpdump("vm");
}

#[test]
fn read_write_libpcap_engine_equals_tcpdump() {
    offline_equals_tcpdump("libpcap");
}

/// Packets over the kernel engine's size limit run in the VM, and xcap says
/// so once.
#[test]
fn huge_packets_fall_back_to_the_vm_once() {
    let file = corpus_dir().join("tcpdump-pcaps/huge-tipc-messages.pcap");
    let out = xcap(&[
        "-r",
        file.to_str().unwrap(),
        "--engine",
        "kernel",
        "-c",
        "1000",
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let notes: Vec<_> = stderr_of(&out)
        .lines()
        .filter(|l| l.contains("filtered by the vm engine"))
        .map(String::from)
        .collect();
    assert_eq!(notes.len(), 1, "{}", stderr_of(&out));
    let expected = tcpdump(&["-r", file.to_str().unwrap()]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        String::from_utf8_lossy(&expected.stdout).lines().count()
    );
}

/// Without `-w`: one line per match; `-c` stops after COUNT matches, as
/// tcpdump's does (compared by timestamps, the start of tcpdump's lines).
#[test]
fn print_and_count_match_tcpdump() {
    let file = corpus_dir().join("tcpdump-pcaps/afs.pcap");
    let file = file.to_str().unwrap();
    for (count, expr) in [
        ("5", "udp"),
        ("1", "ip"),
        ("1000", "tcp"),
        ("3", "greater 1000"),
    ] {
        let ours = xcap(&["-r", file, "-c", count, expr]);
        let theirs = tcpdump(&["-r", file, "-c", count, expr]);
        assert!(ours.status.success());
        let ours: Vec<String> = String::from_utf8_lossy(&ours.stdout)
            .lines()
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect();
        let theirs: Vec<String> = String::from_utf8_lossy(&theirs.stdout)
            .lines()
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect();
        assert_eq!(ours, theirs, "-c {count} {expr}");
    }
}

/// `-d`, `-dd`, `-ddd` against tcpdump, for several link types and snap
/// lengths: byte-identical stdout.
#[test]
fn dumps_equal_tcpdump() {
    let mut exprs: Vec<String> = EXPRESSIONS.iter().map(|s| s.to_string()).collect();
    exprs.extend(
        [
            "tcp port 443 and tcp[13]&8!=0",
            "ip[2:2] - 20 > 100",
            "-ip[8] + 300 > 255",
            "ip[0] << ip[1] = 0",
            "ip[8] * 3 > 100 and ip[8] / 3 < 60 and ip[9] % 3 = 1",
            "ip[9] ^ 6 = 0",
            "ether host 00:11:22:33:44:55",
            "net 10.0.0.0/8 and src portrange 1000-2000",
            "outbound or ifindex 3",
        ]
        .map(String::from),
    );
    exprs.push(xcap_tests::host_list(100));
    let mut compared = 0;
    let mut failures = Vec::new();
    for linktype in ["EN10MB", "RAW", "LINUX_SLL", "IPV6"] {
        for expr in &exprs {
            for (flags, snaplen) in [
                ("-d", None),
                ("-dd", None),
                ("-ddd", None),
                ("-d", Some("100")),
                ("-dd", Some("0")),
            ] {
                let mut args = vec![flags, "-y", linktype];
                if let Some(s) = snaplen {
                    args.extend(["-s", s]);
                }
                // After `--`: `-ip[8]` is an expression, not `-i p[8]`.
                args.extend(["--", expr]);
                let ours = xcap(&args);
                let theirs = tcpdump(&args);
                assert_no_panic(&ours, expr);
                compared += 1;
                let same = ours.stdout == theirs.stdout
                    && ours.status.code() == theirs.status.code()
                    && error_lines(&ours, "xcap") == error_lines(&theirs, "tcpdump");
                if !same {
                    failures.push(format!(
                        "{args:?}: xcap {:?} {}{} / tcpdump {:?} {}{}",
                        ours.status.code(),
                        String::from_utf8_lossy(&ours.stdout),
                        stderr_of(&ours),
                        theirs.status.code(),
                        String::from_utf8_lossy(&theirs.stdout),
                        stderr_of(&theirs)
                    ));
                }
            }
        }
    }
    println!(
        "{compared} dump cases compared with tcpdump, {} mismatches",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Expression words are joined as tcpdump joins them, and `-F` reads the
/// expression from a file with `#` comments; both without `-y` (EN10MB).
#[test]
fn expression_words_and_filter_files() {
    let scratch = scratch_dir();
    let words: &[&[&str]] = &[
        &["tcp", "port", "80"],
        &["udp", "and", "not port 53"],
        &["ip[0]", "&", "0xf", ">", "5"],
        &[],
    ];
    for w in words {
        let mut args = vec!["-d"];
        args.extend_from_slice(w);
        assert_eq!(xcap(&args).stdout, tcpdump(&args).stdout, "{w:?}");
    }
    let file = scratch.join("filter.txt");
    std::fs::write(&file, "# a comment\ntcp port 80 # web\n  or icmp#x\n").unwrap();
    let file = file.to_str().unwrap();
    for args in [
        vec!["-d", "-F", file],
        vec!["-dd", "-F", file, "ignored", "words"],
    ] {
        let (ours, theirs) = (xcap(&args), tcpdump(&args));
        assert!(ours.status.success(), "{}", stderr_of(&ours));
        assert_eq!(ours.stdout, theirs.stdout, "{args:?}");
    }
    // -F with -r.
    let pcap = corpus_dir().join("tcpdump-pcaps/afs.pcap");
    let (a, b) = (scratch.join("f-a.pcap"), scratch.join("f-b.pcap"));
    let ours = xcap(&[
        "-r",
        pcap.to_str().unwrap(),
        "-w",
        a.to_str().unwrap(),
        "-F",
        file,
    ]);
    tcpdump(&[
        "-r",
        pcap.to_str().unwrap(),
        "-w",
        b.to_str().unwrap(),
        "-F",
        file,
    ]);
    assert!(ours.status.success(), "{}", stderr_of(&ours));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

/// Raw cBPF as `-ddd` or `-dd` prints it: round trip through `-d`, and a
/// filter for `-r` that gives tcpdump's result.
#[test]
fn raw_cbpf_input() {
    let scratch = scratch_dir();
    let pcap = corpus_dir().join("tcpdump-pcaps/mptcp-v0.pcap");
    for (i, fmt) in ["-ddd", "-dd"].into_iter().enumerate() {
        let listing = tcpdump(&[fmt, "-y", "EN10MB", "tcp[13] & 2 != 0"]).stdout;
        let raw = scratch.join(format!("raw{i}.txt"));
        std::fs::write(&raw, &listing).unwrap();
        let raw = raw.to_str().unwrap();
        let ours = xcap(&["-d", "--raw-cbpf", raw]);
        assert_eq!(
            ours.stdout,
            tcpdump(&["-d", "-y", "EN10MB", "tcp[13] & 2 != 0"]).stdout
        );
        let (a, b) = (
            scratch.join(format!("raw-a{i}.pcap")),
            scratch.join(format!("raw-b{i}.pcap")),
        );
        let ours = xcap(&[
            "-r",
            pcap.to_str().unwrap(),
            "-w",
            a.to_str().unwrap(),
            "--raw-cbpf",
            raw,
        ]);
        assert!(ours.status.success(), "{}", stderr_of(&ours));
        tcpdump(&[
            "-r",
            pcap.to_str().unwrap(),
            "-w",
            b.to_str().unwrap(),
            "tcp[13] & 2 != 0",
        ]);
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    }
    // --ebpf prints counts and the listing.
    let out = xcap(&[
        "--ebpf",
        "--raw-cbpf",
        scratch.join("raw0.txt").to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("; cBPF instructions: ")
            && text.contains("; eBPF instructions: ")
            && text.contains("; bounds checks: "),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("0: (")), "{text}");
}

/// The eBPF listing for every mode and hook, and a clear error for a
/// primitive the hook cannot answer.
#[test]
fn ebpf_listing_modes_and_hooks() {
    for mode in ["direct", "skb", "probe"] {
        for hook in ["xdp", "tc-ingress", "tc-egress", "socket", "offline"] {
            let out = xcap(&["--ebpf", "--mode", mode, "--hook", hook, "tcp port 80"]);
            assert!(out.status.success(), "{mode} {hook}: {}", stderr_of(&out));
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.starts_with(&format!(
                    "; mode {mode}, hook {hook}\n; cBPF instructions: 20\n"
                )),
                "{text}"
            );
        }
    }
    let out = xcap(&["--ebpf", "--mode", "probe", "--hook", "xdp", "outbound"]);
    assert_no_panic(&out, "outbound");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(error_lines(&out, "xcap").len(), 1, "{}", stderr_of(&out));
}

/// Bad input: libpcap's error text or one clear line, exit status 1, no
/// panic; where tcpdump has a message for it, the same message.
#[test]
fn bad_input() {
    let scratch = scratch_dir();
    let afs = corpus_dir().join("tcpdump-pcaps/afs.pcap");
    let afs = afs.to_str().unwrap();
    let not_pcap = scratch.join("not-a-pcap");
    std::fs::write(&not_pcap, "hello, world\n").unwrap();
    let not_pcap = not_pcap.to_str().unwrap();
    let unwritable = "/nonexistent-dir/out.pcap";

    // Same message as tcpdump (after "tcpdump: " / "xcap: "), exit 1.
    let mut same_as_tcpdump: Vec<Vec<String>> = [
        vec!["-d", "tcp port"],
        vec!["-d", "ip proto nosuchproto"],
        vec!["-d", "port 99999"],
        vec!["-d", "ether host 1:2:3"],
        vec!["-d", "-y", "RAW", "vlan"],
        vec!["-d", "-y", "NOSUCHTYPE", "ip"],
        vec!["-d", "-s", "300000", "ip"],
        vec!["-d", "-s", "-1", "ip"],
        vec!["-d", "-F", "/nonexistent-file"],
        vec!["-r", "/nonexistent-file", "ip"],
        vec!["-r", not_pcap, "ip"],
        vec!["-r", afs, "-w", unwritable, "ip"],
        vec!["-r", afs, "tcp and and"],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(String::from).collect())
    .collect();
    let rejects = corpus_dir().join("libpcap-filter-pcaps/reject-savefiles");
    let mut entries: Vec<_> = std::fs::read_dir(&rejects)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    assert!(!entries.is_empty());
    for f in entries {
        same_as_tcpdump.push(vec![
            "-r".into(),
            f.to_str().unwrap().into(),
            "-w".into(),
            scratch.join("reject.pcap").to_str().unwrap().into(),
        ]);
    }
    for args in &same_as_tcpdump {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ours, theirs) = (xcap(&args), tcpdump(&args));
        assert_no_panic(&ours, &format!("{args:?}"));
        assert_eq!(
            ours.status.code(),
            Some(1),
            "{args:?}: {}",
            stderr_of(&ours)
        );
        assert_eq!(
            theirs.status.code(),
            Some(1),
            "{args:?}: tcpdump {}",
            stderr_of(&theirs)
        );
        let (ours, theirs) = (error_lines(&ours, "xcap"), error_lines(&theirs, "tcpdump"));
        assert_eq!(ours.len(), 1, "{args:?}: {ours:?}");
        assert_eq!(ours, theirs, "{args:?}");
    }
    assert_eq!(
        error_lines(&xcap(&["-d", "tcp port"]), "xcap"),
        ["PROG: can't parse filter expression: syntax error"]
    );

    // Malformed raw cBPF: one line naming the line.
    for (text, line) in [
        ("3\n40 0 0 12\n6 0 0 bad\n6 0 0 0\n", 3),
        ("{ 0x28, 0, 0, 0x0000000c },\n{ 0x6, 0, zz }\n", 2),
        ("", 1),
    ] {
        let raw = scratch.join("bad-raw.txt");
        std::fs::write(&raw, text).unwrap();
        for extra in [&["-d"][..], &["--ebpf"], &["-r", afs]] {
            let mut args = vec!["--raw-cbpf", raw.to_str().unwrap()];
            args.extend_from_slice(extra);
            let out = xcap(&args);
            assert_no_panic(&out, text);
            assert_eq!(out.status.code(), Some(1));
            let errors = error_lines(&out, "xcap");
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].contains(&format!("line {line}:")), "{errors:?}");
        }
    }
    // Raw cBPF that does not validate (jump past the end).
    let raw = scratch.join("bad-jump.txt");
    std::fs::write(&raw, "2\n21 5 0 1\n6 0 0 1\n").unwrap();
    for engine in ["kernel", "vm", "libpcap"] {
        let out = xcap(&[
            "--raw-cbpf",
            raw.to_str().unwrap(),
            "-r",
            afs,
            "--engine",
            engine,
        ]);
        assert_no_panic(&out, engine);
        assert_eq!(out.status.code(), Some(1), "{engine}");
        assert_eq!(
            error_lines(&out, "xcap").len(),
            1,
            "{engine}: {}",
            stderr_of(&out)
        );
    }

    // Our own usage errors: exit 1, one line.
    for args in [
        // Without -r, -d or --ebpf, xcap captures live (live_capture.rs
        // covers it): these fail before anything is attached.
        &["-i", "nosuch0", "-w", "x.pcap", "ip"][..],
        &["--xdp", "--tc", "ip"],
        &["--engine", "nope", "-r", afs],
        &["--no-such-flag"],
        &["-r", afs, "--hook", "xdp", "ip"],
    ] {
        let out = xcap(args);
        assert_no_panic(&out, &format!("{args:?}"));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr_of(&out).contains("xcap") || stderr_of(&out).starts_with("error:"),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }
}

/// A reader that goes away (`xcap -d ... | head -1`): a quiet exit, no
/// panic.
#[test]
fn closed_stdout_is_not_a_panic() {
    let big = xcap_tests::host_list(300);
    for args in [vec!["-d", big.as_str()], vec!["-r", "CORPUS", ""]] {
        let afs = corpus_dir().join("tcpdump-pcaps/arp-oobr.pcap");
        let args: Vec<&str> = args
            .into_iter()
            .map(|a| {
                if a == "CORPUS" {
                    afs.to_str().unwrap()
                } else {
                    a
                }
            })
            .collect::<Vec<_>>();
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let mut child = Command::new(xcap_bin())
            .args(&args)
            .env("RUST_BACKTRACE", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_no_panic(&out, "closed stdout");
    }
}

/// Without privileges, `--engine kernel` names what it needs; the default
/// engine falls back to the VM.
#[test]
fn kernel_engine_without_privileges() {
    assert!(
        is_root(),
        "this test needs root (to drop privileges with setpriv)"
    );
    let scratch = scratch_dir();
    let bin = scratch.join("xcap-unprivileged");
    std::fs::copy(xcap_bin(), &bin).unwrap();
    let pcap = scratch.join("afs.pcap");
    std::fs::copy(corpus_dir().join("tcpdump-pcaps/afs.pcap"), &pcap).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&pcap, std::fs::Permissions::from_mode(0o644)).unwrap();
    let nobody = |extra: &[&str]| {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&bin)
        .args(["-r", pcap.to_str().unwrap(), "-c", "3"])
        .args(extra);
        run(&mut cmd)
    };
    let out = nobody(&["--engine", "kernel", "udp"]);
    assert_no_panic(&out, "unprivileged");
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let errors = error_lines(&out, "xcap");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("root")
            && errors[0].contains("CAP_BPF")
            && errors[0].contains("CAP_NET_ADMIN"),
        "{errors:?}"
    );
    let out = nobody(&["udp"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    assert!(
        stderr_of(&out).contains("using the vm engine"),
        "{}",
        stderr_of(&out)
    );
}

fn is_root() -> bool {
    // /proc/self/status: "Uid:\treal\teffective\t...".
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        .unwrap_or(false)
}
