//! Loading, attaching and reading: the steps of a tracing start after
//! the hooks and filters are known.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use btf::Btf;
use capture_abi as abi;
use capture_abi::trace::{
    GLOBAL_OFFSETS, GLOBAL_STACK, GLOBAL_XDP_ENTRY_COUNTS, GLOBAL_XDP_FIRST_CODE, HOOK_FENTRY,
    HOOK_FEXIT, HOOK_XDP_ENTRY, HOOK_XDP_EXIT, OFF_LEN, STACKS_MAP, XDP_ENTRY_PROGRAM,
    XDP_EXIT_PROGRAM,
};

use super::filters::Compiled;
use super::hooks::{trampoline_kind, Planned};
use super::reader::{reader, HookKey};
use super::{
    xdp_hook, AttachedHook, LinkType, Programs, TraceCapture, TraceConfig, TracePacket, STACKS_MAX,
};
use crate::object::{AttachTarget, LoadError};
use crate::shared::{tai_to_realtime_ns, Shared};
use crate::{perf, sys, Error};

/// Tracepoints and fentry on kernel functions: each program loaded by
/// xcap's own loader against its target's id in the kernel's BTF (the one
/// parse of it), then attached.
pub(super) fn start_kernel_hooks(
    cfg: &TraceConfig,
    btf: &Btf,
    planned: &[Planned],
    offs: &[u32; OFF_LEN],
    compiled: Compiled,
    reasons: HashMap<u32, String>,
) -> Result<TraceCapture, Error> {
    let snaplen = cfg.snaplen.to_ne_bytes();
    let stack = u32::from(cfg.stack).to_ne_bytes();
    let offs_bytes: Vec<u8> = offs.iter().flat_map(|o| o.to_ne_bytes()).collect();
    let stacks_max: &[(&str, u32)] = if cfg.stack {
        &[(STACKS_MAP, STACKS_MAX)]
    } else {
        &[]
    };
    let [attributing, select] = crate::attribution::globals(cfg.who.as_ref());
    let sk_offset = skb_sk_offset(btf, cfg)?.to_ne_bytes();
    let maps = crate::object::Maps::create(
        &compiled.elf,
        &[
            (abi::GLOBAL_SNAPLEN, &snaplen[..]),
            (GLOBAL_OFFSETS, &offs_bytes[..]),
            (GLOBAL_STACK, &stack[..]),
            (attributing.0, &attributing.1),
            (select.0, &select.1),
            (capture_abi::owner::GLOBAL_SKB_SK_OFFSET, &sk_offset),
        ],
        perf::page_size() as u32,
        made_maps()?,
        stacks_max,
    )?;
    let (loaded, hooks) = load_kernel_hooks(&maps, btf, planned)?;
    let attribution = match &cfg.who {
        Some(who) => Some(crate::attribution::Attribution::start_beside(&maps, who)?),
        None => None,
    };
    let mut cap = start_reading(cfg, maps, loaded, hooks, reasons, cfg.stack, compiled.sizes)?;
    cap.attribution = attribution;
    // Attach; on error `cap` is dropped, which detaches what was attached.
    for (p, program) in planned.iter().zip(&cap.programs.loaded) {
        let link = sys::tracing_attach(program.as_fd()).map_err(|e| Error::Attach {
            iface: "kernel".into(),
            hook: p.desc().to_owned(),
            message: e.to_string(),
        })?;
        cap.links.push(Box::new(link));
    }
    Ok(cap)
}

/// Where `struct sk_buff` keeps its socket, for attribution (0 without).
fn skb_sk_offset(btf: &Btf, cfg: &TraceConfig) -> Result<u32, Error> {
    if cfg.who.is_none() {
        return Ok(0);
    }
    btf.member_offset("sk_buff", "sk").ok_or_else(|| {
        Error::Config("attribution: the kernel BTF has no field sk in struct sk_buff".into())
    })
}

