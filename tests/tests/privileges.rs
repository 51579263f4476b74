//! Root given up once attached (`-Z`), seen from outside: the
//! `/proc/PID/status` of a running capture shows no root id and exactly
//! the capabilities the README names, and the capture goes on (its packets
//! written, its `-C` files created in a folder only root may write).
//!
//! Each test captures on one end of a veth pair between two private
//! namespaces (deleted when it ends); the traffic is numbered 1,000-byte
//! UDP frames sent through a packet socket on the other end. Needs root.
//! Host only: attaching after the drop is not what is tested, and TCX
//! makes the capture simple to read.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xcap_tests::netns::{exec, send_frames, spawn_in, Pair};
use xcap_tests::process::{output, run_text, Proc};
use xcap_tests::{assert_one_error_line, eth_ipv4, xcap_bin};

const TX_IF: &str = "pt0";
const RX_IF: &str = "pr0";

/// The capabilities' numbers, by the names the README uses.
const CAPS: &[(&str, u32)] = &[
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_NET_ADMIN", 12),
    ("CAP_BPF", 39),
];

fn net() -> Pair {
    let pair = Pair::new("xcap-priv");
    pair.link(TX_IF, RX_IF);
    pair.up(TX_IF, RX_IF);
    pair
}

fn send(pair: &Pair, n: u32) {
    let frames: Vec<Vec<u8>> = (0..n)
        .map(|seq| {
            let mut payload = seq.to_be_bytes().to_vec();
            payload.resize(958, 0);
            eth_ipv4(17, [10, 9, 0, 1], [10, 9, 0, 2], 4000, 7777, &payload)
        })
        .collect();
    spawn_in(&pair.a, move || {
        for chunk in frames.chunks(100) {
            send_frames(TX_IF, chunk);
            std::thread::sleep(Duration::from_millis(10));
        }
    })
    .join()
    .unwrap();
}

/// xcap on the receiving side with `args` and `env`, listening.
fn xcap(pair: &Pair, args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut cmd = exec(&pair.b, xcap_bin());
    cmd.env_remove("SUDO_USER");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(["-i", RX_IF]).args(args).arg("udp port 7777");
    let mut p = Proc::start(cmd);
    p.wait_listening("xcap");
    p
}

/// `Field:` of `/proc/PID/status`, split at white space.
fn status(pid: u32, field: &str) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {text}"));
    line.split_whitespace().map(str::to_owned).collect()
}

/// The names of the capabilities in a status mask.
fn cap_names(hex: &str) -> BTreeSet<&'static str> {
    let mask = u64::from_str_radix(hex, 16).unwrap();
    let known: u64 = CAPS.iter().map(|(_, n)| 1u64 << n).sum();
    assert_eq!(mask & !known, 0, "capabilities beyond {CAPS:?}: {hex}");
    CAPS.iter()
        .filter(|(_, n)| mask & (1 << n) != 0)
        .map(|(name, _)| *name)
        .collect()
}

/// The capabilities the README's `-Z` line names.
fn readme_caps() -> BTreeSet<String> {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(readme).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("`-Z USER`"))
        .expect("README names what stays privileged on its `-Z USER` line");
    line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("CAP_"))
        .map(str::to_owned)
        .collect()
}

fn uid_of(name: &str) -> String {
    run_text(Command::new("id").args(["-u", name]))
        .trim()
        .to_owned()
}

/// The user xcap becomes without `-Z` or sudo.
fn default_user() -> &'static str {
    match output(Command::new("id").arg("xcap")).status.success() {
        true => "xcap",
        false => "nobody",
    }
}

/// What the running capture is and keeps: (uid fields, effective caps,
/// permitted caps); inheritable and ambient sets must be empty.
fn identity(p: &Proc) -> (Vec<String>, BTreeSet<&'static str>, BTreeSet<&'static str>) {
    let pid = p.pid();
    for empty in ["CapInh", "CapAmb"] {
        assert_eq!(status(pid, empty), ["0000000000000000"], "{empty}");
    }
    (
        status(pid, "Uid"),
        cap_names(&status(pid, "CapEff")[0]),
        cap_names(&status(pid, "CapPrm")[0]),
    )
}

