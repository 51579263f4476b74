//! Who sent each packet: xcap at TC names the process of every packet
//! (`--who`, pcapng comments) and keeps only the processes asked for
//! (`--pid`, `--comm`, `--cgroup`, `--container`), in the kernel; at the
//! tracing hooks (`tp_btf` tracepoints here) it does the same from the
//! packet's own socket, and says when the packet has none there.
//!
//! Each test makes private network namespaces joined by veth pairs
//! (10.201.N.0/24 between the talkers' namespace A and the server's B;
//! 10.202.N.0/24 and 10.203.N.0/24 on both sides of a forwarding
//! namespace), deletes them when it ends, and drives the `talker` example
//! (tests/examples/talker.rs): programs with command names of their own
//! ("t-one", "t-two", ...) that send UDP datagrams and open TCP
//! connections to a talker echoing both, each waiting for a word on stdin
//! before it makes a socket, so that its pid is known (or it is moved to a
//! cgroup) first. The cgroup test makes a cgroup v2 directory with a
//! container-style scope name (`docker-<64 hex digits>.scope`) and removes
//! it at the end.
//!
//! Needs root, a cgroup v2 hierarchy and tshark; a refusal by the kernel
//! is a failure, never a skip, but for fentry, which a kernel may refuse
//! (the build machine's does): there the test checks xcap's one-line
//! refusal, and the kernel matrix runs it where fentry loads (its
//! trampolines plan, as every trampoline test).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use xcap_tests::netns::{exec, mac_of, mac_text, Pair};
use xcap_tests::process::{output, run_text, sh, Proc};
use xcap_tests::{talker_bin, xcap_bin};

const PORT: &str = "7000";

/// Namespace A (talkers, 10.201.N.1, where xcap captures) and B (the echo
/// server, 10.201.N.2), joined by a veth pair.
struct Net {
    pair: Pair,
    a_if: String,
    /// Kept for its drop, which stops it.
    _server: Talker,
}

impl Net {
    fn new(tag: &str) -> Net {
        let pair = Pair::new(tag);
        let (a_if, b_if) = (format!("ow{}a", pair.n), format!("ow{}b", pair.n));
        pair.link(&a_if, &b_if);
        pair.up(&a_if, &b_if);
        for (ns, ifname, host) in [(&pair.a, &a_if, 1), (&pair.b, &b_if, 2)] {
            let addr = format!("10.201.{}.{host}/24", pair.n);
            run_text(Command::new("ip").args(["-n", ns, "addr", "add", &addr, "dev", ifname]));
        }
        let server = Talker::serve(&pair.b, &format!("10.201.{}.2", pair.n));
        Net {
            pair,
            a_if,
            _server: server,
        }
    }

    fn server_addr(&self) -> String {
        format!("10.201.{}.2", self.pair.n)
    }

    fn client_addr(&self) -> String {
        format!("10.201.{}.1", self.pair.n)
    }

    /// A talker in A that will talk to the server.
    fn talker(&self, name: &str, mode: &str) -> Talker {
        Talker::start(&self.pair.a, name, &[mode, &self.server_addr(), PORT, "2"])
    }

    /// xcap in A on the veth with `args`, listening.
    fn xcap(&self, args: &[&str]) -> Proc {
        let mut cmd = exec(&self.pair.a, xcap_bin());
        cmd.args(["-i", &self.a_if, "-n", "-U"]).args(args);
        let mut p = Proc::start_keeping_stdout(cmd);
        p.wait_listening("xcap");
        p
    }

    /// xcap in A at tracing hooks (which see every namespace) with
    /// `args`, listening.
    fn xcap_tracing(&self, args: &[&str]) -> Proc {
        let mut cmd = exec(&self.pair.a, xcap_bin());
        cmd.args(["-n", "-U"]).args(args);
        let mut p = Proc::start_keeping_stdout(cmd);
        p.wait_for("xcap", "tracing at");
        p
    }

    /// [`Net::xcap`] started from this namespace, entering A with
    /// `--netns`.
    fn xcap_by_netns(&self, args: &[&str]) -> Proc {
        let mut cmd = Command::new(xcap_bin());
        cmd.args(["--netns", &self.pair.a, "-i", &self.a_if, "-n", "-U"])
            .args(args);
        let mut p = Proc::start_keeping_stdout(cmd);
        p.wait_listening("xcap");
        p
    }
}

