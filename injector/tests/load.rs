//! Splice hand-written filters (obeying the filter ABI) into (a) xcap's
//! capture template, (b) a C object built by clang, (c) with and without
//! BTF; load each with aya and check with BPF_PROG_TEST_RUN that the
//! programs see what the filter returns. Needs root (CAP_BPF).

mod common;

use aya::{
    programs::{SchedClassifier, Xdp},
    Ebpf, EbpfLoader,
};
use capture::programs;
use capture_abi::live;
use common::*;
use injector::{splice, Program};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
/// TC_ACT_UNSPEC (TCX_NEXT): the capture programs hand the packet on.
const TC_ACT_UNSPEC: u32 = u32::MAX;

fn load(elf: &[u8]) -> Ebpf {
    EbpfLoader::new()
        .load(elf)
        .unwrap_or_else(|e| panic!("aya refuses the spliced object: {e:#?}"))
}

/// Loads XDP program `name`; `btf` says whether the kernel must have taken
/// its BTF (func_info and line_info) with it.
fn xdp<'a>(ebpf: &'a mut Ebpf, name: &str, btf: bool) -> &'a Xdp {
    let p: &mut Xdp = ebpf.program_mut(name).unwrap().try_into().unwrap();
    p.load()
        .unwrap_or_else(|e| panic!("loading {name}: {e:#?}"));
    assert_eq!(p.info().unwrap().btf_id().is_some(), btf, "{name}: BTF");
    p
}

fn tc<'a>(ebpf: &'a mut Ebpf, name: &str, btf: bool) -> &'a SchedClassifier {
    let p: &mut SchedClassifier = ebpf.program_mut(name).unwrap().try_into().unwrap();
    p.load()
        .unwrap_or_else(|e| panic!("loading {name}: {e:#?}"));
    assert_eq!(p.info().unwrap().btf_id().is_some(), btf, "{name}: BTF");
    p
}

fn program(report: &[Program], name: &str) -> Program {
    report
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no program {name} in {report:?}"))
        .clone()
}

/// Runs the capture template's program `prog` on the packets; returns how
/// many the filter matched (its counter) and checks every verdict.
fn run_capture(ebpf: &mut Ebpf, prog: &str, packets: &[Vec<u8>], verdict: u32) -> u64 {
    let before = counter(
        ebpf,
        capture_abi::COUNTERS_MAP,
        capture_abi::COUNTER_MATCHED,
    );
    let seen_before = counter(ebpf, capture_abi::COUNTERS_MAP, capture_abi::COUNTER_SEEN);
    let fd = if prog == live::PROG_XDP {
        xdp(ebpf, prog, true).fd().unwrap().try_clone().unwrap()
    } else {
        tc(ebpf, prog, true).fd().unwrap().try_clone().unwrap()
    };
    for p in packets {
        assert_eq!(test_run(&fd, p), verdict);
    }
    assert_eq!(
        counter(ebpf, capture_abi::COUNTERS_MAP, capture_abi::COUNTER_SEEN) - seen_before,
        packets.len() as u64
    );
    counter(
        ebpf,
        capture_abi::COUNTERS_MAP,
        capture_abi::COUNTER_MATCHED,
    ) - before
}

fn mixed_packets() -> Vec<Vec<u8>> {
    vec![
        packet(0x45, true),
        packet(0x60, true),
        packet(0x45, false),
        packet(0x00, false),
        packet(0x45, true),
    ]
}

#[test]
fn capture_template_small_and_5000_instruction_filters() {
    // The TC programs call their stub in skb mode (offsets, not pointers).
    let small = first_byte_is_0x45();
    let big = padded_skb(5000);
    let s = splice(
        programs::OBJECT,
        &[(live::STUB_XDP, &small), (live::STUB_TC, &big)],
    )
    .unwrap();
    assert_eq!(program(&s.programs, live::PROG_XDP).stubs, [live::STUB_XDP]);
    assert_eq!(program(&s.programs, live::PROG_TC).stubs, [live::STUB_TC]);
    assert_eq!(s.stubs[0].programs, [live::PROG_XDP]);
    assert_eq!(s.stubs[1].new_insns, 5000);

    let mut ebpf = load(&s.elf);
    assert_eq!(
        run_capture(&mut ebpf, live::PROG_XDP, &mixed_packets(), XDP_PASS),
        3
    );
    assert_eq!(
        run_capture(&mut ebpf, live::PROG_TC, &mixed_packets(), TC_ACT_UNSPEC),
        3
    );
}

#[test]
fn capture_template_shrinks_and_grows() {
    // The stubs swap sizes: a 2-instruction filter before a 100,000 one.
    let none = constant(0);
    let huge = padded(100_000);
    let s = splice(
        programs::OBJECT,
        &[(live::STUB_TC, &none), (live::STUB_XDP, &huge)],
    )
    .unwrap();
    let mut ebpf = load(&s.elf);
    assert_eq!(
        run_capture(&mut ebpf, live::PROG_XDP, &mixed_packets(), XDP_PASS),
        3
    );
    assert_eq!(
        run_capture(&mut ebpf, live::PROG_TC, &mixed_packets(), TC_ACT_UNSPEC),
        0
    );
}

