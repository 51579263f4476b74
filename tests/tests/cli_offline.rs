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

use xcap_tests::{corpus_dir, on_two_threads, tcpdump_path, xcap_bin};

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
    let compared = AtomicUsize::new(0);
    let packets = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    on_two_threads(cases.len(), |t, n| {
        let (f, expr) = cases[n];
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

/// Whether `line` starts a packet in `-tt` output (`1234567890.123456 `).
fn is_packet_line(line: &str) -> bool {
    let Some((secs, rest)) = line.split_once('.') else {
        return false;
    };
    !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && rest.len() > 6
        && rest.as_bytes()[..6].iter().all(|b| b.is_ascii_digit())
        && rest.as_bytes()[6] == b' '
}

/// The `\t0x` dump lines of each packet of `-tt` output.
fn dumps_per_packet(out: &Output) -> Vec<Vec<String>> {
    let mut packets: Vec<Vec<String>> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if is_packet_line(line) {
            packets.push(Vec::new());
        } else if line.starts_with("\t0x") {
            if let Some(p) = packets.last_mut() {
                p.push(line.to_string());
            }
        }
    }
    packets
}

/// Every capture file of the corpus whose link type the printer knows
/// (Ethernet, Linux cooked, raw IP, BSD loopback, Cisco HDLC, PPP), first
/// packets of each: `-x`, `-xx`, `-X` and `-XX` dump each packet as
/// tcpdump does. tcpdump's own protocol printers may print hex lines of
/// their own before the dump (unknown options, payloads), so ours must be
/// the last lines of its packet; and where its dissection finds the
/// packet truncated it dumps from the first byte, as the doubled flag.
#[test]
fn hex_dumps_equal_tcpdumps() {
    let dir = corpus_dir().join("tcpdump-pcaps");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    files.sort();
    // Where tcpdump's link-layer printer knows more than ours: Arista's
    // timestamp header (ethertype 0xd28b), a MACsec SecTAG with a short
    // length, PPP frames crafted to crash printers.
    let skipped = [
        "arista_ether.pcap",
        "macsec-short-shorter.pcap",
        "ppp-invalid-lengths.pcap",
        "heapoverflow-q933_printq.pcap",
        "mlppp-oobr.pcap",
    ];
    let (mut runs, mut packets, mut whole) = (0, 0, 0);
    for file in &files {
        if skipped.iter().any(|s| file.ends_with(s)) {
            continue;
        }
        let path = file.to_str().unwrap();
        // The link type, from tcpdump's own opening line.
        let probe = tcpdump(&["-c", "1", "-n", "-r", path]);
        let opening = stderr_of(&probe);
        if ![
            "EN10MB",
            "LINUX_SLL ",
            "RAW",
            "IPV4",
            "IPV6",
            "NULL",
            "LOOP",
            "C_HDLC",
            "PPP ",
        ]
        .iter()
        .any(|t| opening.contains(&format!("link-type {t}")))
        {
            continue;
        }
        for (flag, doubled) in [("-x", "-xx"), ("-X", "-XX")] {
            let run_both = |f: &str| {
                let args = ["-n", "-tt", "-c", "20", f, "-r", path];
                let ours = xcap(&args);
                assert_no_panic(&ours, path);
                (ours, tcpdump(&args))
            };
            let (ours, theirs) = run_both(flag);
            let (ours_whole, theirs_whole) = run_both(doubled);
            if !theirs.status.success()
                || !ours.status.success()
                || String::from_utf8_lossy(&theirs.stdout).contains("[Invalid header")
            {
                // Malformed files: each says so its own way (tcpdump
                // prints a record with a bad header as a note, not a
                // packet).
                continue;
            }
            let ours = dumps_per_packet(&ours);
            let theirs = dumps_per_packet(&theirs);
            let ours_whole = dumps_per_packet(&ours_whole);
            let theirs_whole = dumps_per_packet(&theirs_whole);
            // tcpdump may stop early on a packet crafted against a printer.
            assert!(ours.len() >= theirs.len(), "packets of {flag} -r {path}");
            for (i, t) in theirs.iter().enumerate() {
                let at = format!("packet {} of xcap {flag} -r {path}", i + 1);
                assert!(theirs_whole[i].ends_with(&ours_whole[i]), "{doubled} {at}");
                if t.ends_with(&ours[i]) {
                    packets += 1;
                } else {
                    assert!(t.ends_with(&ours_whole[i]), "{at}:\n{:#?}\n{t:#?}", ours[i]);
                    whole += 1;
                }
            }
            runs += 2;
        }
    }
    assert!(runs > 800, "only {runs} runs compared");
    xcap_tests::report(&format!(
        "CLI -x/-xx/-X/-XX dumps: {runs} (file, flag) runs over the corpus, {packets} packets dumped as tcpdump does, {whole} more that tcpdump found truncated and dumped whole"
    ));
}

/// `-A` and `-AA` (ASCII) print what tcpdump prints, line for line, once
/// the packet lines (summaries, which are ours) are left out.
#[test]
fn ascii_dumps_equal_tcpdumps() {
    for name in [
        "ipv4_tcp_http_xml.pcap",
        "tftp.pcap",
        "dns_udp.pcap",
        "mpls-ldp-hello.pcap",
    ] {
        // (The last is PPP.)
        let file = corpus_dir().join("tcpdump-pcaps").join(name);
        let path = file.to_str().unwrap();
        for flag in ["-A", "-AA"] {
            let args = ["-n", "-tt", "-c", "30", flag, "-r", path];
            let strip = |o: &Output| -> Vec<String> {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter(|l| !is_packet_line(l))
                    .map(String::from)
                    .collect()
            };
            let (ours, theirs) = (xcap(&args), tcpdump(&args));
            assert!(ours.status.success(), "{}", stderr_of(&ours));
            assert_eq!(strip(&ours), strip(&theirs), "xcap {flag} -r {name}");
        }
    }
}

/// `-t` .. `-ttttt`: the time stamps tcpdump prints.
#[test]
fn time_stamp_styles_equal_tcpdumps() {
    let file = corpus_dir().join("tcpdump-pcaps/afs.pcap");
    let path = file.to_str().unwrap();
    for flag in ["-tt", "-ttt", "-tttt", "-ttttt"] {
        let args = ["-n", "-c", "40", flag, "-r", path];
        // Every packet of the file is IP: the stamp is what precedes "IP".
        let stamps = |o: &Output| -> Vec<String> {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| l.split("IP ").next().unwrap().to_string())
                .collect()
        };
        let ours = xcap(&args);
        assert!(ours.status.success(), "{}", stderr_of(&ours));
        assert_eq!(stamps(&ours), stamps(&tcpdump(&args)), "{flag}");
    }
    // -l (line-buffered) changes when lines go out, not what they are.
    let buffered = xcap(&["-n", "-tt", "-r", path]);
    let line_buffered = xcap(&["-n", "-tt", "-l", "-r", path]);
    assert!(line_buffered.status.success());
    assert_eq!(line_buffered.stdout, buffered.stdout);
    // -t: no time stamp; the line starts with the summary ("IP ...").
    let ours = xcap(&["-n", "-c", "3", "-t", "-r", path]);
    for line in String::from_utf8_lossy(&ours.stdout).lines() {
        assert!(line.starts_with("IP "), "{line}");
    }
}