/// A running `talker`, its stdout lines coming in on a channel.
struct Talker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// The local ports it said it used ("udp P", "tcp P").
    ports: Vec<String>,
}

impl Talker {
    fn start(ns: &str, name: &str, args: &[&str]) -> Talker {
        let mut cmd = exec(ns, talker_bin());
        cmd.arg(name)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Talker {
            stdin: child.stdin.take(),
            child,
            lines,
            ports: Vec::new(),
        }
    }

    fn serve(ns: &str, addr: &str) -> Talker {
        let mut t = Talker::start(ns, "t-server", &["serve", addr, PORT]);
        t.wait_for("serving");
        t
    }

    /// `ip netns exec` execs the talker: its pid is the child's.
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the line `word`, noting the ports said before it.
    fn wait_for(&mut self, word: &str) {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line == word => return,
                Ok(line) => {
                    if let Some(port) = line.strip_prefix("udp ").or(line.strip_prefix("tcp ")) {
                        self.ports.push(port.to_owned());
                    }
                }
                Err(e) => panic!("talker {}: no {word:?} ({e})", self.child.id()),
            }
        }
    }

    /// Lets it make its sockets and talk, and waits until it is done.
    fn go(&mut self) {
        let stdin = self.stdin.as_mut().expect("talker stdin");
        stdin.write_all(b"go\n").expect("talker stdin");
        stdin.flush().expect("talker stdin");
        self.wait_for("done");
        let _ = self.child.wait();
    }
}

impl Drop for Talker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stops xcap (SIGINT) once the last packets had time to be printed; its
/// packet lines.
fn lines_of(xcap: Proc) -> Vec<String> {
    std::thread::sleep(Duration::from_millis(300));
    xcap.signal(libc::SIGINT);
    let (code, err, out) = xcap.finish_with_stdout("xcap");
    assert_eq!(code, 0, "xcap failed: {}", err.join("\n"));
    // A signal leaves an empty line after the packets, as tcpdump's.
    out.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The lines about local `port` (either way).
fn lines_about<'l>(lines: &'l [String], local: &str, port: &str) -> Vec<&'l String> {
    let me = format!("{local}.{port} ");
    let me_end = format!("{local}.{port}:");
    lines
        .iter()
        .filter(|l| l.contains(&me) || l.contains(&me_end))
        .collect()
}

/// Where a test captures: at TC on A's veth, both directions; or at the
/// `net_dev_queue` tracepoint, which sees every namespace, given only the
/// packets A sends (`src host` A).
#[derive(Clone, Copy, Debug)]
enum At {
    Tc,
    SentTracepoint,
}

impl At {
    /// xcap at this hook with `options` and the tcpdump expression `expr`
    /// (none when empty), listening.
    fn xcap(self, net: &Net, options: &[&str], expr: &str) -> Proc {
        match self {
            At::Tc => {
                let expr = (!expr.is_empty()).then_some(expr);
                net.xcap(&[options, expr.as_slice()].concat())
            }
            At::SentTracepoint => {
                let sent = format!("src host {}", net.client_addr());
                let expr = match expr {
                    "" => sent,
                    e => format!("({e}) and {sent}"),
                };
                let hook = ["--trace", "net_dev_queue"];
                net.xcap_tracing(&[&hook[..], options, &[expr.as_str()]].concat())
            }
        }
    }

    /// Checks that each port of `talker` shows up in `lines` going out
    /// and, at TC, coming back, over UDP and TCP.
    fn assert_traffic(self, lines: &[String], net: &Net, talker: &Talker) {
        let (me, server) = (net.client_addr(), net.server_addr());
        for port in &talker.ports {
            let out = format!("{me}.{port} > {server}.{PORT}:");
            let back = format!("{server}.{PORT} > {me}.{port}:");
            let seen = |what: &str| lines.iter().any(|l| l.contains(what));
            assert!(
                seen(&out) && (matches!(self, At::SentTracepoint) || seen(&back)),
                "{self:?}: port {port}: not every way in:\n{}",
                lines.join("\n")
            );
        }
        let udp = lines.iter().any(|l| l.contains(": UDP"));
        let tcp = lines.iter().any(|l| l.contains(": Flags"));
        assert!(udp && tcp, "no UDP or no TCP in:\n{}", lines.join("\n"));
    }

    /// The fewest packets of a TCP connection's exchange this hook sees.
    fn fewest_of_an_exchange(self) -> usize {
        match self {
            At::Tc => 4,
            At::SentTracepoint => 2,
        }
    }
}