/// Loads each planned program against its target: a tracepoint's
/// `btf_trace_<name>`, a function; and the hooks, as records name them.
pub(super) fn load_kernel_hooks(
    maps: &crate::object::Maps,
    btf: &Btf,
    planned: &[Planned],
) -> Result<(Vec<OwnedFd>, Vec<AttachedHook>), Error> {
    let mut loaded = Vec::new();
    let mut hooks = Vec::new();
    for p in planned {
        let (prog, target, hook) = match p {
            Planned::Tp {
                name,
                prog,
                id,
                desc,
            } => (
                *prog,
                btf.tracepoint_id(name),
                AttachedHook {
                    name: (*name).to_owned(),
                    description: desc.clone(),
                    id: *id,
                    code: None,
                },
            ),
            Planned::Fentry {
                function,
                prog,
                desc,
                exit,
            } => (
                prog.as_str(),
                btf.function_id(function),
                AttachedHook {
                    name: format!("{}:{function}", trampoline_kind(*exit)),
                    description: desc.clone(),
                    id: if *exit { HOOK_FEXIT } else { HOOK_FENTRY },
                    code: None,
                },
            ),
        };
        let desc = p.desc();
        let btf_id =
            target.ok_or_else(|| Error::Load(format!("{desc}: not in the kernel's BTF")))?;
        let target = AttachTarget { prog: None, btf_id };
        let fd = maps.load_tracing(prog, target, &[]).map_err(|e| match (e, p) {
            // Seen on Linux 6.18 with lockdown=integrity: every trampoline
            // program (fentry, fexit, fmod_ret, lsm) is refused before the
            // verifier runs, while tp_btf loads.
            (LoadError::Refused, Planned::Fentry { exit, .. }) => Error::Load(format!(
                "{desc}: the kernel refuses {} programs (BPF_PROG_LOAD: Operation not permitted, no verifier log; kernel lockdown or a security policy forbids BPF trampolines); use --trace instead",
                trampoline_kind(*exit)
            )),
            (LoadError::Refused, Planned::Tp { .. }) => {
                Error::Load(format!("{desc}: BPF_PROG_LOAD: Operation not permitted"))
            }
            (LoadError::Other(m), _) => Error::Load(format!("{desc}: {m}")),
        })?;
        loaded.push(fd);
        hooks.push(hook);
    }
    Ok((loaded, hooks))
}

/// The maps of the object that only xcap can make: the attribution's
/// socket storage (it needs BTF for its key and value, which the loader
/// does not send), unused by the tracing programs.
pub(super) fn made_maps() -> Result<HashMap<String, OwnedFd>, Error> {
    Ok(HashMap::from([(
        capture_abi::owner::OWNERS_MAP.to_string(),
        crate::attribution::owners_map()?,
    )]))
}

/// The capture before its attach step, shared by kernel and XDP hooks:
/// readers started on the events map, the loaded programs kept.
pub(super) fn start_reading(
    cfg: &TraceConfig,
    maps: crate::object::Maps,
    loaded: Vec<OwnedFd>,
    hooks: Vec<AttachedHook>,
    reasons: HashMap<u32, String>,
    stack: bool,
    filters: Vec<(LinkType, usize, usize)>,
) -> Result<TraceCapture, Error> {
    let map_fd = maps
        .map(abi::EVENTS_MAP)
        .ok_or_else(|| Error::Load(format!("no map {}", abi::EVENTS_MAP)))?
        .as_raw_fd();
    let keys = hooks.iter().map(HookKey::of).collect();
    let (shared, rx, readers) = start_readers(cfg, map_fd, keys)?;
    Ok(TraceCapture {
        programs: Programs {
            maps: Box::new(maps),
            loaded,
        },
        links: Vec::new(),
        readers,
        shared,
        rx: Some(rx),
        hooks,
        detached: false,
        reasons,
        stack,
        attribution: None,
        filters,
    })
}

/// The perf buffer of each CPU in the perf event array `map_fd`, and the
/// reader of them all: before anything is attached.
#[allow(clippy::type_complexity)]
pub(super) fn start_readers(
    cfg: &TraceConfig,
    map_fd: std::os::fd::RawFd,
    keys: Vec<HookKey>,
) -> Result<(Arc<Shared>, Receiver<Vec<TracePacket>>, Vec<JoinHandle<()>>), Error> {
    let shared = Shared::new()?;
    let cpus = crate::cpus::online()?;
    let (tx, rx) = mpsc::sync_channel::<Vec<TracePacket>>(cfg.queue_batches.max(1));
    let waker_tx = tx.clone();
    *shared.wake_consumer() = Some(Box::new(move || {
        let _ = waker_tx.try_send(Vec::new());
    }));
    let tai_offset = tai_to_realtime_ns();
    let mut rings = Vec::new();
    for cpu in cpus {
        let ring = perf::PerfRing::open(cpu, cfg.perf_pages, cfg.wakeup)
            .map_err(|e| Error::Buffer(format!("cpu {cpu}: {e}")))?;
        perf::set_perf_fd(map_fd, cpu, ring.fd())
            .map_err(|e| Error::Buffer(format!("cpu {cpu}: {e}")))?;
        rings.push(ring);
    }
    let (reader_shared, poll_ms) = (shared.clone(), cfg.poll_ms);
    let readers = vec![std::thread::Builder::new()
        .name("xcap-trace".into())
        .spawn(move || reader(rings, tx, reader_shared, keys, tai_offset, poll_ms))
        .map_err(|e| Error::Buffer(e.to_string()))?];
    Ok((shared, rx, readers))
}

