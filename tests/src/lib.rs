//! Shared helpers for xcap's integration tests: the real-data corpus in
//! `../shared/corpus` (libpcap's filter tests, tcpdump's capture files),
//! the programs the tests run ([`process`]) and the network namespaces
//! they send packets in ([`netns`]).
//!
//! Tests fail, never skip, when the corpus is missing: set `XCAP_CORPUS`
//! to point elsewhere.

pub mod chains;
pub mod netns;
pub mod process;
pub mod programs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cbpf2ebpf::cbpf::Insn;
use cbpf2ebpf::libpcap;

/// The corpus folder: `$XCAP_CORPUS`, else `shared/corpus` beside the repo.
pub fn corpus_dir() -> PathBuf {
    let dir = match std::env::var_os("XCAP_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
            repo.join("../shared/corpus")
        }
    };
    assert!(
        dir.is_dir(),
        "test corpus not found at {} (set XCAP_CORPUS)",
        dir.display()
    );
    dir
}

/// A scratch folder in the temporary directory, `{tag}-{pid}-{n}`, removed
/// on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        TempDir(dir)
    }

    /// A file's path in it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `bytes` to the file `name` in it; the file's path.
    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Calls `f(worker, n)` for every `n` in `0..count` on two threads (the
/// build machine's cores), each taking the next `n` when done with one;
/// `worker` (0 or 1) tells them apart.
pub fn on_two_threads(count: usize, f: impl Fn(usize, usize) + Sync) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for worker in 0..2 {
            let (next, f) = (&next, &f);
            s.spawn(move || loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                f(worker, n);
            });
        }
    });
}

/// One captured packet.
#[derive(Clone, Debug)]
pub struct Packet {
    pub data: Vec<u8>,
    /// The original length (may exceed `data.len()`).
    pub wirelen: u32,
    /// Where it came from, for failure messages.
    pub origin: String,
}

/// Every packet of every capture file in `dir` whose link type is `dlt`.
/// Malformed files contribute the packets read before the damage.
pub fn packets_in(dir: &Path, dlt: i32) -> Vec<Packet> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let Ok(mut cap) = pcap::Capture::from_file(&path) else {
            continue;
        };
        if cap.get_datalink().0 != dlt {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut n = 0;
        while let Ok(p) = cap.next_packet() {
            n += 1;
            out.push(Packet {
                data: p.data.to_vec(),
                wirelen: p.header.len,
                origin: format!("{name}#{n}"),
            });
        }
    }
    out
}

/// tcpdump's capture files of link type `dlt`.
pub fn tcpdump_packets(dlt: i32) -> Vec<Packet> {
    packets_in(&corpus_dir().join("tcpdump-pcaps"), dlt)
}

/// Layer-3 packets: raw-IP captures plus the payload of every Ethernet
/// packet that carries IPv4 or IPv6 (more data for the L3 link types).
pub fn l3_packets(ip_version: Option<u8>) -> Vec<Packet> {
    let mut out = Vec::new();
    for dlt in [libpcap::DLT_RAW, libpcap::DLT_IPV4, libpcap::DLT_IPV6] {
        out.extend(tcpdump_packets(dlt));
    }
    for p in tcpdump_packets(libpcap::DLT_EN10MB) {
        if p.data.len() >= 14 && matches!(&p.data[12..14], [0x08, 0x00] | [0x86, 0xdd]) {
            out.push(Packet {
                data: p.data[14..].to_vec(),
                wirelen: p.wirelen.saturating_sub(14),
                origin: format!("{} (L3)", p.origin),
            });
        }
    }
    if let Some(v) = ip_version {
        out.retain(|p| p.data.first().is_none_or(|b| b >> 4 == v));
    }
    out
}

