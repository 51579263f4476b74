//! `--xdp-hook PROG` end to end (issue 17): fentry and fexit on an XDP
//! program already attached, with verdicts and paired packet ids, and the
//! refusals that leave nothing attached.
//!
//! Each test makes two private network namespaces joined by a veth pair
//! (10.233.N.1 on side A's `va`, 10.233.N.2 on side B's `vb`), IPv6 off so
//! that nothing but the test's datagrams crosses it. The fixture (C, built
//! here with `clang -target bpf -g`) is attached to `vb`: UDP to port 7001
//! is dropped, to 7002 sent back with its MAC addresses swapped
//! (`XDP_TX`), anything else passed. `va` has a program that passes
//! everything (veth sends `XDP_TX` frames only to a peer with XDP). The
//! traffic is UDP sent from A with python3. The namespaces are deleted when
//! the test ends, however it ends.
//!
//! On a kernel that refuses BPF trampolines (this project's build machine)
//! the capture test checks the one-line refusal instead; the guest kernels
//! (scripts/matrix-guest.sh) run the capture. Needs root, clang, ip,
//! bpftool, python3 and tshark; every refusal is a failure, never a skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use xcap_tests::netns::{exec, mac_of, mac_text, Pair};
use xcap_tests::process::{output, run, run_text, serial, sh, tshark_fields, with_bpffs, Proc};
use xcap_tests::programs::programs_left;
use xcap_tests::{assert_one_error_line, xcap_bin};

/// The XDP program the tests hook (see the top).
const FIXTURE: &str = r#"
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))

