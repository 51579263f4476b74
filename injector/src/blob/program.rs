//! The programs of [`FilterBlob::program_object`](super::FilterBlob::program_object):
//! an entry that takes the packet from its context, calls the filter and
//! turns the result into a verdict.

use cbpf2ebpf::ebpf::{op, Insn, R0, R1, R2, R3, R4, R6};
use cbpf2ebpf::{Hook, Mode};

use super::BlobError;

/// The kind of complete program to build around a filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProgramKind {
    /// An XDP program (`XDP_PASS` / `XDP_DROP`).
    Xdp,
    /// A TC classifier for direct-action mode (`TC_ACT_OK` / `TC_ACT_SHOT`),
    /// ingress or egress.
    Tc,
}

/// `bpf_xdp_get_buff_len`, Linux 5.18.
const HELPER_XDP_GET_BUFF_LEN: i32 = 188;

const XDP_DROP: i32 = 1;
const XDP_PASS: i32 = 2;
const TC_ACT_OK: i32 = 0;
const TC_ACT_SHOT: i32 = 2;

/// `struct xdp_md` and `struct __sk_buff` field offsets.
const XDP_MD_DATA: i16 = 0;
const XDP_MD_DATA_END: i16 = 4;
const SKB_LEN: i16 = 0;
const SKB_DATA: i16 = 76;
const SKB_DATA_END: i16 = 80;

/// One program of an object: ELF section and function name.
pub(crate) struct Entry {
    pub section: &'static str,
    pub name: &'static str,
}

impl ProgramKind {
    /// The hook a filter for this kind is translated for by default.
    pub fn default_hook(self) -> Hook {
        match self {
            ProgramKind::Xdp => Hook::Xdp,
            ProgramKind::Tc => Hook::TcIngress,
        }
    }

    /// The section to name in `ip link ... sec` / `tc ... sec`: `xdp` or
    /// `tc` (TC objects also carry the same program in `classifier`).
    pub fn section(self) -> &'static str {
        self.entries()[0].section
    }

    /// The program's function name (in [`Self::section`]).
    pub fn program_name(self) -> &'static str {
        self.entries()[0].name
    }

    pub(crate) fn entries(self) -> &'static [Entry] {
        match self {
            ProgramKind::Xdp => &[Entry {
                section: "xdp",
                name: "xcap_xdp",
            }],
            ProgramKind::Tc => &[
                Entry {
                    section: "tc",
                    name: "xcap_tc",
                },
                Entry {
                    section: "classifier",
                    name: "xcap_tc_cls",
                },
            ],
        }
    }

    /// The context struct's name (BTF of the entry).
    pub(crate) fn ctx_struct(self) -> &'static str {
        match self {
            ProgramKind::Xdp => "xdp_md",
            ProgramKind::Tc => "__sk_buff",
        }
    }

    pub(crate) fn check(self, mode: Mode, hook: Hook) -> Result<(), BlobError> {
        let (what, modes, hooks): (_, &[Mode], &[Hook]) = match self {
            ProgramKind::Xdp => ("an XDP program", &[Mode::Direct], &[Hook::Xdp, Hook::None]),
            ProgramKind::Tc => (
                "a TC program",
                &[Mode::Direct, Mode::Skb],
                &[Hook::TcIngress, Hook::TcEgress, Hook::None],
            ),
        };
        if !modes.contains(&mode) {
            return Err(BlobError::Unsupported(format!(
                "{what} needs a filter translated in {} mode, not {mode:?}",
                modes
                    .iter()
                    .map(|m| format!("{m:?}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )));
        }
        if !hooks.contains(&hook) {
            return Err(BlobError::Unsupported(format!(
                "{what} needs a filter translated for the {} hook, not {}",
                hooks[0].name(),
                hook.name()
            )));
        }
        Ok(())
    }

    /// The entry's code and the index of its call to the filter (a
    /// `call` with `src = BPF_PSEUDO_CALL` and `imm = -1`, to be relocated
    /// against the filter's symbol).
    pub(crate) fn code(self, mode: Mode, invert: bool) -> (Vec<Insn>, usize) {
        let (pass, drop) = match self {
            ProgramKind::Xdp => (XDP_PASS, XDP_DROP),
            ProgramKind::Tc => (TC_ACT_OK, TC_ACT_SHOT),
        };
        let (on_match, on_miss) = if invert { (drop, pass) } else { (pass, drop) };
        let mut v = match (self, mode) {
            (ProgramKind::Xdp, _) => vec![
                Insn::mov64_reg(R6, R1),
                Insn::call_helper(HELPER_XDP_GET_BUFF_LEN),
                Insn::mov32_reg(R4, R0),
                Insn::mov64_reg(R1, R6),
                Insn::ldx(op::W, R2, R6, XDP_MD_DATA),
                Insn::ldx(op::W, R3, R6, XDP_MD_DATA_END),
            ],
            (ProgramKind::Tc, Mode::Skb) => vec![
                // Offsets for bpf_skb_load_bytes: [0, skb->len).
                Insn::ldx(op::W, R4, R1, SKB_LEN),
                Insn::mov64_imm(R2, 0),
                Insn::mov64_reg(R3, R4),
            ],
            (ProgramKind::Tc, _) => vec![
                Insn::ldx(op::W, R4, R1, SKB_LEN),
                Insn::ldx(op::W, R2, R1, SKB_DATA),
                Insn::ldx(op::W, R3, R1, SKB_DATA_END),
            ],
        };
        let call = v.len();
        v.extend([
            Insn::new(op::JMP | op::CALL, 0, op::PSEUDO_CALL, 0, -1),
            Insn::jmp_imm(op::JEQ, R0, 0, 2),
            Insn::mov64_imm(R0, on_match),
            Insn::exit(),
            Insn::mov64_imm(R0, on_miss),
            Insn::exit(),
        ]);
        (v, call)
    }
}
