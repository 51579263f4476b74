//! From the expression to loaded programs: compile, translate for each
//! hook, splice, load.

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use capture_abi::live as live_abi;
use capture_abi::owner;
use cbpf2ebpf::Hook;

use super::{Config, DirectionFilter, HookKind, Interface};
use crate::{attribution, iface, live_filter, object, programs, Error, Wakeup};

/// A hook to capture at: the translator's hook, the stub and the program.
pub(super) type HookPlan = (Hook, &'static str, &'static str);

/// The filter, compiled as libpcap does on a live handle of the first
/// interface; with `-i any`, of the first that is up (libpcap cannot open
/// one that is down), or on a dead Ethernet handle when none is.
pub(super) fn compile_filter(
    cfg: &Config,
    interfaces: &[Interface],
    any: bool,
) -> Result<live_filter::Compiled, Error> {
    let on = match any {
        true => interfaces.iter().find(|i| iface::is_up(&i.name)),
        false => interfaces.first(),
    };
    match on {
        Some(i) => live_filter::compile_on_interface(&cfg.expression, &i.name, cfg.snaplen),
        None => live_filter::compile_dead(&cfg.expression, cfg.snaplen),
    }
}

/// The hooks to capture at: XDP, or TC ingress and/or egress as `-Q` asks.
pub(super) fn hooks_for(cfg: &Config) -> Vec<HookPlan> {
    let mut hooks = Vec::new();
    match cfg.hook {
        HookKind::Xdp => hooks.push((Hook::Xdp, live_abi::STUB_XDP, live_abi::PROG_XDP)),
        HookKind::Tc => {
            if cfg.direction != DirectionFilter::Out {
                hooks.push((Hook::TcIngress, live_abi::STUB_TC, live_abi::PROG_TC));
            }
            if cfg.direction != DirectionFilter::In {
                hooks.push((
                    Hook::TcEgress,
                    live_abi::STUB_TC_EGRESS,
                    live_abi::PROG_TC_EGRESS,
                ));
            }
        }
    }
    hooks
}

/// The filter translated for each hook: (stub, eBPF).
pub(super) fn translate_filters(
    compiled: &live_filter::Compiled,
    hooks: &[HookPlan],
) -> Result<Vec<(&'static str, Vec<cbpf2ebpf::ebpf::Insn>)>, Error> {
    hooks
        .iter()
        .map(|(hook, stub, _)| Ok((*stub, live_filter::translate_for(compiled, *hook)?)))
        .collect()
}

/// The capture programs with each filter in its stub's place.
pub(super) fn splice_filters(
    filters: &[(&'static str, Vec<cbpf2ebpf::ebpf::Insn>)],
) -> Result<injector::Spliced, Error> {
    let stubs: Vec<(&str, &[cbpf2ebpf::ebpf::Insn])> =
        filters.iter().map(|(s, f)| (*s, &f[..])).collect();
    programs::splice(&stubs)
}

/// Creates the object's maps (the rings' array and sleep flags made
/// already, the settings in `.rodata`) and loads the programs of `hooks`,
/// the filters inlined: their call and return would cost more than most
/// filters do.
pub(super) fn load_programs(
    cfg: &Config,
    compiled: &live_filter::Compiled,
    hooks: &[HookPlan],
    filters: &[(&'static str, Vec<cbpf2ebpf::ebpf::Insn>)],
    spliced: &injector::Spliced,
    rings: (OwnedFd, OwnedFd),
    ring_bytes: u32,
) -> Result<object::Loaded, Error> {
    let (rings_array, asleep) = rings;
    let (wakeup_events, wakeup_bytes) = match cfg.wakeup {
        Wakeup::Events(n) if n > 1 => (n, 0),
        Wakeup::Events(_) => (0, 0),
        Wakeup::Bytes(n) => (0, n.clamp(1, ring_bytes)),
    };
    let [attributing, select] = attribution::globals(cfg.who.as_ref());

    let bodies: Vec<&[cbpf2ebpf::ebpf::Insn]> = filters.iter().map(|(_, f)| &f[..]).collect();
    let maps = object::Maps::create(
        &spliced.elf,
        &[
            (capture_abi::GLOBAL_SNAPLEN, &cfg.snaplen.to_ne_bytes()),
            (capture_abi::GLOBAL_TC_PULL, &cfg.tc_pull.to_ne_bytes()),
            (
                capture_abi::GLOBAL_FILTER_READS_LEN,
                &u32::from(live_filter::reads_len(&compiled.cbpf)).to_ne_bytes(),
            ),
            (
                capture_abi::GLOBAL_COUNT_SEEN,
                &u32::from(cfg.count_seen).to_ne_bytes(),
            ),
            (
                capture_abi::GLOBAL_WAKEUP_EVENTS,
                &wakeup_events.to_ne_bytes(),
            ),
            (
                capture_abi::GLOBAL_WAKEUP_BYTES,
                &wakeup_bytes.to_ne_bytes(),
            ),
            (attributing.0, &attributing.1),
            (select.0, &select.1),
        ],
        ring_bytes,
        HashMap::from([
            (capture_abi::RINGS_MAP.to_string(), rings_array),
            (capture_abi::ASLEEP_MAP.to_string(), asleep),
            (owner::OWNERS_MAP.to_string(), attribution::owners_map()?),
        ]),
        &[],
    )?;
    let mut programs: Vec<&str> = hooks.iter().map(|(_, _, p)| *p).collect();
    // Attribution's programs record sockets' owners.
    if cfg.who.is_some() {
        programs.extend(owner::PROGRAMS);
    }
    maps.load_programs(&programs, &bodies)
}

/// How each hook's program runs its filter, for `-v`.
pub(super) fn linkage(
    object: &object::Loaded,
    hooks: &[HookPlan],
) -> Vec<(&'static str, object::Linkage)> {
    hooks
        .iter()
        .map(|(h, _, p)| {
            let l = object.linkage(p).cloned();
            (
                h.name(),
                l.unwrap_or(object::Linkage::Called("not loaded".into())),
            )
        })
        .collect()
}