#[test]
fn who_names_the_process_of_every_packet_both_ways_over_tcp_and_udp() {
    let net = Net::new("own-who");
    let mut one = net.talker("t-one", "talk");
    let mut two = net.talker("t-two", "talk");
    let xcap = net.xcap(&["--who", "tcp or udp"]);
    one.go();
    two.go();
    let lines = lines_of(xcap);
    for (t, name) in [(&one, "t-one"), (&two, "t-two")] {
        let said = format!("[pid={} tid=", t.pid());
        let comm = format!(" comm={name} ");
        for port in &t.ports {
            for l in lines_about(&lines, &net.client_addr(), port) {
                assert!(l.contains(&said) && l.contains(&comm), "not {name}: {l}");
            }
        }
    }
    At::Tc.assert_traffic(&lines, &net, &one);
    At::Tc.assert_traffic(&lines, &net, &two);
}

#[test]
fn pid_keeps_exactly_the_packets_of_that_process_inbound_included() {
    pid_keeps_exactly_the_packets_of_that_process(At::Tc);
}

#[test]
fn at_a_tracepoint_pid_keeps_exactly_the_packets_of_that_processs_sockets() {
    pid_keeps_exactly_the_packets_of_that_process(At::SentTracepoint);
}

fn pid_keeps_exactly_the_packets_of_that_process(at: At) {
    let net = Net::new(&format!("own-pid-{at:?}"));
    let mut one = net.talker("t-one", "talk");
    let mut two = net.talker("t-two", "talk");
    let pid = one.pid().to_string();
    let xcap = at.xcap(&net, &["--who", "--pid", &pid], "");
    one.go();
    two.go();
    let lines = lines_of(xcap);
    let said = format!("[pid={pid} tid=");
    for l in &lines {
        assert!(
            l.contains(&said) && l.contains(" comm=t-one "),
            "{at:?}: not t-one: {l}"
        );
    }
    at.assert_traffic(&lines, &net, &one);
    for port in &two.ports {
        assert!(
            lines_about(&lines, &net.client_addr(), port).is_empty(),
            "{at:?}: t-two's port {port} captured"
        );
    }
}

#[test]
fn a_tcp_connection_opened_before_xcap_started_is_attributed() {
    a_tcp_connection_opened_before_xcap_started_is_attributed_at(At::Tc);
}

#[test]
fn at_a_tracepoint_a_tcp_connection_opened_before_xcap_started_is_attributed() {
    a_tcp_connection_opened_before_xcap_started_is_attributed_at(At::SentTracepoint);
}

fn a_tcp_connection_opened_before_xcap_started_is_attributed_at(at: At) {
    let net = Net::new(&format!("own-before-{at:?}"));
    let mut held = net.talker("t-held", "hold");
    held.wait_for("connected");
    let xcap = at.xcap(&net, &["--who"], "tcp");
    held.go();
    let lines = lines_of(xcap);
    let port = held
        .ports
        .first()
        .expect("the held connection's port")
        .clone();
    let about = lines_about(&lines, &net.client_addr(), &port);
    assert!(
        about.len() >= at.fewest_of_an_exchange(),
        "{at:?}: too few packets of port {port}:\n{}",
        lines.join("\n")
    );
    let said = format!("[pid={} tid=", held.pid());
    for l in about {
        assert!(
            l.contains(&said) && l.contains(" comm=t-held "),
            "{at:?}: not t-held: {l}"
        );
    }
}

#[test]
fn comm_keeps_the_packets_of_threads_of_that_name_and_pcapng_comments_name_them() {
    let net = Net::new("own-comm");
    let mut one = net.talker("t-one", "talk");
    let mut two = net.talker("t-two", "talk");
    let file = net.pair.path("comm.pcapng");
    let xcap = net.xcap(&["--comm", "t-two", "-w", file.to_str().unwrap()]);
    one.go();
    two.go();
    lines_of(xcap);
    let comments = tshark_comments(&file);
    assert!(comments.len() >= 8, "too few packets: {comments:?}");
    let said = format!("pid={} tid=", two.pid());
    for c in &comments {
        assert!(
            c.contains(&said) && c.contains(" comm=t-two "),
            "not t-two: {c}"
        );
    }
}