SEC("xdp")
int xdp_fixture(struct xdp_md *ctx)
{
	unsigned char *data = (unsigned char *)(long)ctx->data;
	unsigned char *end = (unsigned char *)(long)ctx->data_end;
	struct ethhdr *eth = (struct ethhdr *)data;
	if ((unsigned char *)(eth + 1) > end || eth->h_proto != __builtin_bswap16(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (struct iphdr *)(eth + 1);
	if ((unsigned char *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != 17)
		return XDP_PASS;
	struct udphdr *udp = (struct udphdr *)(ip + 1);
	if ((unsigned char *)(udp + 1) > end)
		return XDP_PASS;
	if (udp->dest == __builtin_bswap16(7001))
		return XDP_DROP;
	if (udp->dest == __builtin_bswap16(7002)) {
		unsigned char tmp[ETH_ALEN];
		__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
		__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
		return XDP_TX;
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
"#;

/// Passes everything: on `va`, so that veth delivers `XDP_TX` frames.
const PEER: &str = r#"
#include <linux/bpf.h>
#define SEC(name) __attribute__((section(name), used))
SEC("xdp")
int xdp_peer_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
"#;

/// The second component under libxdp's dispatcher: drops UDP to port
/// 7003, passes the rest.
const SECOND: &str = r#"
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))

SEC("xdp")
int xdp_second(struct xdp_md *ctx)
{
	unsigned char *data = (unsigned char *)(long)ctx->data;
	unsigned char *end = (unsigned char *)(long)ctx->data_end;
	struct ethhdr *eth = (struct ethhdr *)data;
	struct iphdr *ip = (struct iphdr *)(eth + 1);
	struct udphdr *udp = (struct udphdr *)(ip + 1);
	if ((unsigned char *)(udp + 1) > end || eth->h_proto != __builtin_bswap16(ETH_P_IP) ||
	    ip->ihl != 5 || ip->protocol != 17)
		return XDP_PASS;
	return udp->dest == __builtin_bswap16(7003) ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
"#;

/// Takes frames in several buffers (`xdp.frags`: loaded with
/// BPF_F_XDP_HAS_FRAGS, so veth allows a 9000-byte MTU); passes a frame
/// whose first buffer holds only part of it, drops the rest, so a passed
/// verdict shows that the frame came in several buffers.
const FRAGS: &str = r#"
#include <linux/bpf.h>
#define SEC(name) __attribute__((section(name), used))
static long (*xdp_get_buff_len)(struct xdp_md *) = (void *)BPF_FUNC_xdp_get_buff_len;
SEC("xdp.frags")
int xdp_frags(struct xdp_md *ctx)
{
	long first = (long)ctx->data_end - (long)ctx->data;
	return xdp_get_buff_len(ctx) > first ? XDP_PASS : XDP_DROP;
}
char _license[] SEC("license") = "GPL";
"#;

/// A socket filter: a program that is not XDP.
const SOCKET: &str = r#"
#define SEC(name) __attribute__((section(name), used))
SEC("socket")
int xcapt_socket(void *skb)
{
	return 0;
}
char _license[] SEC("license") = "GPL";
"#;

/// Compiles `source` for BPF into the pair's folder, with BTF when `btf`.
fn compile(pair: &Pair, name: &str, source: &str, btf: bool) -> PathBuf {
    let c = pair.path(&format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let o = pair.path(&format!("{name}.o"));
    let mut cmd = Command::new("clang");
    cmd.args(["-O2", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu"]);
    if btf {
        cmd.arg("-g");
    }
    run(cmd.arg("-c").arg(&c).arg("-o").arg(&o));
    o
}

/// Sides A and B (see the top), B's subnet and both MAC addresses.
struct Net {
    pair: Pair,
    subnet: String,
    mac_a: [u8; 6],
    mac_b: [u8; 6],
}

impl Net {
    /// The namespaces and the veth pair, with `vb`'s program built with or
    /// without BTF.
    fn new(btf: bool) -> Net {
        let net = Net::without_fixture();
        let fixture = compile(&net.pair, "fixture", FIXTURE, btf);
        attach_xdp(&net.pair.b, "vb", &fixture);
        net
    }

    /// The namespaces and the veth pair, `va`'s pass program attached and
    /// `vb` without a program.
    fn without_fixture() -> Net {
        let pair = Pair::new("xcap-xh");
        let subnet = pair.subnet(233);
        pair.link("va", "vb");
        let (a, b) = (&pair.a, &pair.b);
        // No IPv6: no router solicitations or other traffic of its own
        // (patching a trampoline into a program that runs at that moment
        // has crashed emulated guests).
        for ns in [a, b] {
            sh(&format!(
                "ip netns exec {ns} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
            ));
        }
        pair.address("va", "vb", &subnet);
        pair.up("va", "vb");
        let (mac_a, mac_b) = (mac_of(a, "va"), mac_of(b, "vb"));
        // Static neighbours: no ARP crossing while programs attach.
        sh(&format!(
            "ip -n {a} neigh add {subnet}.2 lladdr {} dev va
             ip -n {b} neigh add {subnet}.1 lladdr {} dev vb",
            mac_text(&mac_b),
            mac_text(&mac_a)
        ));
        let peer = compile(&pair, "peer", PEER, true);
        attach_xdp(a, "va", &peer);
        Net {
            pair,
            subnet,
            mac_a,
            mac_b,
        }
    }

    /// Sends one 5-byte UDP datagram from A to B for each port.
    fn send(&self, ports: &[u16]) {
        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
        let script = format!(
            "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor p in [{}]:\n  s.sendto(b'hello',('{}.2',p))\n  time.sleep(0.05)\n",
            list.join(","),
            self.subnet
        );
        run(exec(&self.pair.a, "python3").args(["-c", &script]));
    }

    /// Sends one UDP datagram of `len` bytes (byte i is i % 256) from A
    /// to B's `port`.
    fn send_bytes(&self, port: u16, len: usize) {
        let script = format!(
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.sendto(bytes(i % 256 for i in range({len})),('{}.2',{port}))\n",
            self.subnet
        );
        run(exec(&self.pair.a, "python3").args(["-c", &script]));
    }

    /// The id of the fixture attached to `vb`.
    fn fixture_id(&self) -> String {
        let text = run_text(Command::new("ip").args(["-n", &self.pair.b, "link", "show", "vb"]));
        text.split("prog/xdp id ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no XDP program on vb: {text}"))
            .to_owned()
    }
}

/// `xdp-loader ARGS` in namespace `ns`. libxdp keeps its dispatcher's
/// components attached through pins under /sys/fs/bpf, so that must be a
/// BPF filesystem: the guests have one; elsewhere one is mounted in a
/// private mount namespace, whose pins go with it (enough to see
/// xdp-loader refused).
fn xdp_loader(ns: &str, args: &str) -> std::process::Output {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let has_bpffs = mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf") && l.contains(" bpf "));
    let load = format!("nsenter --net=/run/netns/{ns} xdp-loader {args}");
    let script = if has_bpffs {
        load
    } else {
        format!("mount -t bpf bpf /sys/fs/bpf && {load}")
    };
    output(Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]))
}

/// libxdp's dispatcher on `vb`, running the fixture, then [`SECOND`]
/// where the fixture passes (libxdp's default chain-call action);
/// unloaded, pins included, when dropped.
struct Dispatcher<'n> {
    net: &'n Net,
}

impl<'n> Dispatcher<'n> {
    /// The dispatcher, or xdp-loader's complaint.
    fn load(net: &'n Net) -> Result<Dispatcher<'n>, String> {
        let fixture = compile(&net.pair, "fixture", FIXTURE, true);
        let second = compile(&net.pair, "second", SECOND, true);
        let out = xdp_loader(
            &net.pair.b,
            &format!(
                "load -m native vb {} {}",
                fixture.display(),
                second.display()
            ),
        );
        let dispatcher = Dispatcher { net };
        if out.status.success() {
            Ok(dispatcher)
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for Dispatcher<'_> {
    fn drop(&mut self) {
        xdp_loader(&self.net.pair.b, "unload -a vb");
    }
}

fn attach_xdp(ns: &str, ifname: &str, object: &Path) {
    attach_xdp_section(ns, ifname, object, "xdp");
}

fn attach_xdp_section(ns: &str, ifname: &str, object: &Path, section: &str) {
    run(Command::new("ip")
        .args(["-n", ns, "link", "set", "dev", ifname, "xdp", "obj"])
        .arg(object)
        .args(["sec", section]));
}

/// xcap with `args`, run in B's namespace (where `vb` has its name).
fn xcap_in(net: &Net, args: &[&str]) -> Command {
    let mut cmd = exec(&net.pair.b, xcap_bin());
    cmd.args(args);
    cmd
}

/// Starts xcap and waits until it has hooked the program.
fn start(net: &Net, args: &[&str]) -> Proc {
    Proc::start_hooked(xcap_in(net, args), "xcap: hooking with")
}

/// SIGINT, once the packets had time to arrive; the exit status and stdout.
fn finish(p: Proc) -> (i32, String) {
    p.interrupt_after(Duration::from_millis(500))
}

/// xcap's programs of `--xdp-hook` left in the kernel (held by no
/// process: other xcaps may run meanwhile).
fn xcap_xdp_hook_programs() -> BTreeMap<u64, String> {
    programs_left(&["name xcap_xdp_entry", "name xcap_xdp_exit"])
}

/// What xcap says when this kernel refuses trampolines; `None` when it
/// hooks the program (it runs until `timeout` stops it).
fn trampoline_refusal(net: &Net) -> Option<String> {
    let mut cmd = exec(&net.pair.b, "timeout");
    cmd.arg("5")
        .arg(xcap_bin())
        .args(["--xdp-hook", "vb", "udp port 1"]);
    let probe = output(&mut cmd);
    let err = String::from_utf8_lossy(&probe.stderr).into_owned();
    (probe.status.code() == Some(1) && err.contains("refuses fentry/fexit programs")).then_some(err)
}

/// Some kernels refuse BPF trampolines outright (the build machine's):
/// there the contract is the refusal, one line naming the program, exit 1,
/// nothing attached; elsewhere, the capture.
#[test]
fn xdp_hook_captures_entry_and_exit_with_verdicts_or_is_refused_in_one_line() {
    let _g = serial();
    let net = Net::new(true);
    match trampoline_refusal(&net) {
        Some(err) => {
            let id = net.fixture_id();
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(
                err.starts_with("xcap: cannot load the capture programs: --xdp-hook: the kernel refuses fentry/fexit programs")
                    && err.contains(&format!("so program {id} (xdp_fixture) at entry cannot be hooked")),
                "{err}"
            );
            assert!(xcap_xdp_hook_programs().is_empty());
            xcap_tests::report(
                "xdp-hook: this kernel refuses fentry/fexit programs; checked the one-line refusal",
            );
        }
        None => assert_entry_and_exit_captured(&net),
    }
}

/// Entry and exit of each datagram to 7000 (passed), 7001 (dropped) and
/// 7002 (sent back, MACs swapped), in a pcapng file and as text; 7003
/// fails the port filter. A second capture filters on A's source MAC: at
/// exit the rewritten frame no longer matches.
fn assert_entry_and_exit_captured(net: &Net) {
    let file = net.pair.path("hook.pcapng");
    let filter = "udp dst port 7000 or udp dst port 7001 or udp dst port 7002";
    let to_file = start(
        net,
        &["--xdp-hook", "vb", "-w", file.to_str().unwrap(), filter],
    );
    let by_mac = format!("ether src {} and udp", mac_text(&net.mac_a));
    let text = start(net, &["--xdp-hook", "xdp_fixture", "-Q", "inout", &by_mac]);
    let exits = start(net, &["--xdp-hook", &net.fixture_id(), "-Q", "out", filter]);
    net.send(&[7000, 7001, 7002, 7003]);
    let (code, _) = finish(to_file);
    let (code_text, lines) = finish(text);
    let (code_exits, exit_lines) = finish(exits);
    assert_eq!((code, code_text, code_exits), (0, 0, 0));

    let rows = tshark_fields(
        &file,
        &[
            "frame.interface_name",
            "frame.verdict.ebpf_xdp",
            "frame.packet_id",
            "eth.src",
            "udp.dstport",
        ],
    );
    assert_eq!(rows.len(), 6, "3 datagrams in and out: {rows:?}");
    let (a, b) = (mac_text(&net.mac_a), mac_text(&net.mac_b));
    let want = [("7000", "2", &a), ("7001", "1", &a), ("7002", "3", &b)];
    for (port, verdict, exit_src) in want {
        let of_port: Vec<&Vec<String>> = rows.iter().filter(|r| r[4] == port).collect();
        assert_eq!(of_port.len(), 2, "entry and exit of {port}: {rows:?}");
        let (entry, exit) = (of_port[0], of_port[1]);
        assert_eq!(entry[0], "xdp-entry:xdp_fixture:EN10MB", "{rows:?}");
        assert_eq!(exit[0], "xdp-exit:xdp_fixture:EN10MB", "{rows:?}");
        assert_eq!(entry[1], "", "entry copies carry no verdict: {rows:?}");
        assert_eq!(exit[1], verdict, "verdict of {port}: {rows:?}");
        assert_eq!(entry[2], exit[2], "one packet id for the pair: {rows:?}");
        assert_eq!(entry[3], a, "{rows:?}");
        assert_eq!(
            &exit[3], exit_src,
            "the exit copy shows the rewrite: {rows:?}"
        );
    }
    let ids: std::collections::BTreeSet<&String> = rows.iter().map(|r| &r[2]).collect();
    assert_eq!(ids.len(), 3, "one id per datagram: {rows:?}");

    // Filtered on A's MAC: the 4 entries (7003 too), and the exits of all
    // but 7002, whose rewritten source is B's.
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines.len(), 7, "{lines:?}");
    let count = |what: &str| lines.iter().filter(|l| l.contains(what)).count();
    assert_eq!(
        count(" xdp-entry:xdp_fixture vb EN10MB len 47 "),
        4,
        "{lines:?}"
    );
    assert_eq!(
        count(" xdp-exit:xdp_fixture verdict XDP_PASS vb "),
        2,
        "{lines:?}"
    );
    assert_eq!(
        count(" xdp-exit:xdp_fixture verdict XDP_DROP vb "),
        1,
        "{lines:?}"
    );
    assert_eq!(count("XDP_TX"), 0, "{lines:?}");
    assert_eq!(count(" [id 0x"), 7, "{lines:?}");

    // -Q out: the exits alone.
    let exit_lines: Vec<&str> = exit_lines.lines().collect();
    assert_eq!(exit_lines.len(), 3, "{exit_lines:?}");
    assert!(exit_lines
        .iter()
        .all(|l| l.contains(" xdp-exit:xdp_fixture verdict ")));
    assert!(xcap_xdp_hook_programs().is_empty());
}

/// A name that matches nothing or two programs, an interface without XDP,
/// a program without BTF, a program that is not XDP: one line each, exit
/// 1, nothing attached (checked before anything loads, so on every
/// kernel).
#[test]
fn xdp_hook_refuses_what_it_cannot_hook_in_one_line() {
    let _g = serial();
    let net = Net::new(true);
    let refused = |args: &[&str], want: &str| {
        let out = output(&mut xcap_in(&net, args));
        assert_one_error_line(&out, want);
        assert!(out.stdout.is_empty());
        assert!(xcap_xdp_hook_programs().is_empty());
    };
    refused(
        &["--xdp-hook", "xcapt_nothing", "udp"],
        "--xdp-hook xcapt_nothing: no program id, pinned path, interface or program name matches",
    );
    refused(
        &["--xdp-hook", "lo", "udp"],
        "--xdp-hook lo: no XDP program is attached to this interface",
    );

    // The same program twice: its name is ambiguous.
    let second = Net::new(false);
    let id = second.fixture_id();
    refused(
        &["--xdp-hook", "xdp_fixture", "udp"],
        "--xdp-hook xdp_fixture: 2 programs have this name (ids ",
    );
    refused(
        &["--xdp-hook", &id, "udp"],
        &format!("--xdp-hook {id}: program {id} (xdp_fixture) has no BTF, which fentry/fexit need to attach to it"),
    );

    let socket = compile(&net.pair, "socket", SOCKET, true);
    let out = with_bpffs(&format!(
        "bpftool prog load {} \"$D/socket\" type socket
         {} --xdp-hook \"$D/socket\" udp 2>&1 && echo status 0 || echo \"status $?\"",
        socket.display(),
        xcap_bin().display(),
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("xcap: --xdp-hook /")
            && lines[0].ends_with(" (xcapt_socket) is not an XDP program (type 1)"),
        "{out}"
    );
    assert_eq!(lines[1], "status 1", "{out}");
    assert!(xcap_xdp_hook_programs().is_empty());
}

/// Where libxdp's dispatcher is attached (xdp-loader with two programs),
/// `--xdp-hook IFACE` hooks each component: entry and exit of each with
/// its own verdict, in the order the dispatcher runs them, a packet the
/// first one ends (drop, `XDP_TX`) never seen by the second, and one
/// packet id for a packet's copies at every component. A component is
/// hooked alone by its name too. Where the kernel refuses trampolines,
/// libxdp cannot build its dispatcher (it attaches the components with
/// freplace), which the test checks, with xcap's refusal.
#[test]
fn xdp_hook_on_an_interface_with_libxdps_dispatcher_captures_each_component_with_its_verdict() {
    let _g = serial();
    let net = Net::without_fixture();
    let dispatcher = match Dispatcher::load(&net) {
        Ok(d) => d,
        Err(complaint) => {
            assert!(
                complaint.contains("Can't fall back to legacy load with 2 programs"),
                "{complaint}"
            );
            let plain = Net::new(true);
            assert!(
                trampoline_refusal(&plain).is_some(),
                "xdp-loader failed on a kernel with trampolines: {complaint}"
            );
            xcap_tests::report(
                "xdp-hook: this kernel refuses trampolines, so libxdp builds no dispatcher (xdp-loader refused); checked",
            );
            return;
        }
    };
    let file = net.pair.path("components.pcapng");
    let to_file = start(
        &net,
        &["--xdp-hook", "vb", "-w", file.to_str().unwrap(), "udp"],
    );
    let second_exits = start(&net, &["--xdp-hook", "xdp_second", "-Q", "out", "udp"]);
    net.send(&[7000, 7001, 7002, 7003]);
    let (code, _) = finish(to_file);
    let (code_second, lines) = finish(second_exits);
    assert_eq!((code, code_second), (0, 0));
    drop(dispatcher);

    let rows = tshark_fields(
        &file,
        &[
            "frame.interface_name",
            "frame.verdict.ebpf_xdp",
            "frame.packet_id",
            "udp.dstport",
        ],
    );
    let (entry1, exit1) = (
        "xdp-entry:xdp_fixture:EN10MB",
        "xdp-exit:xdp_fixture:EN10MB",
    );
    let (entry2, exit2) = ("xdp-entry:xdp_second:EN10MB", "xdp-exit:xdp_second:EN10MB");
    let want: [(&str, &[(&str, &str)]); 4] = [
        (
            "7000",
            &[(entry1, ""), (exit1, "2"), (entry2, ""), (exit2, "2")],
        ),
        ("7001", &[(entry1, ""), (exit1, "1")]),
        ("7002", &[(entry1, ""), (exit1, "3")]),
        (
            "7003",
            &[(entry1, ""), (exit1, "2"), (entry2, ""), (exit2, "1")],
        ),
    ];
    assert_eq!(rows.len(), 12, "{rows:?}");
    for (port, copies) in want {
        let of_port: Vec<&Vec<String>> = rows.iter().filter(|r| r[3] == port).collect();
        let seen: Vec<(&str, &str)> = of_port
            .iter()
            .map(|r| (r[0].as_str(), r[1].as_str()))
            .collect();
        assert_eq!(seen, copies, "copies of the datagram to {port}: {rows:?}");
        assert!(
            of_port.iter().all(|r| r[2] == of_port[0][2]),
            "one packet id for every copy of {port}: {rows:?}"
        );
    }
    let ids: std::collections::BTreeSet<&String> = rows.iter().map(|r| &r[2]).collect();
    assert_eq!(ids.len(), 4, "one id per datagram: {rows:?}");

    // By name, the second component alone, at exit.
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains(" xdp-exit:xdp_second verdict XDP_PASS vb "),
        "{lines:?}"
    );
    assert!(
        lines[1].contains(" xdp-exit:xdp_second verdict XDP_DROP vb "),
        "{lines:?}"
    );
    assert!(xcap_xdp_hook_programs().is_empty());
}

/// A frame larger than a page reaches a frags-aware program (`xdp.frags`,
/// on a veth with a 9000-byte MTU) in several buffers (the program's
/// `XDP_PASS` says so); `--xdp-hook` captures it whole at entry and exit:
/// wire and captured length 8,042 bytes, every payload byte as sent, one
/// packet id. Where the kernel refuses trampolines, the one-line refusal.
#[test]
fn xdp_hook_captures_multi_buffer_frames_whole() {
    let _g = serial();
    let net = Net::without_fixture();
    let (a, b) = (&net.pair.a, &net.pair.b);
    // va's pass program takes one buffer, which a 9000-byte MTU exceeds.
    sh(&format!(
        "ip -n {a} link set dev va xdp off
         ip -n {a} link set dev va mtu 9000
         ip -n {b} link set dev vb mtu 9000"
    ));
    let frags = compile(&net.pair, "frags", FRAGS, true);
    attach_xdp_section(b, "vb", &frags, "xdp.frags");
    if let Some(err) = trampoline_refusal(&net) {
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("(xdp_frags) at entry cannot be hooked"),
            "{err}"
        );
        assert!(xcap_xdp_hook_programs().is_empty());
        xcap_tests::report(
            "xdp-hook: this kernel refuses fentry/fexit programs; multi-buffer capture checked as the one-line refusal",
        );
        return;
    }
    let file = net.pair.path("frags.pcapng");
    let cap = start(
        &net,
        &[
            "--xdp-hook",
            "vb",
            "-w",
            file.to_str().unwrap(),
            "udp dst port 7000",
        ],
    );
    let payload_len = 8000;
    net.send_bytes(7000, payload_len);
    let (code, _) = finish(cap);
    assert_eq!(code, 0);

    // Port 7000 is AFS's to tshark: read the payload as plain data.
    let text = run_text(
        Command::new("tshark")
            .arg("-r")
            .arg(&file)
            .args(["-d", "udp.port==7000,data", "-T", "fields"])
            .args(["-e", "frame.interface_name", "-e", "frame.packet_id"])
            .args(["-e", "frame.len", "-e", "frame.cap_len", "-e", "data.data"])
            .args(["-e", "frame.verdict.ebpf_xdp"]),
    );
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2, "entry and exit: {text}");
    let sent: String = (0..payload_len)
        .map(|i| format!("{:02x}", i % 256))
        .collect();
    for (row, side) in rows.iter().zip(["xdp-entry", "xdp-exit"]) {
        assert_eq!(row[0], format!("{side}:xdp_frags:EN10MB"), "{row:?}");
        assert_eq!((row[2], row[3]), ("8042", "8042"), "{row:?}");
        assert!(
            row[4] == sent,
            "{side}: the payload differs from what was sent"
        );
    }
    assert_eq!(rows[0][1], rows[1][1], "one packet id: {text}");
    assert_eq!(
        (rows[0][5], rows[1][5]),
        ("", "2"),
        "XDP_PASS: the frame came in several buffers"
    );
    assert!(xcap_xdp_hook_programs().is_empty());
}
