//! The plan for command lines, without privileges: which job wins, what
//! each cross-flag check refuses (with the message users see), and what
//! the defaults become.

use capture::trace::TraceHook;
use capture::{DirectionFilter, Wakeup, XdpMode};
use cbpf2ebpf::Mode;
use clap::Parser;

use super::*;
use crate::print::{Dump, DumpKind, Stamps, Style};

/// The plan for `xcap ARGS...`, or its error message.
fn plan_of(args: &[&str]) -> Result<Plan, String> {
    let cli = Cli::try_parse_from(std::iter::once("xcap").chain(args.iter().copied()))
        .map_err(|e| format!("usage: {e}"))?;
    plan(&cli).map_err(|e| format!("{e:#}"))
}

fn error_of(args: &[&str]) -> String {
    match plan_of(args) {
        Ok(p) => panic!("{args:?} gave a plan: {p:?}"),
        Err(e) => e,
    }
}

fn capture_of(args: &[&str]) -> Capture {
    match plan_of(args) {
        Ok(Plan::Capture(c)) => c,
        other => panic!("{args:?}: not a capture: {other:?}"),
    }
}

/// A file the test owns, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        // One file per call: tests run in parallel, and one's drop must not
        // remove another's file.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("xcap-plan-{}-{n}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `ld #1; ret a` as `tcpdump -ddd` prints it.
fn raw_program() -> TempFile {
    TempFile::new("raw", "2\n0 0 0 1\n22 0 0 0\n")
}

#[test]
fn the_interface_list_wins_over_every_other_flag() {
    for args in [
        &["-D"][..],
        &["-D", "-d", "ip"],
        &["-D", "--trace", "kfree_skb", "-i", "lo"],
        &["-D", "-r", "/nonexistent", "--hook", "xdp"],
        &["-D", "-F", "/nonexistent"],
    ] {
        assert_eq!(plan_of(args), Ok(Plan::ListInterfaces), "{args:?}");
    }
}

#[test]
fn the_filter_is_read_before_any_flag_is_checked() {
    for args in [
        &["-F", "/nonexistent", "-i", "lo"][..],
        &[
            "--raw-cbpf",
            "/nonexistent",
            "--trace",
            "kfree_skb",
            "-i",
            "lo",
        ],
        &["-F", "/nonexistent", "-r", "f.pcap", "--hook", "xdp"],
        &["-F", "/nonexistent", "-d", "-y", "NOPE"],
    ] {
        assert_eq!(
            error_of(args),
            "can't open /nonexistent: No such file or directory",
            "{args:?}"
        );
    }
}

#[test]
fn a_filter_file_replaces_the_words_and_loses_its_comments() {
    let f = TempFile::new("filter", "tcp # web\nport 80");
    let Ok(Plan::ShowProgram(p)) = plan_of(&["-d", "-F", f.path(), "ignored", "words"]) else {
        panic!("not a listing");
    };
    assert_eq!(p.filter, Filter::Expression("tcp      \nport 80".into()));
}

#[test]
fn double_dash_ends_the_options_where_no_command_runs_as_in_tcpdump() {
    let Ok(Plan::ShowProgram(p)) = plan_of(&["-d", "--", "tcp", "port", "80"]) else {
        panic!("not a listing");
    };
    assert_eq!(p.filter, Filter::Expression("tcp port 80".into()));
    assert!(matches!(
        plan_of(&["-r", "in.pcap", "--", "udp"]),
        Ok(Plan::ReadFile(_))
    ));
    assert_eq!(
        error_of(&["-r", "in.pcap", "tcp", "--", "curl"]),
        "-- CMD runs a command for a live capture; -r and -d/--ebpf run none"
    );
}

#[test]
fn reading_a_file_ignores_capture_flags() {
    // Capture flags are ignored with -r, as they always were.
    for args in [
        &["-r", "in.pcap", "ip"][..],
        &["-r", "in.pcap", "-i", "lo", "ip"],
        &["-r", "in.pcap", "--xdp", "-Q", "out", "ip"],
        &["-r", "in.pcap", "--trace", "kfree_skb", "ip"],
        &["-r", "in.pcap", "-y", "NOPE", "-s", "-1", "ip"],
    ] {
        let Ok(Plan::ReadFile(r)) = plan_of(args) else {
            panic!("{args:?}: not a file read");
        };
        assert_eq!(r.path, "in.pcap");
        assert_eq!(r.filter, Filter::Expression("ip".into()));
        assert_eq!(r.engine, Engine::KernelOrVm);
        assert_eq!(r.translation.hook, FilterHook::Offline);
    }
}