/// `--xdp-hook`: the targets resolved and checked, the object loaded by
/// xcap's own loader with an entry and/or exit program per target, then
/// attached.
pub(super) fn start_xdp_hooks(
    cfg: &TraceConfig,
    program: &str,
    entry: bool,
    exit: bool,
    offs: &[u32; OFF_LEN],
    compiled: Compiled,
    reasons: HashMap<u32, String>,
) -> Result<TraceCapture, Error> {
    if [14, 15, 16, 17, 18, 20]
        .iter()
        .any(|&i| offs[i] == u32::MAX)
    {
        return Err(Error::Config(
            "--xdp-hook: the kernel BTF lacks fields of struct xdp_buff or xdp_rxq_info".into(),
        ));
    }
    if cfg.who.is_some() {
        return Err(Error::Config(
            "--xdp-hook has no socket to take the process from (XDP runs before the stack): attribution and process filters work at TC and the kernel's tracing hooks".into(),
        ));
    }
    let targets = xdp_hook::resolve(program)?;
    let snaplen = cfg.snaplen.to_ne_bytes();
    let offs_bytes: Vec<u8> = offs.iter().flat_map(|o| o.to_ne_bytes()).collect();
    let entry_counts = u32::from(entry).to_ne_bytes();
    let first_code = xdp_hook::first_code(&targets);
    let no_stack = 0u32.to_ne_bytes();
    let maps = crate::object::Maps::create(
        &compiled.elf,
        &[
            (abi::GLOBAL_SNAPLEN, &snaplen[..]),
            (GLOBAL_OFFSETS, &offs_bytes[..]),
            (GLOBAL_STACK, &no_stack[..]),
            (GLOBAL_XDP_ENTRY_COUNTS, &entry_counts[..]),
            (GLOBAL_XDP_FIRST_CODE, &first_code[..]),
        ],
        perf::page_size() as u32,
        made_maps()?,
        &[],
    )?;
    let bodies: Vec<&[cbpf2ebpf::ebpf::Insn]> = compiled.bodies.iter().map(Vec::as_slice).collect();
    let sides: Vec<(&str, u16, &str)> = [
        (entry, XDP_ENTRY_PROGRAM, HOOK_XDP_ENTRY, "entry"),
        (exit, XDP_EXIT_PROGRAM, HOOK_XDP_EXIT, "exit"),
    ]
    .into_iter()
    .filter(|s| s.0)
    .map(|(_, prog, id, side)| (prog, id, side))
    .collect();
    let (loaded, hooks) = load_xdp_hooks(&maps, &targets, &sides, &bodies)?;
    let mut cap = start_reading(cfg, maps, loaded, hooks, reasons, false, compiled.sizes)?;
    // Attach; on error `cap` is dropped, which detaches what was attached.
    let per_target = sides.len();
    for i in 0..cap.hooks.len() {
        let link = xdp_hook::attach(cap.programs.loaded[i].as_fd(), &targets[i / per_target])?;
        cap.links.push(Box::new(link));
    }
    Ok(cap)
}

/// Loads the entry and/or exit program (`sides`: program, hook id, side)
/// for every target, before any attaches; and the hooks, as records name
/// them.
fn load_xdp_hooks(
    maps: &crate::object::Maps,
    targets: &[xdp_hook::Target],
    sides: &[(&str, u16, &str)],
    bodies: &[&[cbpf2ebpf::ebpf::Insn]],
) -> Result<(Vec<OwnedFd>, Vec<AttachedHook>), Error> {
    let mut loaded = Vec::new();
    let mut hooks = Vec::new();
    for t in targets {
        for &(prog, id, side) in sides {
            loaded.push(xdp_hook::load(maps, prog, t, bodies)?);
            hooks.push(AttachedHook {
                name: format!("xdp-{side}:{}", t.name),
                description: format!(
                    "{} on XDP {} ({side}{})",
                    if side == "entry" { "fentry" } else { "fexit" },
                    t.describe(),
                    if side == "exit" {
                        ", with its verdict"
                    } else {
                        ""
                    }
                ),
                id,
                code: if targets.len() > 1 {
                    t.code.clone()
                } else {
                    None
                },
            });
        }
    }
    Ok((loaded, hooks))
}