#[test]
fn capture_template_unspliced_matches_everything() {
    // The placeholder body passes the verifier and returns wirelen.
    let mut ebpf = load(programs::OBJECT);
    assert_eq!(
        run_capture(&mut ebpf, live::PROG_XDP, &mixed_packets(), XDP_PASS),
        5
    );
}

fn check_c_object(obj: &[u8], btf: bool) {
    let f = first_byte_is_0x45();
    let big = padded(5000);
    let s = splice(obj, &[("xcap_filter", &f), ("xcap_filter_l3", &big)]).unwrap();
    assert_eq!(program(&s.programs, "xdp_filter").stubs, ["xcap_filter"]);
    assert_eq!(program(&s.programs, "tc_filter").stubs, ["xcap_filter"]);
    assert_eq!(
        program(&s.programs, "tc_filter_l3").stubs,
        ["xcap_filter_l3"]
    );
    assert!(program(&s.programs, "tc_bad").stubs.is_empty());
    let mut sorted = s.stubs[0].programs.clone();
    sorted.sort();
    assert_eq!(sorted, ["tc_filter", "xdp_filter"]);

    let mut ebpf = load(&s.elf);
    let fd = xdp(&mut ebpf, "xdp_filter", btf)
        .fd()
        .unwrap()
        .try_clone()
        .unwrap();
    assert_eq!(test_run(&fd, &packet(0x45, true)), XDP_PASS);
    assert_eq!(test_run(&fd, &packet(0x46, true)), XDP_DROP);
    assert_eq!(test_run(&fd, &packet(0x45, false)), XDP_PASS);

    // TC programs return the filter's value: wirelen on a match.
    let fd = tc(&mut ebpf, "tc_filter", btf)
        .fd()
        .unwrap()
        .try_clone()
        .unwrap();
    assert_eq!(test_run(&fd, &packet(0x45, false)), 64);
    assert_eq!(test_run(&fd, &packet(0x44, true)), 0);
    let mut long = packet(0x45, true);
    long.resize(1000, 0xaa);
    assert_eq!(test_run(&fd, &long), 1000);

    // The L3 stub sees the packet from the IP header on.
    let fd = tc(&mut ebpf, "tc_filter_l3", btf)
        .fd()
        .unwrap()
        .try_clone()
        .unwrap();
    assert_eq!(test_run(&fd, &packet(0x00, true)), 50);
    assert_eq!(test_run(&fd, &packet(0x45, false)), 0);
}

#[test]
fn clang_object_with_btf() {
    check_c_object(&build_c_fixture(true), true);
}

#[test]
fn clang_object_without_btf() {
    check_c_object(&build_c_fixture(false), false);
}

/// `elf` with its `fentry` and `fexit` sections (the capture template's
/// `xcap_fentry_argN` and `--xdp-hook`'s `xcap_xdp_entry`/`xcap_xdp_exit`,
/// whose targets are given at load time) marked as non-executable, so
/// libbpf skips them: libbpf wants a target in the section name, and a
/// kernel that refuses trampolines (lockdown) refuses them anyway. The XDP,
/// TC and tp_btf programs are all still loaded.
fn without_trampolines(elf: &[u8]) -> Vec<u8> {
    let mut e = elf.to_vec();
    let u16_at = |e: &[u8], o: usize| u16::from_le_bytes([e[o], e[o + 1]]) as usize;
    let u32_at = |e: &[u8], o: usize| u32::from_le_bytes(e[o..o + 4].try_into().unwrap()) as usize;
    let shoff = u64::from_le_bytes(e[0x28..0x30].try_into().unwrap()) as usize;
    let (shentsize, shnum, shstrndx) = (u16_at(&e, 0x3a), u16_at(&e, 0x3c), u16_at(&e, 0x3e));
    let strtab = u64::from_le_bytes(
        e[shoff + shstrndx * shentsize + 0x18..shoff + shstrndx * shentsize + 0x20]
            .try_into()
            .unwrap(),
    ) as usize;
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        let name_at = strtab + u32_at(&e, h);
        if e[name_at..].starts_with(b"fentry\0") || e[name_at..].starts_with(b"fexit\0") {
            e[h + 8] &= !0x4; // SHF_EXECINSTR
        }
    }
    e
}

