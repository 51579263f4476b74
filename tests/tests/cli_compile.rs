//! `xcap compile`: the objects it writes load with the real bpftool (libbpf)
//! and link with `bpftool gen object`; bad input fails with one line on
//! stderr and exit status 1.
//!
//! Needs root, bpftool, clang and unshare (the tests fail without them).
//! Real traffic through these objects is tested in `injector/tests/blob.rs`.

use std::path::Path;
use std::process::{Command, Output};

use xcap_tests::process::{bpftool_link, output, run_text, with_bpffs};
use xcap_tests::{xcap_bin, TempDir};

fn xcap(args: &[&str]) -> Output {
    output(Command::new(xcap_bin()).args(args))
}

/// `xcap compile ARGS -o OUT`, which must succeed and print nothing.
fn compile(args: &[&str], out: &Path) {
    let o = output(
        Command::new(xcap_bin())
            .arg("compile")
            .args(args)
            .arg("-o")
            .arg(out),
    );
    assert!(
        o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
        "xcap compile {args:?}: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `bpftool prog load`, then the loaded program's `bpftool prog show`.
fn bpftool_load(obj: &Path) -> String {
    with_bpffs(&format!(
        "bpftool prog load {} \"$D/p\"; bpftool prog show pinned \"$D/p\"; rm \"$D/p\"",
        obj.display()
    ))
}

#[test]
fn programs_load_with_bpftool() {
    let dir = TempDir::new("xcap-cli-compile");
    let cases: &[(&[&str], &str)] = &[
        (&["icmp", "--program", "xdp"], "xdp  name xcap_xdp"),
        (
            &[
                "tcp",
                "port",
                "80",
                "--program",
                "xdp",
                "--invert",
                "-s",
                "96",
            ],
            "xdp  name xcap_xdp",
        ),
        (&["icmp", "--program", "tc"], "sched_cls  name xcap_tc"),
        (
            &[
                "udp port 53 or inbound",
                "--program",
                "tc",
                "--mode",
                "skb",
                "--hook",
                "tc-egress",
                "--invert",
            ],
            "sched_cls  name xcap_tc",
        ),
        (
            &["ip", "--program", "xdp", "-y", "RAW"],
            "xdp  name xcap_xdp",
        ),
    ];
    for (i, (args, want)) in cases.iter().enumerate() {
        let obj = dir.path(&format!("p{i}.o"));
        compile(args, &obj);
        let shown = bpftool_load(&obj);
        assert!(
            shown.contains(want) && shown.contains("btf_id"),
            "{args:?}: {shown}"
        );
    }
}

#[test]
fn function_object_links_and_loads() {
    let dir = TempDir::new("xcap-cli-compile");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../injector");
    let caller = dir.path("caller.o");
    run_text(
        Command::new("clang")
            .args(["-O2", "-g", "-target", "bpf", "-c", "-I"])
            .arg(fixtures.join("include"))
            .args(["-I", "/usr/include/x86_64-linux-gnu"])
            .arg(fixtures.join("tests/fixtures/blob_caller.c"))
            .arg("-o")
            .arg(&caller),
    );
    let filter = dir.path("filter.o");
    compile(&["tcp dst port 80", "--name", "xcap_match"], &filter);
    let linked = dir.path("linked.o");
    bpftool_link(&linked, &[&caller, &filter]);
    let shown = with_bpffs(&format!(
        "bpftool prog loadall {} \"$D/progs\"; bpftool prog show pinned \"$D/progs/xdp_caller\"; bpftool prog dump xlated pinned \"$D/progs/tc_caller\"; rm -r \"$D/progs\"",
        linked.display()
    ));
    assert!(shown.contains("name xdp_caller"), "{shown}");
    // The filter follows the caller, with its name and expression.
    assert!(
        shown.contains("__u32 xcap_match(void * ctx, void * start, void * end, __u32 wirelen):")
            && shown.contains("; xcap filter: tcp dst port 80"),
        "{shown}"
    );
    // A filter of another name leaves the caller's extern unresolved:
    // libbpf's linker accepts that, libbpf's loader refuses it.
    let other = dir.path("other.o");
    compile(&["tcp", "--name", "other_name"], &other);
    let bad = dir.path("bad.o");
    bpftool_link(&bad, &[&caller, &other]);
    let o = output(Command::new("unshare").args([
        "-m",
        "sh",
        "-c",
        &format!(
            "D=$(mktemp -d); mount -t bpf bpf $D; bpftool prog loadall {} $D/progs",
            bad.display()
        ),
    ]));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && stderr.contains("failed to find BTF for extern 'xcap_match'"),
        "{stderr}"
    );
}

#[test]
fn writes_to_stdout() {
    let o = xcap(&["compile", "icmp", "-o", "-", "--program", "xdp"]);
    assert!(o.status.success());
    assert_eq!(&o.stdout[..4], b"\x7fELF");
}

#[test]
fn errors_are_one_line_and_exit_1() {
    let dir = TempDir::new("xcap-cli-compile");
    let out = dir.path("x.o");
    let out = out.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["compile", "tcp", "port", "-o", out], "xcap: can't parse filter expression: syntax error"),
        (&["compile", "icmp", "-o", out, "--invert"], "xcap: --invert needs --program xdp or tc"),
        (
            &["compile", "icmp", "-o", out, "--program", "xdp", "--mode", "skb"],
            "xcap: an XDP program needs a filter translated in Direct mode, not Skb",
        ),
        (
            &["compile", "icmp", "-o", out, "--program", "tc", "--hook", "xdp"],
            "xcap: a TC program needs a filter translated for the tc ingress hook, not xdp",
        ),
        (
            &["compile", "inbound", "-o", out],
            "xcap: inbound/outbound (SKF_AD_PKTTYPE) needs to know where the filter runs: add --hook xdp, tc-ingress, tc-egress or socket",
        ),
        (&["compile", "icmp", "-o", out, "--name", "a-b"], "xcap: invalid function name `a-b`"),
        (&["compile", "icmp", "-o", out, "--program", "xdp", "--name", "f"], "xcap: --name applies to function objects"),
        (&["compile", "icmp", "-o", out, "-y", "NOPE"], "xcap: invalid data link type NOPE"),
        (&["compile", "icmp", "-o", out, "-s", "-1"], "xcap: invalid snaplen -1"),
        (&["compile", "icmp", "-o", "/nonexistent/dir/x.o"], "xcap: can't write /nonexistent/dir/x.o: No such file or directory"),
        (&["compile", "icmp"], "xcap: the following required arguments were not provided: --output <FILE>"),
        (&["compile", "-o", out], "xcap: the following required arguments were not provided: <EXPRESSION>"),
        (&["compile", "icmp", "-o", out, "--program", "sk"], "xcap: invalid value 'sk'"),
    ];
    for (args, want) in cases {
        let o = xcap(args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.starts_with(want), "{args:?}: {stderr}");
        if want.starts_with("xcap:") {
            assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        }
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    assert!(!Path::new(out).exists(), "an object was written on error");
}