#[test]
fn hook_does_not_apply_to_a_file_except_in_its_ebpf_listing() {
    let refused = "--hook does not apply to -r: a file is filtered with offline semantics";
    assert_eq!(error_of(&["-r", "in.pcap", "--hook", "xdp", "ip"]), refused);
    assert_eq!(
        error_of(&["-r", "in.pcap", "-dd", "--hook", "xdp"]),
        refused
    );
    let Ok(Plan::ShowProgram(p)) = plan_of(&["-r", "in.pcap", "--ebpf", "--hook", "xdp"]) else {
        panic!("not a listing");
    };
    assert_eq!(p.compile_for, CompileFor::File("in.pcap".into()));
    let Listing::Ebpf { options, hook, .. } = p.listing else {
        panic!("not an eBPF listing");
    };
    assert_eq!((options.hook, hook.as_str()), (FilterHook::Xdp, "xdp"));
}

#[test]
fn a_file_read_takes_its_engine_and_translation_flags() {
    let Ok(Plan::ReadFile(r)) = plan_of(&[
        "-r",
        "in.pcap",
        "--engine",
        "libpcap",
        "--mode",
        "skb",
        "--max-loop-iterations",
        "4",
        "-c",
        "3",
        "-l",
    ]) else {
        panic!("not a file read");
    };
    assert_eq!(r.engine, Engine::Libpcap);
    assert_eq!(r.translation.mode, Mode::Skb);
    assert_eq!(r.translation.max_loop_iterations, 4);
    assert_eq!(r.count, Some(3));
    assert!(r.flush_each_packet, "-l flushes each line");
    let Ok(Plan::ReadFile(r)) = plan_of(&["-r", "in.pcap", "-U", "-l", "-w", "out.pcap"]) else {
        panic!("not a file read");
    };
    assert!(!r.flush_each_packet, "-U and -l do not flush -r's savefile");
}

#[test]
fn listings_win_over_capture_flags() {
    for args in [
        &["-d", "-i", "lo", "ip"][..],
        &["-d", "--xdp", "-Q", "out", "ip"],
        &["--ebpf", "--trace", "kfree_skb", "ip"],
        &["-ddd", "--xdp-hook", "1", "ip"],
    ] {
        assert!(
            matches!(plan_of(args), Ok(Plan::ShowProgram(_))),
            "{args:?}"
        );
    }
}

#[test]
fn a_listing_compiles_for_the_link_type_then_the_snap_length() {
    let Ok(Plan::ShowProgram(p)) = plan_of(&["-dd", "-y", "RAW", "-s", "0", "ip"]) else {
        panic!("not a listing");
    };
    let raw = libpcap::linktype_from_name("RAW").unwrap();
    assert_eq!(
        p.compile_for,
        CompileFor::LinkType {
            linktype: raw,
            snaplen: 262_144
        }
    );
    assert_eq!(p.listing, Listing::Cbpf(2));
    assert_eq!(
        error_of(&["-d", "-y", "NOPE", "-s", "-1", "ip"]),
        "invalid data link type NOPE"
    );
    for bad in ["-1", "262145", "abc"] {
        assert_eq!(
            error_of(&["-d", "-s", bad, "ip"]),
            format!("invalid snaplen {bad} (must be >= 0 and <= 262144)")
        );
    }
}

#[test]
fn an_ebpf_listing_names_its_mode_and_hook_as_the_flags_do() {
    let Ok(Plan::ShowProgram(p)) = plan_of(&["--ebpf", "--mode", "skb", "--hook", "tc-egress"])
    else {
        panic!("not a listing");
    };
    let Listing::Ebpf {
        options,
        mode,
        hook,
    } = p.listing
    else {
        panic!("not an eBPF listing");
    };
    assert_eq!((mode.as_str(), hook.as_str()), ("skb", "tc-egress"));
    assert_eq!(
        (options.mode, options.hook),
        (Mode::Skb, FilterHook::TcEgress)
    );
}

#[test]
fn live_capture_takes_an_expression_only() {
    let raw = raw_program();
    assert_eq!(
        error_of(&["--raw-cbpf", raw.path(), "-i", "lo"]),
        "--raw-cbpf does not apply to live capture: give an expression"
    );
    // The raw program is checked before the snap length.
    assert_eq!(
        error_of(&["--raw-cbpf", raw.path(), "-s", "-1"]),
        "--raw-cbpf does not apply to live capture: give an expression"
    );
    assert_eq!(
        error_of(&["-i", "lo", "-s", "999999", "udp"]),
        "invalid snaplen 999999 (must be >= 0 and <= 262144)"
    );
}

