//! What the capture programs need of the kernel, and what a kernel lacks.
//!
//! xcap needs **Linux 6.1** (Debian 12's kernel): BPF ring buffers (5.8),
//! XDP `bpf_link`s (5.9), multi-buffer XDP and its helpers
//! `bpf_xdp_get_buff_len` and `bpf_xdp_load_bytes` (5.18), and
//! `bpf_ktime_get_tai_ns` (6.1), which
//! stamps every packet; tracing also needs the kernel's BTF
//! (`CONFIG_DEBUG_INFO_BTF`, `/sys/kernel/btf/vmlinux`). TC uses TCX links
//! from 6.6 on and a clsact qdisc before.
//!
//! Nothing is probed at start: a kernel that has everything pays nothing.
//! When a start fails, [`explain`] asks the kernel for each need in turn
//! (a two-instruction program per helper, a one-page map) and, when one is
//! missing, replaces the error by one line naming it, so that an old
//! kernel says "needs Linux 6.1", not `Unknown error 524`.

use bpf_sys::{MapSpec, ProgLoad};

use crate::Error;

/// The oldest kernel xcap runs on.
pub const MINIMUM: &str = "6.1";

/// A need of the capture programs and how to see whether it is there.
struct Need {
    /// What it is, as the error names it.
    what: &'static str,
    /// The Linux version that brought it.
    since: &'static str,
    present: fn() -> bool,
}

/// In the order the kernels gained them, so the first one missing names
/// the oldest gap.
const NEEDS: &[Need] = &[
    Need {
        what: "BPF ring buffers",
        since: "5.8",
        present: ring_buffers,
    },
    Need {
        what: "multi-buffer XDP programs (BPF_F_XDP_HAS_FRAGS)",
        since: "5.18",
        present: xdp_frags,
    },
    Need {
        what: "the bpf_xdp_load_bytes helper",
        since: "5.18",
        present: || helper(HELPER_XDP_LOAD_BYTES),
    },
    Need {
        what: "the bpf_ktime_get_tai_ns helper",
        since: "6.1",
        present: || helper(HELPER_KTIME_GET_TAI_NS),
    },
];

const HELPER_XDP_LOAD_BYTES: i32 = 189;
const HELPER_KTIME_GET_TAI_NS: i32 = 208;

/// The first need this kernel lacks, as one line: "this kernel (5.10.0)
/// lacks ...; xcap needs Linux 6.1 or newer".
pub fn first_missing() -> Option<String> {
    let need = NEEDS.iter().find(|n| !(n.present)())?;
    Some(format!(
        "this kernel ({}) lacks {} (Linux {}); xcap needs Linux {MINIMUM} or newer",
        release(),
        need.what,
        need.since
    ))
}

/// `err`, or the missing need behind it. Only errors the kernel gave are
/// explained; configuration and filter errors stay as they are.
pub fn explain(err: Error) -> Error {
    match err {
        Error::Load(_) | Error::Buffer(_) | Error::Attach { .. } => match first_missing() {
            Some(line) => Error::Kernel(line),
            None => err,
        },
        other => other,
    }
}

/// The running kernel's release (`uname -r`).
pub fn release() -> String {
    // SAFETY: utsname is plain data, filled by uname(2).
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    let bytes: Vec<u8> = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn ring_buffers() -> bool {
    bpf_sys::map_create(&MapSpec {
        name: "xcap_probe",
        map_type: bpf_sys::MAP_TYPE_RINGBUF,
        max_entries: 4096,
        ..Default::default()
    })
    .is_ok()
}

/// `r0 = XDP_PASS; exit`, loaded as a multi-buffer XDP program.
fn xdp_frags() -> bool {
    let insns = cbpf2ebpf::ebpf::to_bytes(&[
        cbpf2ebpf::ebpf::Insn::mov64_imm(0, 2),
        cbpf2ebpf::ebpf::Insn::exit(),
    ]);
    bpf_sys::prog_load(
        &ProgLoad {
            name: "xcap_probe",
            prog_type: bpf_sys::PROG_TYPE_XDP,
            expected_attach_type: bpf_sys::BPF_XDP,
            flags: bpf_sys::BPF_F_XDP_HAS_FRAGS,
            insns: &insns,
            ..Default::default()
        },
        None,
    )
    .is_ok()
}

/// Whether the verifier knows helper `id` in XDP programs: it names an
/// unknown one before it looks at the arguments, so the probe passes none
/// and reads the log.
fn helper(id: i32) -> bool {
    use cbpf2ebpf::ebpf::Insn;
    let insns =
        cbpf2ebpf::ebpf::to_bytes(&[Insn::call_helper(id), Insn::mov64_imm(0, 2), Insn::exit()]);
    let mut log = vec![0u8; 4096];
    let loaded = bpf_sys::prog_load(
        &ProgLoad {
            name: "xcap_probe",
            prog_type: bpf_sys::PROG_TYPE_XDP,
            expected_attach_type: bpf_sys::BPF_XDP,
            insns: &insns,
            ..Default::default()
        },
        Some(&mut log),
    );
    let text = bpf_sys::log_text(&log);
    loaded.is_ok() || !(text.contains("invalid func") || text.contains("unknown func"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel the project tests on (6.1 and newer) has everything;
    /// the matrix's 5.10 guest checks the refusal (tests/tests/live_capture.rs).
    #[test]
    fn this_kernel_lacks_nothing_or_is_older_than_the_minimum() {
        let release = release();
        let (major, minor) = release
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|p| p.parse::<u32>().ok())
            .fold((None, None), |(a, b), n| match (a, b) {
                (None, _) => (Some(n), None),
                (Some(a), None) => (Some(a), Some(n)),
                done => done,
            });
        let at_least_minimum = (major.unwrap_or(0), minor.unwrap_or(0)) >= (6, 1);
        assert_eq!(
            first_missing().is_none(),
            at_least_minimum,
            "{release}: {:?}",
            first_missing()
        );
    }
}