fn packets_in(path: &Path) -> usize {
    let mut cap = pcap::Capture::from_file(path).unwrap();
    let mut n = 0;
    while cap.next_packet().is_ok() {
        n += 1;
    }
    n
}

#[test]
fn a_capture_gives_up_root_keeping_only_net_admin_and_bpf_as_the_readme_says() {
    let pair = net();
    let file = pair.path("out.pcap");
    let p = xcap(&pair, &["-w", file.to_str().unwrap()], &[]);
    let (uids, effective, permitted) = identity(&p);
    let user = default_user();
    assert_eq!(
        uids,
        vec![uid_of(user); 4],
        "real, effective, saved, fs uid"
    );
    let want: BTreeSet<&str> = ["CAP_BPF", "CAP_NET_ADMIN"].into();
    assert_eq!(effective, want);
    assert_eq!(permitted, want);
    let named = readme_caps();
    assert!(
        want.iter().all(|c| named.contains(*c)),
        "README names {named:?}"
    );
    // It goes on capturing, into a file that is the user's.
    send(&pair, 20);
    std::thread::sleep(Duration::from_millis(1500));
    p.signal(libc::SIGINT);
    let (code, lines) = p.finish("xcap");
    assert_eq!(code, 0, "{}", lines.join("\n"));
    assert_eq!(packets_in(&file), 20);
    let owner = std::fs::metadata(&file).unwrap().uid().to_string();
    assert_eq!(owner, uid_of(user));
}

#[test]
fn rotation_into_a_folder_only_root_writes_keeps_dac_override_for_the_sudo_user() {
    let pair = net();
    // The scratch folder is root's (0755): nobody may not create files.
    let file = pair.path("out");
    let p = xcap(
        &pair,
        &["-w", file.to_str().unwrap(), "-C", "1"],
        &[("SUDO_USER", "nobody")],
    );
    let (uids, effective, _) = identity(&p);
    assert_eq!(uids, vec![uid_of("nobody"); 4]);
    let want: BTreeSet<&str> = ["CAP_BPF", "CAP_DAC_OVERRIDE", "CAP_NET_ADMIN"].into();
    assert_eq!(effective, want);
    assert!(readme_caps().contains("CAP_DAC_OVERRIDE"));
    send(&pair, 2500);
    std::thread::sleep(Duration::from_millis(1500));
    p.signal(libc::SIGINT);
    let (code, lines) = p.finish("xcap");
    assert_eq!(code, 0, "{}", lines.join("\n"));
    let total: usize = ["out", "out1", "out2"]
        .iter()
        .map(|n| packets_in(&pair.path(n)))
        .sum();
    assert_eq!(total, 2500);
}

#[test]
fn minus_z_root_keeps_root() {
    let pair = net();
    let p = xcap(&pair, &["-Z", "root"], &[("SUDO_USER", "nobody")]);
    assert_eq!(status(p.pid(), "Uid"), ["0", "0", "0", "0"]);
    p.signal(libc::SIGINT);
    let (code, lines) = p.finish("xcap");
    assert_eq!(code, 0, "{}", lines.join("\n"));
}

#[test]
fn an_unknown_user_is_refused_in_one_line_before_anything_is_attached() {
    let pair = net();
    let out =
        output(exec(&pair.b, xcap_bin()).args(["-i", RX_IF, "-Z", "no-such-user-xcap", "udp"]));
    assert_one_error_line(&out, "Couldn't find user 'no-such-user-xcap'");
    let attached = run_text(exec(&pair.b, "bpftool").args(["net", "show", "dev", RX_IF]));
    assert!(!attached.contains("xcap"), "{attached}");
}