#[test]
fn live_capture_is_at_tc_in_both_directions_unless_xdp_is_asked() {
    let c = capture_of(&["-i", "lo", "-i", "veth0", "udp", "port", "53"]);
    assert_eq!(c.hooks, [Hook::Tc]);
    assert!(c.on_interfaces());
    assert_eq!(c.interfaces, ["lo", "veth0"]);
    assert_eq!(c.direction, DirectionFilter::InOut);
    assert_eq!(c.filter, "udp port 53");
    assert!(c.promiscuous);
    let c = capture_of(&["--xdp", "-p", "udp"]);
    assert_eq!(c.hooks, [Hook::Xdp(XdpMode::Auto)]);
    assert!(c.interfaces.is_empty(), "libpcap's default, found at run");
    assert_eq!(c.direction, DirectionFilter::In);
    assert!(!c.promiscuous);
    let c = capture_of(&["--xdp", "--xdp-mode", "generic", "udp"]);
    assert_eq!(c.hooks, [Hook::Xdp(XdpMode::Generic)]);
    assert_eq!(
        capture_of(&["--tc", "-Q", "out", "udp"]).direction,
        DirectionFilter::Out
    );
}

#[test]
fn xdp_sees_received_packets_only() {
    let refused = "XDP sees received packets only: use -Q in with --xdp, or --tc for -Q out/inout";
    for q in ["out", "inout"] {
        assert_eq!(error_of(&["-i", "lo", "--xdp", "-Q", q, "udp"]), refused);
        // Before any interface or privilege is looked at.
        assert_eq!(
            error_of(&["-i", "nosuch0", "--xdp", "-Q", q, "udp"]),
            refused
        );
    }
    // After the snap length.
    assert_eq!(
        error_of(&["--xdp", "-Q", "out", "-s", "-1", "udp"]),
        "invalid snaplen -1 (must be >= 0 and <= 262144)"
    );
    let c = capture_of(&["-i", "lo", "--xdp", "-Q", "in", "udp"]);
    assert_eq!(c.direction, DirectionFilter::In);
}

#[test]
fn tracing_alone_refuses_interfaces() {
    let refused = "-i: interfaces do not apply to tracing hooks alone, which see every interface; add --tc or --xdp to capture at IFACE too (--xdp-hook takes the interface: --xdp-hook IFACE)";
    for args in [
        &["--trace", "kfree_skb", "-i", "lo", "udp"][..],
        &["--stack", "-i", "lo", "udp"],
    ] {
        assert_eq!(error_of(args), refused, "{args:?}");
    }
}

#[test]
fn tc_or_xdp_with_tracing_hooks_is_one_capture_with_the_interface_hook_first() {
    let c = capture_of(&[
        "-i",
        "veth0",
        "--tc",
        "--trace",
        "kfree_skb",
        "--fentry",
        "ip_rcv",
        "-w",
        "f.pcapng",
        "udp",
    ]);
    assert_eq!(
        c.hooks,
        vec![
            Hook::Tc,
            Hook::Trace(TraceHook::Tracepoint("kfree_skb".into())),
            Hook::Trace(TraceHook::Fentry {
                function: "ip_rcv".into(),
                arg: None
            }),
        ]
    );
    assert!(c.on_interfaces() && c.at_tracing_hooks());
    assert_eq!(c.interfaces, ["veth0"]);
    let c = capture_of(&["-i", "lo", "--xdp", "--fexit", "ip_rcv", "udp"]);
    assert_eq!(c.hooks[0], Hook::Xdp(XdpMode::Auto));
    assert_eq!(c.direction, DirectionFilter::In);
}

#[test]
fn tc_or_xdp_with_tracing_hooks_refuses_pcap_the_xdp_hook_and_raw_cbpf() {
    let raw = raw_program();
    assert_eq!(
        error_of(&["-i", "lo", "--tc", "--trace", "kfree_skb", "-w", "f.pcap", "udp"]),
        "-w f.pcap: interface and tracing hooks in one run write pcapng (an interface block per hook): use --pcapng or a .pcapng name"
    );
    assert_eq!(
        error_of(&["-i", "lo", "--tc", "--xdp-hook", "lo", "udp"]),
        "--xdp-hook does not combine with --tc or --xdp: hook the XDP program, or capture at the interface"
    );
    assert_eq!(
        error_of(&["--tc", "--trace", "kfree_skb", "--raw-cbpf", raw.path()]),
        "--raw-cbpf does not apply to tracing hooks: give an expression (it is compiled for EN10MB and RAW)"
    );
    assert_eq!(
        error_of(&[
            "-i",
            "lo",
            "--xdp",
            "-Q",
            "out",
            "--trace",
            "kfree_skb",
            "udp"
        ]),
        "XDP sees received packets only: use -Q in with --xdp, or --tc for -Q out/inout"
    );
    assert_eq!(
        error_of(&["-i", "lo", "--tc", "--trace", "kfree_skb", "udp", "--", "true"]),
        "-- CMD works with --tc alone: use --pid with the command's pid to follow its packets across hooks"
    );
}