/// Each packet's pcapng comment, as tshark reads it.
fn tshark_comments(file: &Path) -> Vec<String> {
    let text = run_text(Command::new("tshark").args(["-r"]).arg(file).args([
        "-T",
        "fields",
        "-e",
        "frame.comment",
    ]));
    text.lines().map(str::to_owned).collect()
}

#[test]
fn traffic_forwarded_through_a_namespace_is_marked_as_having_no_process_at_tc_and_tracing_hooks() {
    // A (10.202.N.1) - R (10.202.N.2, 10.203.N.1) - C (10.203.N.2).
    let left = Pair::new("own-fwd");
    let right = Pair::new("own-fwd");
    let n = left.n;
    let (a, r, c) = (&left.a, &left.b, &right.a);
    let (a_if, r_left, r_right, c_if) = (
        format!("ow{n}a"),
        format!("ow{n}l"),
        format!("ow{n}r"),
        format!("ow{n}c"),
    );
    left.link(&a_if, &r_left);
    left.up(&a_if, &r_left);
    run_text(Command::new("ip").args([
        "link", "add", &r_right, "netns", r, "type", "veth", "peer", "name", &c_if, "netns", c,
    ]));
    let setup = sh(&format!(
        "ip -n {a} addr add 10.202.{n}.1/24 dev {a_if}
         ip -n {r} addr add 10.202.{n}.2/24 dev {r_left}
         ip -n {r} addr add 10.203.{n}.1/24 dev {r_right}
         ip -n {c} addr add 10.203.{n}.2/24 dev {c_if}
         ip -n {r} link set {r_right} up
         ip -n {c} link set {c_if} up
         ip -n {c} link set lo up
         ip -n {a} route add default via 10.202.{n}.2
         ip -n {c} route add default via 10.203.{n}.1"
    ));
    assert!(setup.status.success(), "{setup:?}");
    run_text(exec(r, "sysctl").args(["-qw", "net.ipv4.ip_forward=1"]));
    let server_addr = format!("10.203.{n}.2");
    let _server = Talker::serve(c, &server_addr);
    let mut client = Talker::start(a, "t-far", &["talk", &server_addr, PORT, "2"]);

    let mut cmd = exec(r, xcap_bin());
    cmd.args(["-i", &r_left, "-n", "-U", "--who", "tcp or udp"]);
    let mut xcap = Proc::start_keeping_stdout(cmd);
    xcap.wait_listening("xcap");
    // And at a tracing hook, which sees every namespace: what R sends.
    let from_r = format!(
        "ip and (ether src {} or ether src {})",
        mac_text(&mac_of(r, &r_left)),
        mac_text(&mac_of(r, &r_right))
    );
    let mut cmd = exec(r, xcap_bin());
    cmd.args(["-n", "-U", "--trace", "net_dev_queue", "--who", &from_r]);
    let mut traced = Proc::start_keeping_stdout(cmd);
    traced.wait_for("xcap", "tracing at");
    client.go();
    for (lines, at_least) in [(lines_of(xcap), 8), (lines_of(traced), 8)] {
        assert!(
            lines.len() >= at_least,
            "too few packets:\n{}",
            lines.join("\n")
        );
        for l in &lines {
            assert!(
                l.contains("[no process here (no local socket"),
                "attributed: {l}"
            );
        }
    }
}

/// A cgroup v2 directory made for a test, with a container-style scope
/// below it; both removed on drop.
struct Cgroup {
    parent: PathBuf,
    scope: PathBuf,
    id: String,
}

impl Cgroup {
    fn new() -> Cgroup {
        let mount = cgroup2_mount();
        let parent = mount.join(format!("xcap-test-{}", std::process::id()));
        let id = format!(
            "{:016x}",
            0x5eed_0000_0000_0000u64 + u64::from(std::process::id())
        )
        .repeat(4);
        let scope = parent.join(format!("docker-{id}.scope"));
        std::fs::create_dir_all(&scope).unwrap_or_else(|e| panic!("{}: {e}", scope.display()));
        Cgroup { parent, scope, id }
    }

    /// The parent as a path in the hierarchy ("/xcap-test-PID").
    fn parent_path(&self) -> String {
        format!("/{}", self.parent.file_name().unwrap().to_string_lossy())
    }

    fn enter(&self, pid: u32) {
        std::fs::write(self.scope.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("moving {pid} to {}: {e}", self.scope.display()));
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.scope);
        let _ = std::fs::remove_dir(&self.parent);
    }
}