/// `-e`: the link-level header as tcpdump prints it, up to the protocol.
#[test]
fn link_headers_equal_tcpdumps() {
    for name in [
        "afs.pcap",
        "arp-too-long-tha.pcap",
        "dns_udp.pcap",
        "icmpv6.pcap",
    ] {
        let file = corpus_dir().join("tcpdump-pcaps").join(name);
        let path = file.to_str().unwrap();
        let args = ["-n", "-e", "-c", "20", "-r", path];
        let heads = |o: &Output| -> Vec<String> {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| !l.starts_with('\t'))
                .map(|l| l.split(": ").next().unwrap().to_string())
                .collect()
        };
        let ours = xcap(&args);
        assert!(ours.status.success(), "{}", stderr_of(&ours));
        assert_eq!(heads(&ours), heads(&tcpdump(&args)), "-e -r {name}");
    }
}

/// `-D` lists what `tcpdump -D` lists, in the same words.
#[test]
fn interface_list_equals_tcpdumps() {
    let (ours, theirs) = (xcap(&["-D"]), tcpdump(&["-D"]));
    assert!(ours.status.success(), "{}", stderr_of(&ours));
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&theirs.stdout)
    );
}

/// Unknown options: one line on stderr, exit 1, nothing on stdout.
#[test]
fn unknown_options_are_one_line() {
    for args in [
        &["-Z", "tcp"][..],
        &["--no-such-flag"],
        &["-i"],
        &["--mode", "foo", "tcp"],
    ] {
        let out = xcap(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = stderr_of(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("xcap: "), "{err}");
    }
}

/// A file with an IPv6 chain of 60 headers ending in TCP, a packet whose AH
/// header leads back to itself (libpcap's interpreter never returns on
/// it: `tcpdump -r` hangs), and one of 60 headers ending in UDP: `xcap -r`
/// with either engine writes the first only, and returns at once.
#[test]
fn protochain_past_libpcaps_endless_walk() {
    let scratch = scratch_dir();
    let chain = |hops: usize, last: u8| {
        let mut f = vec![
            2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60, 0, 0, 0,
        ];
        f.extend_from_slice(&((hops * 8 + 20) as u16).to_be_bytes());
        f.extend_from_slice(&[if hops > 0 { 0 } else { last }, 64]);
        f.resize(14 + 40, 0xfe);
        for h in 0..hops {
            f.extend_from_slice(&[if h + 1 == hops { last } else { 0 }, 0, 1, 4, 0, 0, 0, 0]);
        }
        f.resize(f.len() + 20, 0);
        f
    };
    // AH first, at offset 40 of the IPv6 header, length 8: libpcap's next
    // offset is (8 + 2) * 4 = 40, the same AH again.
    let mut ah = chain(0, 51);
    ah.truncate(14 + 40);
    ah.extend_from_slice(&[51, 8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
    ah.resize(14 + 40 + 40, 0);
    let packets = [chain(60, 6), ah, chain(60, 17)];
    // pcap: a global header (microseconds, Ethernet), then each record.
    let mut file = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 262_144, 1] {
        file.extend_from_slice(&v.to_le_bytes());
    }
    for (n, p) in packets.iter().enumerate() {
        for v in [1_700_000_000 + n as u32, 0, p.len() as u32, p.len() as u32] {
            file.extend_from_slice(&v.to_le_bytes());
        }
        file.extend_from_slice(p);
    }
    let input = scratch.join("ah-loop.pcap");
    std::fs::write(&input, &file).unwrap();
    // tcpdump catches SIGTERM and would stop at the next packet, which
    // never comes: only SIGKILL ends it.
    let started = std::time::Instant::now();
    let stuck = run(Command::new("timeout")
        .args(["-s", "KILL", "3"])
        .arg(tcpdump_path())
        .args([
            "-r",
            input.to_str().unwrap(),
            "-w",
            "/dev/null",
            "ip6 protochain 6",
        ]));
    assert!(
        !stuck.status.success() && started.elapsed().as_secs() >= 3,
        "tcpdump -r returned: {:?}",
        stuck.status
    );
    xcap_bin(); // built before the clock starts
    for engine in ["kernel", "vm"] {
        let out = scratch.join(format!("ah-loop-{engine}.pcap"));
        let started = std::time::Instant::now();
        let res = xcap(&[
            "-r",
            input.to_str().unwrap(),
            "--engine",
            engine,
            "-w",
            out.to_str().unwrap(),
            "ip6 protochain 6",
        ]);
        assert!(res.status.success(), "{engine}: {}", stderr_of(&res));
        assert!(started.elapsed().as_secs() < 3, "{engine}: slow");
        let written = std::fs::read(&out).unwrap();
        assert_eq!(count_records(&written), 1, "{engine}");
        assert_eq!(&written[24 + 16..], &packets[0][..], "{engine}");
    }
}