#[test]
fn tc_with_tracing_hooks_attributes_packets_at_both() {
    let c = capture_of(&[
        "-i",
        "lo",
        "--tc",
        "--trace",
        "kfree_skb",
        "--pid",
        "7",
        "udp",
    ]);
    assert_eq!(c.who.map(|w| w.pids), Some(vec![7]));
    assert!(
        error_of(&["-i", "lo", "--xdp", "--trace", "kfree_skb", "--who", "udp"])
            .contains("no socket")
    );
}

#[test]
fn xdp_hook_takes_entry_and_exit_by_direction_and_both_by_default() {
    let hook = |args: &[&str]| capture_of(args).hooks;
    let xdp = |entry, exit| {
        vec![Hook::Trace(TraceHook::XdpProgram {
            program: "veth0".into(),
            entry,
            exit,
        })]
    };
    assert_eq!(hook(&["--xdp-hook", "veth0", "udp"]), xdp(true, true));
    assert_eq!(
        hook(&["--xdp-hook", "veth0", "-Q", "in", "udp"]),
        xdp(true, false)
    );
    assert_eq!(
        hook(&["--xdp-hook", "veth0", "-Q", "out", "udp"]),
        xdp(false, true)
    );
    assert_eq!(
        hook(&["--xdp-hook", "veth0", "-Q", "inout", "udp"]),
        xdp(true, true)
    );
}

#[test]
fn xdp_hook_refuses_other_tracing_hooks_an_interface_and_raw_cbpf() {
    let raw = raw_program();
    assert_eq!(
        error_of(&["--xdp-hook", "1", "--fentry", "ip_rcv", "udp"]),
        "--xdp-hook does not combine with --trace, --fentry, --fexit or --stack"
    );
    assert_eq!(
        error_of(&["--xdp-hook", "1", "-i", "lo", "udp"]),
        "-i: interfaces do not apply to tracing hooks alone, which see every interface; add --tc or --xdp to capture at IFACE too (--xdp-hook takes the interface: --xdp-hook IFACE)"
    );
    assert_eq!(
        error_of(&["--xdp-hook", "1", "--raw-cbpf", raw.path()]),
        "--raw-cbpf does not apply to tracing hooks: give an expression (it is compiled for EN10MB and RAW)"
    );
    assert_eq!(
        error_of(&["--xdp-hook", "", "udp"]),
        "--xdp-hook needs a program: an id, a name, a pinned path or an interface"
    );
}

#[test]
fn tracing_takes_an_expression_only() {
    let raw = raw_program();
    assert_eq!(
        error_of(&["--trace", "kfree_skb", "--raw-cbpf", raw.path()]),
        "--raw-cbpf does not apply to tracing hooks: give an expression (it is compiled for EN10MB and RAW)"
    );
}

#[test]
fn tracepoints_split_at_commas_and_come_before_the_fentry_function() {
    let c = capture_of(&[
        "--fentry",
        "ip_rcv:0",
        "--trace",
        "kfree_skb,,skb:consume_skb",
        "--trace",
        "net_dev_xmit",
        "udp",
    ]);
    assert_eq!(
        c.hooks,
        [
            Hook::Trace(TraceHook::Tracepoint("kfree_skb".into())),
            Hook::Trace(TraceHook::Tracepoint("skb:consume_skb".into())),
            Hook::Trace(TraceHook::Tracepoint("net_dev_xmit".into())),
            Hook::Trace(TraceHook::Fentry {
                function: "ip_rcv".into(),
                arg: Some(0)
            }),
        ]
    );
    assert!(!c.on_interfaces());
    let c = capture_of(&["--fentry", "tcp_v4_rcv", "udp"]);
    assert_eq!(
        c.hooks,
        [Hook::Trace(TraceHook::Fentry {
            function: "tcp_v4_rcv".into(),
            arg: None
        })]
    );
}

#[test]
fn fexit_comes_after_the_fentry_function_and_reads_the_same_way() {
    let c = capture_of(&["--fexit", "ip_rcv:0", "--fentry", "ip_rcv", "udp"]);
    assert_eq!(
        c.hooks,
        [
            Hook::Trace(TraceHook::Fentry {
                function: "ip_rcv".into(),
                arg: None
            }),
            Hook::Trace(TraceHook::Fexit {
                function: "ip_rcv".into(),
                arg: Some(0)
            })
        ]
    );
    assert_eq!(
        error_of(&["--fexit", "ip_rcv:x", "udp"]),
        "--fexit ip_rcv:x: the argument position must be a number (FUNC:N)"
    );
    assert_eq!(
        error_of(&["--fexit", ":1", "udp"]),
        "--fexit needs a function name"
    );
}