/// `XCAP_DIFF_SAMPLE=N`: the differential and protochain tests compare
/// every Nth packet only (1, the default, compares them all), for kernels
/// in an emulated guest, several times slower than the host. A value that
/// is not a positive number fails the test.
fn sample_every() -> usize {
    match std::env::var("XCAP_DIFF_SAMPLE") {
        Err(_) => 1,
        Ok(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => panic!("XCAP_DIFF_SAMPLE={v:?}: expected a positive number"),
        },
    }
}

/// The packets `XCAP_DIFF_SAMPLE` keeps (every Nth, the first included),
/// and the words a report adds for it (`, every 4th packet`; empty when
/// all are kept).
pub fn sampled_packets<T>(packets: Vec<T>) -> (Vec<T>, String) {
    let every = sample_every();
    let words = if every > 1 {
        format!(", every {every}th packet")
    } else {
        String::new()
    };
    (packets.into_iter().step_by(every).collect(), words)
}

/// libpcap's accept-test expressions for a link type name ("EN10MB",
/// "RAW", ...), without those that need host files or another OS.
pub fn accept_expressions(dlt_name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(corpus_dir().join("libpcap-accept.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for block in json["blocks"].as_array().unwrap() {
        if block["DLT"] != dlt_name || block.get("skip").is_some() || block.get("special").is_some()
        {
            continue;
        }
        for e in block["exprs"].as_array().unwrap() {
            out.push(e.as_str().unwrap().to_string());
        }
    }
    out
}

/// A cBPF program as plain tuples, to group expressions by their program.
pub type ProgramKey = Vec<(u16, u8, u8, u32)>;

/// Expressions compiled by the installed libpcap, grouped by program:
/// expressions that compile to the same cBPF need running once.
pub fn compile_distinct(
    exprs: &[String],
    dlt: i32,
    snaplen: u32,
) -> BTreeMap<ProgramKey, (Vec<Insn>, Vec<String>)> {
    let mut out: BTreeMap<_, (Vec<Insn>, Vec<String>)> = BTreeMap::new();
    for e in exprs {
        let Ok(prog) = libpcap::compile(e, dlt, snaplen) else {
            continue;
        };
        let key = prog.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect();
        out.entry(key)
            .or_insert_with(|| (prog, Vec::new()))
            .1
            .push(e.clone());
    }
    out
}

/// Expressions of our own, beyond libpcap's tests: the primitives users
/// type and the shapes that broke other translators.
pub const EXTRA_EXPRESSIONS: &[&str] = &[
    "tcp port 443 and tcp[13]&8!=0",
    "tcp[tcpflags] & tcp-syn != 0",
    "icmp or arp",
    "udp and not port 53",
    "ip[0] & 0xf > 5",
    "host 10.0.0.1 and udp",
    "vlan and tcp",
    "vlan 100 and tcp",
    "ip6 protochain 6",
    "ip protochain 17",
    "ip6 protochain 17 or ip6 protochain 58",
    "greater 1000",
    "less 100",
    "len > 60 and len < 1500",
    "ip[0:4] << 8 >> 8 = 0x28",
    "ip[2:2] / (ip[0] & 0)= 1",
    "ip[2:2] % (ip[0] & 0) = 1",
    "ip[100] = 0",
    "tcp[20:4] = 0x47455420",
    "ip[2:2] - 20 > 100",
    "ip[6:2] & 0x3fff != 0",
    "-ip[8] + 300 > 255",
    "ip[8] * 3 > 100 and ip[8] / 3 < 60",
    "ip[9] ^ 6 = 0",
    "ip[0] << ip[1] = 0",
    "ip[0] >> (ip[9] & 0x3f) = 0",
    "ip[1] << 31 != 0 or ip[1] >> 31 = 0",
    "ether[0] & 1 != 0",
    "ether broadcast or ether multicast",
    "ether host 00:11:22:33:44:55",
    "net 192.168.0.0/16 or net 10.0.0.0/8",
    "src portrange 1000-2000 or dst port 80",
    "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
    "icmp6 and ip6[40] = 128",
    "mpls and ip",
    "pppoes and ip",
    "ip multicast",
    "ip broadcast",
    "ip and ip[3] = 0",
    "ether proto 0x88cc",
    "tcp port 80 or tcp port 443 or tcp port 8080 or udp port 53 or udp port 123",
];

/// A filter of `n` `host` terms (long programs: jt/jf near 255, far jumps).
pub fn host_list(n: usize) -> String {
    (0..n)
        .map(|i| format!("host 10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// `n` blocks, each testing a word of the packet and jumping on a match to
/// its own `ret #(i + 1)`. Translated (the returns land next to their
/// blocks), each block's failed bounds check is a jump to the shared
/// `return 0` at the end: 12,000 blocks make 72,000 eBPF instructions for
/// direct access, with 40 jumps past 32,767 instructions, and thousands in
/// skb and probe mode (10,674 in skb mode, to 41 targets).
pub fn far_jump_blocks(n: u32) -> Vec<Insn> {
    use cbpf2ebpf::cbpf::op;
    let mut prog = Vec::new();
    for i in 0..n {
        let ja_at = prog.len() as u32 + 3;
        prog.push(Insn::new(op::LD | op::W | op::ABS, 0, 0, 14 + i % 40));
        prog.push(Insn::new(op::ALU | op::AND | op::K, 0, 0, 0x0300_00ff));
        prog.push(Insn::new(op::JMP | op::JEQ | op::K, 0, 1, (i * 7) & 0xff));
        // To ret #(i + 1): past the other blocks, `ret #0` and i returns.
        let target = 4 * n + 1 + i;
        prog.push(Insn::new(op::JMP | op::JA, 0, 0, target - ja_at - 1));
    }
    prog.push(Insn::new(op::RET | op::K, 0, 0, 0));
    for i in 0..n {
        prog.push(Insn::new(op::RET | op::K, 0, 0, i + 1));
    }
    prog
}

/// `n` pseudo-random packets of `len` bytes (every tenth cut to 40).
pub fn random_packets(n: usize, len: usize) -> Vec<(Vec<u8>, u32)> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|k| {
            let p: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let cut = if k % 10 == 9 { 40 } else { len };
            (p[..cut].to_vec(), len as u32)
        })
        .collect()
}

/// One way of translating a filter that the tests compare.
#[derive(Clone, Copy, Debug)]
pub struct Variant {
    pub name: &'static str,
    pub mode: cbpf2ebpf::Mode,
    /// Skb mode: direct reads of the linear part first.
    pub linear_fast_path: bool,
}

impl Variant {
    /// Offline semantics (libpcap's interpreter on a savefile), far jumps
    /// as the running kernel loads them.
    pub fn options(&self) -> cbpf2ebpf::Options {
        cbpf2ebpf::Options {
            mode: self.mode,
            hook: cbpf2ebpf::Hook::Offline,
            linear_fast_path: self.linear_fast_path,
            gotol: xcap_runner::kernel_has_gotol(),
            ..cbpf2ebpf::Options::default()
        }
    }
}

/// Every access mode, and skb mode both with and without its fast path.
pub const VARIANTS: [Variant; 4] = [
    Variant {
        name: "direct",
        mode: cbpf2ebpf::Mode::Direct,
        linear_fast_path: true,
    },
    Variant {
        name: "skb",
        mode: cbpf2ebpf::Mode::Skb,
        linear_fast_path: true,
    },
    Variant {
        name: "skb-helpers",
        mode: cbpf2ebpf::Mode::Skb,
        linear_fast_path: false,
    },
    Variant {
        name: "probe",
        mode: cbpf2ebpf::Mode::Probe,
        linear_fast_path: true,
    },
];

/// Runs `prog` on every packet with every engine and access mode (offline
/// semantics) and panics on the first answer that differs from libpcap's
/// interpreter. Returns how many cases it compared.
pub fn assert_matches_libpcap(what: &str, prog: &[Insn], packets: &[(Vec<u8>, u32)]) -> usize {
    use cbpf2ebpf::translate;
    use xcap_runner::{Engine, Filter, RunFilter};
    let mut cases = 0;
    for variant in VARIANTS {
        let mode = variant.mode;
        let t = translate(prog, &variant.options())
            .unwrap_or_else(|e| panic!("{what}: translation failed in {mode:?} mode: {e}"));
        for engine in Engine::ALL {
            let f = Filter::load(engine, &t.insns, mode)
                .unwrap_or_else(|e| panic!("{what}: {engine}/{mode:?}: {e}"));
            for (n, (data, wirelen)) in packets.iter().enumerate() {
                let want = libpcap::filter(prog, data, *wirelen);
                let got = f
                    .run(data, *wirelen)
                    .unwrap_or_else(|e| panic!("{what}: {engine}/{mode:?} packet {n}: {e}"));
                assert_eq!(
                    got,
                    want,
                    "{what}: {engine}/{mode:?} packet {n} ({} of {wirelen} bytes)",
                    data.len()
                );
                cases += 1;
            }
        }
    }
    cases
}

/// Ethernet + IPv4 + TCP or UDP packet builder for tests.
pub fn eth_ipv4(
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let l4_len = if proto == 6 { 20 } else { 8 };
    let total = 20 + l4_len + payload.len();
    let mut p = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    p.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        proto,
        0,
        0,
    ]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    if proto == 6 {
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        p.extend_from_slice(&[
            ((8 + payload.len()) >> 8) as u8,
            (8 + payload.len()) as u8,
            0,
            0,
        ]);
    }
    p.extend_from_slice(payload);
    p
}

/// The real tcpdump, for comparisons. Panics (the test fails, never skips)
/// when it is missing: `scripts/setup.sh` installs it.
pub fn tcpdump_path() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/sbin".into()]);
    for dir in candidates {
        let path = dir.join("tcpdump");
        if path.is_file() {
            return path;
        }
    }
    panic!("tcpdump not found in PATH or /usr/sbin: run scripts/setup.sh");
}

