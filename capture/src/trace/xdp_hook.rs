//! `--xdp-hook PROG`: which XDP programs to hook, and loading xcap's
//! fentry and fexit programs on each (`capture-bpf/src/trace/xdp_hook.rs`;
//! the contract is in `capture_abi::trace`).
//!
//! PROG is a program id, a pinned path, an interface (the XDP program
//! attached there) or a program name. Each target must be an XDP program
//! with BTF, or an extension (freplace) of one: fentry and fexit attach to
//! its main function, whose BTF id is the program's first `func_info`
//! record.
//!
//! Where the program attached to an interface is extended by others (as
//! libxdp's dispatcher runs its component programs: each replaces one of
//! its stub functions), the components are the targets, each with its own
//! verdict. They are found from kernel facts alone: the freplace links
//! whose target is the attached program (`bpf_link_info`'s
//! `target_obj_id`), in the order of the functions they replace (their BTF
//! ids: libxdp's `prog0`, `prog1`, ...); nothing of libxdp's pin layout.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::netlink::{self, attrs, Route};
use crate::object::{LoadError, Maps};
use crate::Error;

const RTM_GETLINK: u16 = 18;
const RTM_NEWLINK: u16 = 16;
const IFLA_XDP: u16 = 43;
/// IFLA_XDP_PROG_ID, then the per-mode ids (driver, generic, offloaded).
const IFLA_XDP_PROG_IDS: [u16; 4] = [4, 5, 6, 7];

/// An XDP program to hook.
pub struct Target {
    pub fd: OwnedFd,
    pub id: u32,
    pub name: String,
    /// For an extension: the XDP program it is part of (`program 10
    /// (xdp_dispatcher)`).
    pub extends: Option<String>,
    /// What fentry/fexit attach to: the main function's BTF type id.
    pub main_func_btf_id: u32,
    /// Its JIT-compiled code (`bpf_get_func_ip` points into it), when the
    /// kernel shows addresses.
    pub code: Option<std::ops::Range<u64>>,
}

impl Target {
    /// `program 42 (xdp_fixture)`, and for an extension `program 19
    /// (xdp_first) in program 10 (xdp_dispatcher)`.
    pub fn describe(&self) -> String {
        match &self.extends {
            None => format!("program {} ({})", self.id, self.name),
            Some(of) => format!("program {} ({}) in {of}", self.id, self.name),
        }
    }
}

/// The programs `spec` names, each checked (XDP, with BTF).
pub fn resolve(spec: &str) -> Result<Vec<Target>, Error> {
    let ids = program_ids(spec)?;
    ids.into_iter().map(|id| target(spec, id)).collect()
}