#[test]
fn fentry_needs_a_function_and_a_numbered_argument() {
    assert_eq!(
        error_of(&["--fentry", "ip_rcv:x", "udp"]),
        "--fentry ip_rcv:x: the argument position must be a number (FUNC:N)"
    );
    assert_eq!(
        error_of(&["--fentry", "ip_rcv:", "udp"]),
        "--fentry ip_rcv:: the argument position must be a number (FUNC:N)"
    );
    for f in [":1", ""] {
        assert_eq!(
            error_of(&["--fentry", f, "udp"]),
            "--fentry needs a function name"
        );
    }
    // The hooks are checked before the snap length.
    assert_eq!(
        error_of(&["--fentry", ":1", "-s", "-1", "udp"]),
        "--fentry needs a function name"
    );
}

#[test]
fn the_stack_alone_asks_for_tracing_with_no_hook() {
    // The capture library then says that no tracing hook was given.
    let c = capture_of(&["--stack", "udp"]);
    assert!(c.hooks.is_empty());
    assert!(c.stack);
    assert!(!c.on_interfaces());
    assert!(capture_of(&["--trace", "", "udp"]).hooks.is_empty());
}

#[test]
fn readers_wake_per_quarter_buffer_unless_each_packet_must_go_out() {
    let page = capture::perf::page_size();
    let c = capture_of(&["-i", "lo", "udp"]);
    assert_eq!(c.buffers.pages, 512);
    assert_eq!(c.buffers.wakeup, Wakeup::Bytes((512 * page / 4) as u32));
    assert_eq!(c.buffers.poll_ms, 50);
    for flag in ["-U", "--immediate-mode"] {
        assert_eq!(
            capture_of(&["-i", "lo", flag, "udp"]).buffers.wakeup,
            Wakeup::Events(1),
            "{flag}"
        );
    }
    assert_eq!(
        capture_of(&["-i", "lo", "-U", "--wakeup", "0", "udp"])
            .buffers
            .wakeup,
        Wakeup::Events(1)
    );
    assert_eq!(
        capture_of(&["-i", "lo", "--wakeup", "64", "udp"])
            .buffers
            .wakeup,
        Wakeup::Events(64)
    );
}

#[test]
fn a_file_is_written_a_second_at_a_time_unless_u_or_l() {
    assert_eq!(
        capture_of(&["-i", "lo", "-w", "x.pcap", "udp"])
            .buffers
            .poll_ms,
        1000
    );
    for flag in ["-U", "-l"] {
        let c = capture_of(&["-i", "lo", "-w", "x.pcap", flag, "udp"]);
        assert_eq!(c.buffers.poll_ms, 50, "{flag}");
        assert!(c.flush_each_packet, "{flag}");
    }
    let c = capture_of(&["--trace", "kfree_skb", "-w", "x.pcapng", "udp"]);
    assert_eq!(c.buffers.poll_ms, 1000, "tracing too");
}

#[test]
fn buffer_kib_round_up_to_a_power_of_two_pages_over_buffer_pages() {
    let page = capture::perf::page_size();
    let c = capture_of(&["-i", "lo", "-B", "1", "--buffer-pages", "64", "udp"]);
    assert_eq!(
        c.buffers.pages,
        1024usize.div_ceil(page).next_power_of_two()
    );
    let kib = (3 * page / 1024) as u32;
    let c = capture_of(&["-i", "lo", "-B", &kib.to_string(), "udp"]);
    assert_eq!(c.buffers.pages, 4);
    assert_eq!(
        capture_of(&["--trace", "kfree_skb", "--perf-pages", "8", "udp"])
            .buffers
            .pages,
        8
    );
}

#[test]
fn pcapng_is_asked_by_its_flag_or_the_file_name() {
    let output = |args: &[&str]| capture_of(args).output;
    assert_eq!(
        output(&["-i", "lo", "-w", "x.pcap", "udp"]),
        Output::File {
            path: "x.pcap".into(),
            pcapng: false,
            rotation: None,
        }
    );
    assert_eq!(
        output(&["-i", "lo", "-w", "x.pcapng", "udp"]),
        Output::File {
            path: "x.pcapng".into(),
            pcapng: true,
            rotation: None,
        }
    );
    assert_eq!(
        output(&["-i", "lo", "-w", "-", "--pcapng", "udp"]),
        Output::File {
            path: "-".into(),
            pcapng: true,
            rotation: None,
        }
    );
}