/// Loads every program of `elf` with `bpftool prog loadall` (libbpf) in a
/// private mount namespace with its own bpffs, and checks that `prog` got
/// its BTF.
fn bpftool_loadall(elf: &[u8], prog: &str) {
    // Unique per call: tests run in parallel, some on the same program.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "xcap-injector-bpftool-{}-{n}-{prog}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let obj = dir.join("spliced.o");
    std::fs::write(&obj, without_trampolines(elf)).unwrap();
    let script = format!(
        "set -e; mkdir {d}/fs; mount -t bpf bpf {d}/fs; bpftool prog loadall {o} {d}/fs/progs; bpftool prog show pinned {d}/fs/progs/{prog}",
        d = dir.display(),
        o = obj.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "bpftool prog loadall failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("btf_id"), "loaded without BTF: {shown}");
}

/// libbpf (through bpftool) loads the spliced objects too, with their BTF.
#[test]
fn spliced_objects_load_with_bpftool() {
    let f = first_byte_is_0x45();
    let s = splice(
        &build_c_fixture(true),
        &[("xcap_filter", &f), ("xcap_filter_l3", &padded(300))],
    )
    .unwrap();
    bpftool_loadall(&s.elf, "xdp_filter");
    let s = splice(
        programs::OBJECT,
        &[(live::STUB_XDP, &f), (live::STUB_TC, &padded_skb(300))],
    )
    .unwrap();
    bpftool_loadall(&s.elf, live::PROG_XDP);
}

/// `ip6 protochain 6` as a filter with its loop callback (direct mode for
/// XDP and the C fixture's programs, skb mode for the capture template's TC
/// program), and packets: IPv6 + `hops` hop-by-hop headers + TCP.
mod loops {
    use cbpf2ebpf::{libpcap, translate, Hook, Mode, Options};

    pub fn protochain(mode: Mode, hook: Hook) -> Vec<cbpf2ebpf::ebpf::Insn> {
        let prog = libpcap::compile("ip6 protochain 6", libpcap::DLT_EN10MB, 262144).unwrap();
        let t = translate(
            &prog,
            &Options {
                mode,
                hook,
                ..Options::default()
            },
        )
        .unwrap();
        assert!(t.callback.is_some());
        t.insns
    }

    pub fn ipv6(hops: usize, last: u8) -> Vec<u8> {
        let mut p = vec![
            2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60, 0, 0, 0,
        ];
        let body = hops * 8 + 20;
        p.extend_from_slice(&(body as u16).to_be_bytes());
        p.extend_from_slice(&[if hops > 0 { 0 } else { last }, 64]);
        p.resize(14 + 40, 0);
        for h in 0..hops {
            let next = if h + 1 == hops { last } else { 0 };
            p.extend_from_slice(&[next, 0, 0, 0, 0, 0, 0, 0]);
        }
        p.resize(p.len() + 20, 0);
        p
    }
}

/// A filter with a loop callback (a second function, reached through
/// `bpf_loop`) splices into the capture template and into the C fixture
/// with BTF: aya and libbpf (bpftool) load them, the kernel gets func_info
/// for the callback, and the programs count 40-header chains as libpcap
/// does; without BTF, splice says why it cannot.
#[test]
fn loop_filters_splice_and_load_with_aya_and_bpftool() {
    use cbpf2ebpf::{Hook, Mode};
    let xdp_filter = loops::protochain(Mode::Direct, Hook::Xdp);
    let tc_filter = loops::protochain(Mode::Skb, Hook::TcIngress);
    let s = splice(
        programs::OBJECT,
        &[(live::STUB_XDP, &xdp_filter), (live::STUB_TC, &tc_filter)],
    )
    .unwrap();
    // Spliced again (the callbacks' symbols are reused), it still loads.
    let s = splice(
        &s.elf,
        &[(live::STUB_XDP, &xdp_filter), (live::STUB_TC, &tc_filter)],
    )
    .unwrap();
    let packets = [
        loops::ipv6(0, 6),
        loops::ipv6(40, 6),
        loops::ipv6(40, 17),
        loops::ipv6(3, 6),
        loops::ipv6(200, 6),
    ];
    let mut ebpf = load(&s.elf);
    assert_eq!(
        run_capture(&mut ebpf, live::PROG_XDP, &packets, XDP_PASS),
        4
    );
    assert_eq!(
        run_capture(&mut ebpf, live::PROG_TC, &packets, TC_ACT_UNSPEC),
        4
    );

    let with_btf = splice(&build_c_fixture(true), &[("xcap_filter", &xdp_filter)]).unwrap();
    let mut ebpf = load(&with_btf.elf);
    let fd = xdp(&mut ebpf, "xdp_filter", true)
        .fd()
        .unwrap()
        .try_clone()
        .unwrap();
    for (p, want) in packets
        .iter()
        .zip([XDP_PASS, XDP_PASS, XDP_DROP, XDP_PASS, XDP_PASS])
    {
        assert_eq!(test_run(&fd, p), want);
    }
    bpftool_loadall(&with_btf.elf, "xdp_filter");

    let err = splice(&build_c_fixture(false), &[("xcap_filter", &xdp_filter)]).unwrap_err();
    assert!(err.to_string().contains("BTF"), "{err}");

    // Last: libbpf loads every program of the template, and Linux 6.1
    // refuses its consume_skb tracepoint program (one argument there).
    bpftool_loadall(&s.elf, live::PROG_XDP);
}