/// The ids `spec` names: an id, a pinned path, an interface, a name.
fn program_ids(spec: &str) -> Result<Vec<u32>, Error> {
    let config = |m: String| Error::Config(format!("--xdp-hook {spec}: {m}"));
    if spec.is_empty() {
        return Err(Error::Config(
            "--xdp-hook needs a program: an id, a name, a pinned path or an interface".into(),
        ));
    }
    if let Ok(id) = spec.parse::<u32>() {
        return Ok(vec![id]);
    }
    if spec.starts_with('/') {
        let path = CString::new(spec).map_err(|_| config("a path with a NUL byte".into()))?;
        let fd = bpf_sys::obj_get(&path).map_err(|e| config(format!("no pinned program: {e}")))?;
        let info = bpf_sys::prog_info(fd.as_fd())
            .map_err(|e| config(format!("not a pinned program: {e}")))?;
        return Ok(vec![info.id]);
    }
    let ifindex = interface_index(spec);
    if ifindex != 0 {
        return match attached_xdp(ifindex).map_err(|e| config(e.to_string()))? {
            Some(id) => {
                let parts = extensions_of(id).map_err(|e| config(e.to_string()))?;
                Ok(if parts.is_empty() { vec![id] } else { parts })
            }
            None => Err(config(
                "no XDP program is attached to this interface".into(),
            )),
        };
    }
    let matching = programs_named(spec).map_err(|e| config(e.to_string()))?;
    match matching.len() {
        0 => Err(config(
            "no program id, pinned path, interface or program name matches".into(),
        )),
        1 => Ok(matching),
        _ => Err(config(format!(
            "{} programs have this name (ids {}): give an id",
            matching.len(),
            matching
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The index of interface `name` in this network namespace, 0 if none.
fn interface_index(name: &str) -> u32 {
    let Ok(c) = CString::new(name) else {
        return 0;
    };
    // SAFETY: a NUL-terminated string.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

/// The ids of loaded programs called `name` (the kernel keeps 15 bytes of
/// a name: a longer `name` matches its first 15).
fn programs_named(name: &str) -> std::io::Result<Vec<u32>> {
    let kept: String = name.chars().take(15).collect();
    let mut out = Vec::new();
    for id in bpf_sys::prog_ids()? {
        // A program may go away between the listing and the look.
        let Ok(fd) = bpf_sys::prog_by_id(id) else {
            continue;
        };
        if bpf_sys::prog_info(fd.as_fd()).is_ok_and(|i| i.name == kept) {
            out.push(id);
        }
    }
    Ok(out)
}

/// The id of the XDP program attached to `ifindex` (any mode), from
/// rtnetlink.
fn attached_xdp(ifindex: u32) -> Result<Option<u32>, netlink::Error> {
    let mut nl = Route::open()?;
    // struct ifinfomsg, all zero: every link.
    let replies = nl.dump(RTM_GETLINK, &[0u8; 16])?;
    for r in replies {
        if r.kind != RTM_NEWLINK || r.body.len() < 16 {
            continue;
        }
        let index = u32::from_ne_bytes(r.body[4..8].try_into().unwrap_or_default());
        if index != ifindex {
            continue;
        }
        for (kind, value) in attrs(&r.body[16..]) {
            if kind != IFLA_XDP {
                continue;
            }
            for (k, v) in attrs(value) {
                if IFLA_XDP_PROG_IDS.contains(&k) && v.len() >= 4 {
                    let id = u32::from_ne_bytes(v[..4].try_into().unwrap_or_default());
                    if id != 0 {
                        return Ok(Some(id));
                    }
                }
            }
        }
    }
    Ok(None)
}

/// A freplace link: `prog_id` replaces function `replaced_btf_id` of
/// program `extended_id`.
struct Replacement {
    prog_id: u32,
    extended_id: u32,
    replaced_btf_id: u32,
}

/// Every freplace link in the kernel (tracing links whose program is an
/// extension).
fn replacements() -> std::io::Result<Vec<Replacement>> {
    let mut out = Vec::new();
    for id in bpf_sys::link_ids()? {
        // A link may go away between the listing and the look.
        let Ok(link) = bpf_sys::link_by_id(id) else {
            continue;
        };
        let Ok(info) = bpf_sys::link_info(link.as_fd()) else {
            continue;
        };
        if info.link_type != bpf_sys::LINK_TYPE_TRACING {
            continue;
        }
        let is_extension = bpf_sys::prog_by_id(info.prog_id)
            .and_then(|p| bpf_sys::prog_info(p.as_fd()))
            .is_ok_and(|p| p.prog_type == bpf_sys::PROG_TYPE_EXT);
        if is_extension {
            out.push(Replacement {
                prog_id: info.prog_id,
                extended_id: info.target_prog_id,
                replaced_btf_id: info.target_btf_id,
            });
        }
    }
    Ok(out)
}

/// The programs that replace functions of program `id`, in the order of
/// those functions (libxdp's dispatcher calls them in that order).
fn extensions_of(id: u32) -> std::io::Result<Vec<u32>> {
    let mut parts: Vec<Replacement> = replacements()?
        .into_iter()
        .filter(|r| r.extended_id == id)
        .collect();
    parts.sort_by_key(|r| r.replaced_btf_id);
    Ok(parts.into_iter().map(|r| r.prog_id).collect())
}

/// The XDP program that extension `id` is part of, described, or why it
/// cannot be hooked as one.
fn extended_xdp_program(id: u32) -> Result<String, String> {
    let extended = replacements()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|r| r.prog_id == id)
        .map(|r| r.extended_id)
        .ok_or("is an extension attached to no program")?;
    let info = bpf_sys::prog_by_id(extended)
        .and_then(|p| bpf_sys::prog_info(p.as_fd()))
        .map_err(|e| format!("extends program {extended} ({e})"))?;
    let what = format!("program {extended} ({})", info.name);
    if info.prog_type != bpf_sys::PROG_TYPE_XDP {
        return Err(format!(
            "extends {what}, which is not an XDP program (type {})",
            info.prog_type
        ));
    }
    Ok(what)
}

/// Program `id`, checked.
fn target(spec: &str, id: u32) -> Result<Target, Error> {
    let config = |m: String| Error::Config(format!("--xdp-hook {spec}: {m}"));
    let fd =
        bpf_sys::prog_by_id(id).map_err(|e| config(format!("no program has id {id} ({e})")))?;
    let info = bpf_sys::prog_info(fd.as_fd()).map_err(|e| config(format!("program {id}: {e}")))?;
    let what = format!("program {id} ({})", info.name);
    let extends = match info.prog_type {
        bpf_sys::PROG_TYPE_XDP => None,
        bpf_sys::PROG_TYPE_EXT => {
            Some(extended_xdp_program(id).map_err(|m| config(format!("{what} {m}")))?)
        }
        other => {
            return Err(config(format!(
                "{what} is not an XDP program (type {other})"
            )))
        }
    };
    if info.btf_id == 0 || info.main_func_btf_id == 0 {
        return Err(config(format!(
            "{what} has no BTF, which fentry/fexit need to attach to it (build it with debug information: clang -g)"
        )));
    }
    let code = match (info.jited_ksyms.first(), info.jited_func_lens.first()) {
        (Some(&start), Some(&len)) if start != 0 => Some(start..start + u64::from(len)),
        _ => None,
    };
    Ok(Target {
        fd,
        id,
        name: info.name,
        extends,
        main_func_btf_id: info.main_func_btf_id,
        code,
    })
}

/// `capture_abi::trace::GLOBAL_XDP_FIRST_CODE` for `targets` (in the
/// order packets meet them): the first one's code when there are several
/// and the kernel shows where it is, else `[0, 0]` (each program's copies
/// then have ids of their own).
pub fn first_code(targets: &[Target]) -> [u8; 16] {
    let mut out = [0u8; 16];
    if let (true, Some(code)) = (
        targets.len() > 1,
        targets.first().and_then(|t| t.code.clone()),
    ) {
        out[..8].copy_from_slice(&code.start.to_ne_bytes());
        out[8..].copy_from_slice(&code.end.to_ne_bytes());
    }
    out
}

/// Loads `program` (entry or exit) on `target`.
pub fn load(
    maps: &Maps,
    program: &str,
    target: &Target,
    inline: &[&[cbpf2ebpf::ebpf::Insn]],
) -> Result<OwnedFd, Error> {
    let at = if program == capture_abi::trace::XDP_ENTRY_PROGRAM {
        "entry"
    } else {
        "exit"
    };
    maps.load_tracing(
        program,
        crate::object::AttachTarget {
            prog: Some(target.fd.as_fd()),
            btf_id: target.main_func_btf_id,
        },
        inline,
    )
    .map_err(|e| match e {
        LoadError::Refused => Error::Load(format!(
            "--xdp-hook: the kernel refuses fentry/fexit programs (BPF_PROG_LOAD: Operation not permitted, no verifier log; kernel lockdown or a security policy forbids BPF trampolines) so {} at {at} cannot be hooked",
            target.describe()
        )),
        LoadError::Other(m) => Error::Load(format!(
            "--xdp-hook: {} at {at}: {m}",
            target.describe()
        )),
    })
}

/// Attaches a loaded entry or exit program; the link detaches on close.
pub fn attach(prog: BorrowedFd<'_>, target: &Target) -> Result<OwnedFd, Error> {
    bpf_sys::tracing_attach(prog).map_err(|e| Error::Attach {
        iface: "kernel".into(),
        hook: format!("--xdp-hook {}", target.describe()),
        message: e.to_string(),
    })
}