#[test]
fn rotation_flags_become_bytes_seconds_and_a_count() {
    let rotation = |args: &[&str]| match capture_of(args).output {
        Output::File { rotation, .. } => rotation,
        other => panic!("{args:?}: not a file: {other:?}"),
    };
    assert_eq!(
        rotation(&["-i", "lo", "-w", "x", "-C", "2", "-W", "5", "-z", "gzip"]),
        Some(Rotation {
            size: Some(2_000_000),
            seconds: None,
            files: Some(5),
            post_command: Some("gzip".into()),
        })
    );
    assert_eq!(
        rotation(&["--trace", "kfree_skb", "-w", "t-%s", "-G", "60", "udp"]),
        Some(Rotation {
            seconds: Some(60),
            ..Rotation::default()
        })
    );
}

#[test]
fn rotation_refuses_bad_numbers_with_tcpdumps_words_and_flags_without_a_file() {
    for (args, want) in [
        (
            &["-i", "lo", "-w", "x", "-C", "0"][..],
            "invalid file size 0",
        ),
        (&["-i", "lo", "-w", "x", "-C", "1k"], "invalid file size 1k"),
        (
            &["-i", "lo", "-w", "x", "-G", "-1"],
            "invalid number of seconds -1",
        ),
        (
            &["-i", "lo", "-w", "x", "-G", "0"],
            "invalid number of seconds 0",
        ),
        (
            &["-i", "lo", "-w", "x", "-C", "1", "-W", "0"],
            "invalid number of output files 0",
        ),
        (&["-i", "lo", "-C", "1"], "give -w FILE"),
        (&["-i", "lo", "-w", "-", "-G", "1"], "-w - writes to stdout"),
        (&["-i", "lo", "-w", "x", "-W", "3"], "-W needs -C or -G"),
        (&["-i", "lo", "-w", "x", "-z", "gzip"], "-z needs -C or -G"),
        (
            &["-i", "lo", "-w", "x", "-C", "1", "-z", ""],
            "-z needs a command",
        ),
        (
            &["-C", "99999999999999", "-w", "x", "-i", "lo"],
            "file size too large",
        ),
        (
            &["-r", "in.pcap", "-w", "x", "-C", "1"],
            "with -r, xcap writes one file",
        ),
    ] {
        let e = error_of(args);
        assert!(e.contains(want), "{args:?}: {e}");
    }
}

#[test]
fn printing_flags_make_one_style() {
    let style = |args: &[&str]| match capture_of(args).output {
        Output::Text(s) => s,
        other => panic!("{args:?}: not text: {other:?}"),
    };
    assert_eq!(style(&["-i", "lo", "udp"]), Style::default());
    let s = style(&["-i", "lo", "-tttt", "-e", "-q", "-xx", "udp"]);
    assert_eq!(s.stamps, Stamps::DateTime);
    assert!(s.link_header && s.quiet);
    assert_eq!(
        s.dump,
        Some(Dump {
            kind: DumpKind::Hex,
            from_link_header: true
        })
    );
    for (t, stamps) in [
        ("-t", Stamps::None),
        ("-tt", Stamps::Epoch),
        ("-ttt", Stamps::SincePrevious),
        ("-ttttt", Stamps::SinceFirst),
        ("-tttttt", Stamps::SinceFirst),
    ] {
        assert_eq!(style(&["-i", "lo", t, "udp"]).stamps, stamps, "{t}");
    }
}

#[test]
fn one_dump_is_printed_hex_and_ascii_over_hex_over_ascii() {
    let dump = |args: &[&str]| match capture_of(args).output {
        Output::Text(s) => s.dump,
        other => panic!("{args:?}: not text: {other:?}"),
    };
    let d = |kind, from_link_header| {
        Some(Dump {
            kind,
            from_link_header,
        })
    };
    assert_eq!(
        dump(&["-i", "lo", "-A", "-x", "-X", "udp"]),
        d(DumpKind::HexAscii, false)
    );
    assert_eq!(
        dump(&["-i", "lo", "-AA", "-x", "udp"]),
        d(DumpKind::Hex, false)
    );
    assert_eq!(dump(&["-i", "lo", "-AA", "udp"]), d(DumpKind::Ascii, true));
}