/// Where cgroup v2 is mounted, from this process's mount table.
fn cgroup2_mount() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    mounts
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            right.starts_with("cgroup2 ").then(|| PathBuf::from(point))
        })
        .expect("no cgroup v2 hierarchy mounted: the attribution tests need one")
}

#[test]
fn a_process_in_its_own_cgroup_is_selected_by_cgroup_and_by_container() {
    a_process_in_its_own_cgroup_is_selected_by_cgroup_and_by_container_at(At::Tc);
}

#[test]
fn at_a_tracepoint_cgroup_and_container_select_a_process_in_its_own_cgroup() {
    a_process_in_its_own_cgroup_is_selected_by_cgroup_and_by_container_at(At::SentTracepoint);
}

fn a_process_in_its_own_cgroup_is_selected_by_cgroup_and_by_container_at(at: At) {
    let net = Net::new(&format!("own-cgroup-{at:?}"));
    let cgroup = Cgroup::new();
    let prefix = cgroup.id[..12].to_owned();
    let parent = cgroup.parent_path();
    for select in [
        ["--cgroup", parent.as_str()],
        ["--container", prefix.as_str()],
    ] {
        let mut inside = net.talker("t-inside", "talk");
        let mut outside = net.talker("t-outside", "talk");
        cgroup.enter(inside.pid());
        let xcap = at.xcap(&net, &["--who", select[0], select[1]], "");
        inside.go();
        outside.go();
        let lines = lines_of(xcap);
        let container = format!(" container={} ", cgroup.id);
        for l in &lines {
            assert!(
                l.contains(" comm=t-inside ") && l.contains(&container),
                "{at:?} {select:?}: not t-inside in its container: {l}"
            );
        }
        at.assert_traffic(&lines, &net, &inside);
        drop(inside);
    }
}

#[test]
fn a_command_after_double_dash_is_captured_alone_and_its_exit_status_is_xcaps() {
    let net = Net::new("own-cmd");
    let mut other = net.talker("t-other", "talk");
    let server = net.server_addr();
    let talker = talker_bin();
    let command = [
        talker.to_str().unwrap(),
        "t-cmd",
        "talk",
        &server,
        PORT,
        "2",
        "3",
    ];
    let mut args = vec!["--who", "--"];
    args.extend(command);
    let xcap = net.xcap_by_netns(&args);
    other.go();
    let (code, err, out) = xcap.finish_with_stdout("xcap");
    assert_eq!(
        code,
        3,
        "xcap's status is not the command's: {}",
        err.join("\n")
    );
    // The command shares xcap's stdout: its port lines, then the packets.
    let ports: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("udp ").or(l.strip_prefix("tcp ")))
        .map(str::to_owned)
        .collect();
    let lines: Vec<String> = out
        .lines()
        .filter(|l| l.contains(" > "))
        .map(str::to_owned)
        .collect();
    assert!(!ports.is_empty(), "the command said no ports: {out}");
    for l in &lines {
        assert!(l.contains(" comm=t-cmd "), "not the command's: {l}");
    }
    let me = net.client_addr();
    for port in &ports {
        let out = format!("{me}.{port} > {server}.{PORT}:");
        let back = format!("{server}.{PORT} > {me}.{port}:");
        assert!(
            lines.iter().any(|l| l.contains(&out)) && lines.iter().any(|l| l.contains(&back)),
            "port {port}: not both ways in:\n{}",
            lines.join("\n")
        );
    }
    for port in &other.ports {
        assert!(
            lines_about(&lines, &me, port).is_empty(),
            "t-other's port {port} captured"
        );
    }
}

#[test]
fn at_a_tracepoint_comm_selects_and_pcapng_comments_name_the_socket_owner() {
    let net = Net::new("own-tcomm");
    let mut one = net.talker("t-one", "talk");
    let mut two = net.talker("t-two", "talk");
    let file = net.pair.path("tcomm.pcapng");
    let host = format!("host {}", net.server_addr());
    let xcap = net.xcap_tracing(&[
        "--trace",
        "net_dev_xmit",
        "--comm",
        "t-two",
        "-w",
        file.to_str().unwrap(),
        &host,
    ]);
    one.go();
    two.go();
    lines_of(xcap);
    let comments = tshark_comments(&file);
    assert!(comments.len() >= 6, "too few packets: {comments:?}");
    let said = format!(" pid={} tid=", two.pid());
    for c in &comments {
        assert!(
            c.starts_with("hook=net_dev_xmit ") && c.contains(&said) && c.contains(" comm=t-two "),
            "not t-two: {c}"
        );
        assert!(c.contains(" task_pid="), "no running task: {c}");
    }
}

