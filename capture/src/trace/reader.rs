//! The perf buffers' reader thread, which turns records into
//! [`TracePacket`]s.

use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use capture_abi as abi;
use capture_abi::trace::{TraceHdr, HOOK_XDP_EXIT, LINK_EN10MB, MAX_PRE, TRACE_HDR_BYTES};

use super::{AttachedHook, LinkType, TracePacket};
use crate::perf;
use crate::shared::Shared;

/// Which hook a record belongs to: its hook id and, for one of several
/// hooked XDP programs, the program's code (`TraceHdr::location` is the
/// hooked function's address).
pub(super) struct HookKey {
    id: u16,
    code: Option<std::ops::Range<u64>>,
}

impl HookKey {
    pub(super) fn of(h: &AttachedHook) -> HookKey {
        HookKey {
            id: h.id,
            code: h.code.clone(),
        }
    }

    fn matches(&self, id: u16, location: u64) -> bool {
        self.id == id && self.code.as_ref().is_none_or(|c| c.contains(&location))
    }
}

/// The one reader of every perf buffer; rounds as the live capture's
/// reader (`live::reader`): note every buffer's head, drain each up to
/// it, hand the round over sorted by time.
pub(super) fn reader(
    mut rings: Vec<perf::PerfRing>,
    tx: SyncSender<Vec<TracePacket>>,
    shared: Arc<Shared>,
    keys: Vec<HookKey>,
    tai_offset: i64,
    poll_ms: i32,
) {
    let fds: Vec<std::os::fd::RawFd> = rings.iter().map(perf::PerfRing::fd).collect();
    loop {
        let last = shared.draining.load(Ordering::Acquire);
        perf::wait_any_readable(&fds, shared.stop_fd(), if last { 0 } else { poll_ms });
        let heads: Vec<u64> = rings.iter().map(perf::PerfRing::head_now).collect();
        let mut batch = Vec::new();
        let mut lost = 0u64;
        for (ring, head) in rings.iter_mut().zip(heads) {
            ring.drain_to(head, |r| match r {
                perf::Record::Lost(n) => lost += n,
                perf::Record::Sample(raw) => {
                    if let Some(p) = parse(raw, &keys, tai_offset) {
                        batch.push(p);
                    }
                }
            });
        }
        if lost > 0 {
            shared.perf_lost.fetch_add(lost, Ordering::Relaxed);
        }
        batch.sort_by_key(|p| p.ts_ns);
        if !batch.is_empty() && tx.send(batch).is_err() {
            return;
        }
        if last {
            return;
        }
    }
}

/// One sample: a [`TraceHdr`], then the bytes `bpf_skb_output` (or
/// `bpf_xdp_output`) copied from the packet.
pub(super) fn parse(raw: &[u8], keys: &[HookKey], tai_offset: i64) -> Option<TracePacket> {
    let h: TraceHdr = abi::read(raw)?;
    let caplen = h.caplen as usize;
    let pre_len = (h.pre_len as usize).min(MAX_PRE).min(caplen);
    let skip = h.skip as usize;
    let hook = keys
        .iter()
        .position(|k| k.matches(h.hook, h.location))
        .unwrap_or(0);
    let link = if h.link == LINK_EN10MB {
        LinkType::Ethernet
    } else {
        LinkType::Raw
    };
    let n = h.comm.iter().position(|&b| b == 0).unwrap_or(h.comm.len());
    let mut data = Vec::with_capacity(caplen);
    data.extend_from_slice(&h.pre[..pre_len]);
    let rest = &raw[TRACE_HDR_BYTES..];
    let from = skip.min(rest.len());
    let to = (skip + caplen - pre_len).min(rest.len());
    data.extend_from_slice(&rest[from..to]);
    Some(TracePacket {
        ts_ns: (h.ts_ns as i64 + tai_offset) as u64,
        skb: h.skb,
        location: h.location,
        wirelen: h.wirelen,
        ifindex: h.ifindex,
        reason: h.reason,
        netns: h.netns,
        pid: h.pid,
        tid: h.tid,
        cpu: h.cpu,
        hook,
        link,
        comm: String::from_utf8_lossy(&h.comm[..n]).into_owned(),
        owner: crate::attribution::owner_from(h.owner_state, &h.owner),
        data,
        stack_id: h.stack_id,
        verdict: (h.hook == HOOK_XDP_EXIT).then_some(h.reason),
    })
}