#[test]
fn a_filter_object_checks_invert_then_name_then_link_type_then_snap_length() {
    assert_eq!(
        error_of(&["compile", "icmp", "-o", "-", "--invert", "--name", "f", "-y", "NOPE"]),
        "--invert needs --program xdp or tc"
    );
    assert_eq!(
        error_of(&[
            "compile",
            "icmp",
            "-o",
            "-",
            "--program",
            "tc",
            "--name",
            "f",
            "-y",
            "NOPE"
        ]),
        "--name applies to function objects (--program none)"
    );
    assert_eq!(
        error_of(&["compile", "icmp", "-o", "-", "-y", "NOPE", "-s", "-1"]),
        "invalid data link type NOPE"
    );
    assert_eq!(
        error_of(&["compile", "icmp", "-o", "-", "-s", "-1"]),
        "invalid snaplen -1 (must be >= 0 and <= 262144)"
    );
}

#[test]
fn a_filter_object_runs_where_its_program_does_unless_told() {
    let object = |args: &[&str]| match plan_of(args) {
        Ok(Plan::WriteObject(w)) => w,
        other => panic!("{args:?}: not an object: {other:?}"),
    };
    let w = object(&["compile", "tcp", "port", "80", "-o", "f.o"]);
    assert_eq!(w.expression, "tcp port 80");
    assert_eq!(w.program, None);
    assert_eq!(w.options.hook, FilterHook::None);
    assert_eq!(w.function_name, "xcap_filter");
    assert_eq!(w.output, "f.o");
    let w = object(&["compile", "icmp", "-o", "-", "--program", "xdp", "--invert"]);
    assert_eq!((w.program, w.invert), (Some(ProgramKind::Xdp), true));
    assert_eq!(w.options.hook, FilterHook::Xdp);
    let w = object(&["compile", "icmp", "-o", "-", "--program", "tc"]);
    assert_eq!(w.options.hook, FilterHook::TcIngress);
    let w = object(&[
        "compile", "icmp", "-o", "-", "--hook", "socket", "--mode", "skb",
    ]);
    assert_eq!(
        (w.options.hook, w.options.mode),
        (FilterHook::Socket, Mode::Skb)
    );
    let w = object(&["compile", "icmp", "-o", "-", "-s", "0", "-y", "RAW"]);
    assert_eq!(w.options.snaplen, 262_144);
    assert_eq!(
        w.options.linktype,
        libpcap::linktype_from_name("RAW").unwrap()
    );
}

#[test]
fn process_filters_at_tc_select_processes_and_show_them_only_when_asked() {
    let c = capture_of(&[
        "-i", "eth0", "--pid", "7", "--pid", "8", "--comm", "curl", "tcp",
    ]);
    let who = c.who.expect("attribution");
    assert_eq!(who.pids, [7, 8]);
    assert_eq!(who.comms, ["curl"]);
    assert!(!c.show_who, "lines name processes only with --who or -v");
    assert!(capture_of(&["-i", "eth0", "--who"]).show_who);
}

#[test]
fn verbose_tc_captures_name_processes_and_plain_ones_pay_nothing() {
    let verbose = capture_of(&["-i", "eth0", "-v"]);
    assert!(verbose.who.is_some() && verbose.show_who);
    assert!(
        !verbose.who_required,
        "-v alone captures without processes where it must"
    );
    assert!(capture_of(&["-i", "eth0", "-v", "--who"]).who_required);
    assert!(capture_of(&["--trace", "kfree_skb", "-v", "--comm", "x"]).who_required);
    assert!(!capture_of(&["--trace", "kfree_skb", "-v"]).who_required);
    assert_eq!(capture_of(&["-i", "eth0"]).who, None);
    assert_eq!(capture_of(&["-i", "eth0", "--xdp", "-v"]).who, None);
}

#[test]
fn attribution_is_refused_where_there_is_no_socket() {
    assert!(error_of(&["-i", "eth0", "--xdp", "--who"]).contains("no socket"));
    assert!(error_of(&["--xdp-hook", "7", "--pid", "1"]).contains("no socket"));
}

#[test]
fn tracing_hooks_attribute_and_filter_processes_but_run_no_command() {
    let c = capture_of(&["--trace", "net_dev_queue", "--pid", "7", "--comm", "curl"]);
    let who = c.who.expect("attribution");
    assert_eq!((who.pids, who.comms), (vec![7], vec!["curl".to_owned()]));
    assert!(!c.show_who, "lines name processes only with --who or -v");
    assert!(capture_of(&["--fentry", "ip_rcv", "--who"]).show_who);
    assert!(capture_of(&["--trace", "kfree_skb", "-v"]).who.is_some());
    assert_eq!(capture_of(&["--trace", "kfree_skb"]).who, None);
    assert!(error_of(&["--trace", "kfree_skb", "--", "curl"]).contains("TC only"));
}