/// The `xcap` binary, freshly built: `$XCAP_BIN` if set, else `cargo build
/// -p xcap` into the target directory and profile of the running test.
pub fn xcap_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| built("XCAP_BIN", &["-p", "xcap", "--bin", "xcap"], "xcap"))
        .clone()
}

/// The `talker` example (traffic under a command name of its choice, for
/// the attribution tests): `$XCAP_TALKER_BIN`, or built as [`xcap_bin`].
pub fn talker_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        built(
            "XCAP_TALKER_BIN",
            &["-p", "xcap-tests", "--example", "talker"],
            "examples/talker",
        )
    })
    .clone()
}

/// `$var`, or what `cargo build ARGS` makes at `path` in this test's
/// target and profile folder.
fn built(var: &str, args: &[&str], path: &str) -> PathBuf {
    if let Some(bin) = std::env::var_os(var) {
        return PathBuf::from(bin);
    }
    // The test runs as <target>/<profile>/deps/<test>-<hash>.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary path");
    let target_dir = profile_dir.parent().expect("target dir");
    let profile = profile_dir.file_name().unwrap().to_str().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--quiet"])
        .args(args)
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap());
    let status = cmd.status().expect("running cargo build");
    assert!(status.success(), "cargo build {args:?} failed");
    let bin = profile_dir.join(path);
    assert!(bin.is_file(), "{} missing after the build", bin.display());
    bin
}

/// `out` is xcap's refusal: exit status 1 and one line on stderr,
/// `xcap: ...`, that contains `want`.
pub fn assert_one_error_line(out: &std::process::Output, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "status; stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("xcap: ") && err.contains(want),
        "wanted '{want}': {err}"
    );
}

/// Prints a line of the test report: to stdout, and appended to the file
/// `$XCAP_REPORT` when set (scripts/test.sh prints it at the end, since
/// cargo hides the output of passing tests).
pub fn report(line: &str) {
    println!("{line}");
    if let Some(path) = std::env::var_os("XCAP_REPORT") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}