#[test]
fn at_netif_receive_skb_a_packet_from_another_namespace_still_names_its_sender() {
    // A veth keeps the sender's socket on the packet until the receiving
    // namespace's IP layer lets it go: before that, the server's socket.
    let net = Net::new("own-trecv");
    let mut one = net.talker("t-one", "talk");
    let from_server = format!(
        "ip src {} and ip dst {}",
        net.server_addr(),
        net.client_addr()
    );
    let xcap = net.xcap_tracing(&["--trace", "netif_receive_skb", "--who", &from_server]);
    one.go();
    let lines = lines_of(xcap);
    assert!(lines.len() >= 4, "too few packets:\n{}", lines.join("\n"));
    for l in &lines {
        // A SYN-ACK's socket is a request socket, which names no process.
        if l.contains("Flags [S.]") {
            assert!(l.contains("[process unknown"), "{l}");
        } else {
            assert!(l.contains(" comm=t-server "), "not the server's: {l}");
        }
        assert!(l.contains("[task comm "), "no running task: {l}");
    }
}

#[test]
fn at_kfree_skb_a_datagram_for_no_socket_says_it_has_no_process_yet() {
    let net = Net::new("own-tyet");
    // Nothing listens on the port after the server's.
    let closed = "7001";
    let mut sender = Talker::start(
        &net.pair.a,
        "t-one",
        &["send", &net.server_addr(), closed, "3"],
    );
    let filter = format!("udp dst port {closed}");
    let xcap = net.xcap_tracing(&["--trace", "kfree_skb", "--who", &filter]);
    sender.go();
    let lines = lines_of(xcap);
    assert_eq!(
        lines.len(),
        3,
        "want the 3 datagrams:\n{}",
        lines.join("\n")
    );
    for l in &lines {
        assert!(l.contains(" kfree_skb reason NO_SOCKET "), "{l}");
        assert!(
            l.contains("[no process yet (no socket on the packet"),
            "attributed: {l}"
        );
    }
}

#[test]
fn fentry_tcp_v4_rcv_names_the_receiving_process_of_each_tcp_packet_or_is_refused_in_one_line() {
    let probe = output(Command::new("timeout").args([
        "3",
        xcap_bin().to_str().unwrap(),
        "--fentry",
        "tcp_v4_rcv",
        "--who",
        "tcp port 1",
    ]));
    let err = String::from_utf8_lossy(&probe.stderr).into_owned();
    if probe.status.code() == Some(1) && err.contains("the kernel refuses fentry programs") {
        assert_eq!(err.lines().count(), 1, "{err}");
        xcap_tests::report(
            "attribution: this kernel refuses fentry programs; checked the one-line refusal",
        );
        return;
    }
    // Received TCP packets carry their socket at tcp_v4_rcv (the IP
    // layer's early demux found it): t-one's, for the server's answers.
    let net = Net::new("own-fent");
    let mut one = net.talker("t-one", "talk");
    let mut two = net.talker("t-two", "talk");
    let pid = one.pid().to_string();
    let tcp = format!("tcp and host {}", net.server_addr());
    let xcap = net.xcap_tracing(&["--fentry", "tcp_v4_rcv", "--who", "--pid", &pid, &tcp]);
    one.go();
    two.go();
    let lines = lines_of(xcap);
    let said = format!("[pid={pid} tid=");
    for l in &lines {
        assert!(
            l.contains(&said) && l.contains(" comm=t-one "),
            "not t-one: {l}"
        );
    }
    let (me, server) = (net.client_addr(), net.server_addr());
    let tcp_ports = one.ports.iter().filter(|p| {
        lines.iter().any(|l| l.contains(&format!("{me}.{p} > ")))
            || lines
                .iter()
                .any(|l| l.contains(&format!("> {me}.{p}: Flags")))
    });
    assert!(
        tcp_ports.count() >= 2,
        "too few of t-one's connections:\n{}",
        lines.join("\n")
    );
    for l in &lines {
        assert!(
            l.contains(&format!("{server}.{PORT} > {me}.")),
            "not received by t-one: {l}"
        );
    }
    for port in &two.ports {
        assert!(
            lines_about(&lines, &me, port).is_empty(),
            "t-two's port {port} captured"
        );
    }
}