#[test]
fn bad_process_filters_are_refused_in_one_line() {
    assert!(
        error_of(&["-i", "eth0", "--comm", "a-name-too-long-for-comm"]).contains("1 to 15 bytes")
    );
    assert!(error_of(&["-i", "eth0", "--pid", "0"]).contains("not a process id"));
    assert!(error_of(&["-i", "eth0", "--follow-children"]).starts_with("usage:"));
}

#[test]
fn minus_z_names_the_user_a_capture_becomes_and_root_keeps_root() {
    assert_eq!(capture_of(&["-i", "lo", "udp"]).run_as, RunAs::Default);
    assert_eq!(
        capture_of(&["-i", "lo", "-Z", "root", "udp"]).run_as,
        RunAs::Root
    );
    assert_eq!(
        capture_of(&["--trace", "kfree_skb", "-Z", "alice", "udp"]).run_as,
        RunAs::User("alice".into())
    );
    assert!(error_of(&["-i", "lo", "-Z", "", "udp"]).contains("-Z needs a user name"));
}

#[test]
fn wiresharks_queries_are_answered_before_anything_else() {
    for (args, want) in [
        (
            &["--extcap-interfaces", "--extcap-version=4.0"][..],
            Extcap::Interfaces,
        ),
        (
            &["--extcap-interface", "xcap-eth0", "--extcap-dlts"],
            Extcap::Dlts,
        ),
        (
            &["--extcap-interface", "xcap-any", "--extcap-config"],
            Extcap::Config,
        ),
        (
            &[
                "--extcap-interface",
                "xcap-lo",
                "--extcap-capture-filter",
                "udp",
            ],
            Extcap::CheckFilter("udp".into()),
        ),
        (&["--extcap-install"], Extcap::Install(None)),
        (
            &["--extcap-install", "/x"],
            Extcap::Install(Some("/x".into())),
        ),
    ] {
        assert_eq!(plan_of(args), Ok(Plan::Extcap(want)), "{args:?}");
    }
}

#[test]
fn an_extcap_capture_writes_pcap_into_the_fifo_with_every_filter_given() {
    let c = capture_of(&[
        "--capture",
        "--extcap-interface",
        "xcap-eth0",
        "--fifo",
        "/tmp/pipe",
        "--extcap-capture-filter",
        "icmp",
        "--extcap-filter",
        "host 10.0.0.1",
        "--extcap-hook",
        "xdp",
    ]);
    assert_eq!(c.interfaces, ["eth0"]);
    assert_eq!(c.filter, "(icmp) and (host 10.0.0.1)");
    assert_eq!(c.hooks, [Hook::Xdp(XdpMode::Auto)]);
    assert_eq!(c.direction, DirectionFilter::In);
    assert!(c.quiet_stderr && c.flush_each_packet);
    assert_eq!(
        c.output,
        Output::File {
            path: "/tmp/pipe".into(),
            pcapng: false,
            rotation: None,
        }
    );
    let tc = capture_of(&["--capture", "--extcap-interface", "xcap-any", "--fifo", "p"]);
    assert_eq!(
        (tc.hooks, tc.direction),
        (vec![Hook::Tc], DirectionFilter::InOut)
    );
    assert_eq!(tc.filter, "");
    for (args, want) in [
        (
            &["--capture", "--extcap-interface", "eth0", "--fifo", "p"][..],
            "not one of xcap's",
        ),
        (
            &["--capture", "--extcap-interface", "xcap-eth0"],
            "--capture needs --fifo",
        ),
        (&["--capture", "--fifo", "p"], "needs --extcap-interface"),
        (
            &[
                "--capture",
                "--extcap-interface",
                "xcap-eth0",
                "--fifo",
                "p",
                "--extcap-hook",
                "xdp",
                "--extcap-direction",
                "out",
            ],
            "XDP sees received packets only",
        ),
    ] {
        let e = error_of(args);
        assert!(e.contains(want), "{args:?}: {e}");
    }
}

#[test]
fn a_command_after_double_dash_is_followed_with_its_children_and_netns_is_for_interfaces() {
    let c = capture_of(&["-i", "eth0", "tcp", "--", "curl", "-s", "x"]);
    assert_eq!(c.command, ["curl", "-s", "x"]);
    assert_eq!(c.filter, "tcp");
    assert!(c.who.expect("attribution").follow_children);
    assert_eq!(
        capture_of(&["--netns", "blue", "-i", "eth0"])
            .netns
            .as_deref(),
        Some("blue")
    );
    assert!(error_of(&["--netns", "blue", "--trace", "kfree_skb"]).contains("--netns"));
    assert!(error_of(&["-i", "eth0", "--xdp", "--", "curl"]).contains("no socket"));
}
