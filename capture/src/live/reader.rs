//! The rings and their one reader thread, which turns records into
//! [`Packet`]s.

use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::{Bytes, BytesMut};
use capture_abi::live::{self as live_abi, Hdr, DIR_OUT, HOOK_XDP};

use super::follow;
use super::load::HookPlan;
use super::{Batch, Config, Direction, HookPoint, Interface, Packet};
use crate::shared::{tai_to_realtime_ns, Shared};
use crate::{attribution, cpus, perf, ring, Error};

/// The bytes of a ring of `pages` pages: a power of two the kernel takes.
pub(super) fn ring_bytes(pages: usize) -> Result<u32, Error> {
    let bytes = pages.saturating_mul(perf::page_size());
    if !pages.is_power_of_two() || bytes > 1 << 30 {
        return Err(Error::Buffer(format!(
            "{pages} pages a CPU: the ring size must be a power of two pages, at most 1 GiB"
        )));
    }
    Ok(bytes as u32)
}

/// Starts creating the ring buffers on another thread: putting them in the
/// programs' array waits for an RCU grace period, which passes while
/// libpcap compiles.
pub(super) fn create_rings_meanwhile(
    ring_bytes: u32,
) -> Result<JoinHandle<Result<ring::Rings, String>>, Error> {
    let possible = cpus::possible()? as u32;
    let cpus = cpus::online()?;
    std::thread::Builder::new()
        .name("xcap-rings".into())
        .spawn(move || {
            ring::Rings::create(
                capture_abi::RINGS_MAP,
                capture_abi::ASLEEP_MAP,
                possible,
                &cpus,
                ring_bytes,
            )
        })
        .map_err(|e| Error::Buffer(e.to_string()))
}

/// The reader thread of every ring, the channel it hands batches to and,
/// with `-i any`, what follows interfaces coming and going.
pub(super) struct Reader {
    pub(super) shared: Arc<Shared>,
    pub(super) rx: Receiver<Batch>,
    pub(super) threads: Vec<JoinHandle<()>>,
    pub(super) follow: Option<follow::Follower>,
}

/// Starts the reader of every ring, before anything captures.
pub(super) fn start_reader(
    cfg: &Config,
    interfaces: &[Interface],
    hooks: &[HookPlan],
    any: bool,
    rings: Vec<(u32, ring::BpfRing)>,
) -> Result<Reader, Error> {
    let shared = Shared::new()?;
    let (tx, rx) = mpsc::sync_channel::<Batch>(cfg.queue_batches.max(1));
    let waker_tx = tx.clone();
    *shared.wake_consumer() = Some(Box::new(move || {
        let _ = waker_tx.try_send(Batch {
            packets: Vec::new(),
        });
    }));
    let tai_offset = tai_to_realtime_ns();
    let index: follow::Index = Arc::new(std::sync::RwLock::new(
        interfaces
            .iter()
            .enumerate()
            .map(|(n, i)| (i.ifindex, n))
            .collect(),
    ));
    let follow = match any {
        true => Some(follow::Follower::new(
            hooks.iter().map(|(h, _, p)| (*h, *p)).collect(),
            index.clone(),
            cfg.xdp_mode,
        )?),
        false => None,
    };
    let rings: Vec<ring::BpfRing> = rings.into_iter().map(|(_, r)| r).collect();
    let (reader_shared, poll_ms) = (shared.clone(), cfg.poll_ms);
    let readers = vec![std::thread::Builder::new()
        .name("xcap-rings".into())
        .spawn(move || reader(rings, tx, reader_shared, index, tai_offset, poll_ms))
        .map_err(|e| Error::Buffer(e.to_string()))?];
    Ok(Reader {
        shared,
        rx,
        threads: readers,
        follow,
    })
}

/// The one reader of every ring. Each round notes where every ring's
/// producers are, then drains each ring up to there and hands the round's
/// packets over sorted by time: a ring holds its CPU's packets in time
/// order, and a record reserved after the note has a later time stamp than
/// any before it, so rounds follow each other in order too (per-ring
/// readers handed over packets of different CPUs in whatever order they
/// woke). Copying records out is cheap next to writing them; the writer
/// stays a thread of its own.
pub(super) fn reader(
    mut rings: Vec<ring::BpfRing>,
    tx: SyncSender<Batch>,
    shared: Arc<Shared>,
    index: follow::Index,
    tai_offset: i64,
    poll_ms: i32,
) {
    let mut buf = BytesMut::with_capacity(256 * 1024);
    let fds: Vec<RawFd> = rings.iter().map(ring::BpfRing::fd).collect();
    // Nothing came during the last wait: sleep until a record wakes us.
    let mut idle = false;
    loop {
        let last = shared.draining.load(Ordering::Acquire);
        if !last {
            if idle {
                ring::BpfRing::sleep_all(&rings, shared.stop_fd());
            } else {
                perf::wait_any_readable(&fds, shared.stop_fd(), poll_ms);
            }
        }
        let ends: Vec<u64> = rings.iter().map(ring::BpfRing::producer_now).collect();
        let mut metas: Vec<(Packet, usize, usize)> = Vec::new();
        // Interfaces that appeared (`-i any`) join the map between drains.
        let index = index.read().unwrap_or_else(|p| p.into_inner()).clone();
        for (ring, end) in rings.iter_mut().zip(ends) {
            let mut drain = |ring: &mut ring::BpfRing| {
                ring.drain_to(end, |r| {
                    if let perf::Record::Sample(raw) = r {
                        if let Some(m) = parse_sample(raw, &index, tai_offset, &mut buf) {
                            metas.push(m);
                        }
                    }
                })
            };
            // A record still being written (its program between reserve
            // and submit, microseconds) is waited for, or the round's
            // later records of other rings would go out before it.
            let mut tries = 0;
            while !drain(ring) && tries < 1000 {
                tries += 1;
                std::hint::spin_loop();
            }
        }
        idle = metas.is_empty();
        if !metas.is_empty() {
            // Stable: a ring's own records keep their order.
            metas.sort_by_key(|(p, _, _)| p.ts_ns);
            let bytes = buf.split().freeze();
            let packets = metas
                .into_iter()
                .map(|(mut p, start, len)| {
                    p.data = bytes.slice(start..start + len);
                    p
                })
                .collect();
            if buf.capacity() < 64 * 1024 {
                buf.reserve(256 * 1024);
            }
            if tx.send(Batch { packets }).is_err() {
                return;
            }
        }
        if last {
            return;
        }
    }
}

/// Parses one sample: header, then packet bytes, appended to `buf` (with an
/// out-of-band VLAN tag put back after the MAC addresses).
pub(super) fn parse_sample(
    raw: &[u8],
    index: &[(u32, usize)],
    tai_offset: i64,
    buf: &mut BytesMut,
) -> Option<(Packet, usize, usize)> {
    let hdr: Hdr = capture_abi::read(raw)?;
    let mut wirelen = hdr.wirelen;
    let caplen = (hdr.caplen as usize).min(raw.len() - live_abi::HDR_BYTES);
    let hook = if hdr.hook == HOOK_XDP {
        HookPoint::Xdp
    } else {
        HookPoint::Tc
    };
    let direction = if hdr.direction == DIR_OUT {
        Direction::Out
    } else {
        Direction::In
    };
    let vlan_present = hdr.vlan_present != 0;
    let tci = hdr.vlan_tci;
    let tpid = match u16::from_be(hdr.vlan_proto) {
        0 => 0x8100,
        t => t,
    };
    let data = &raw[live_abi::HDR_BYTES..live_abi::HDR_BYTES + caplen];
    let start = buf.len();
    let mut vlan = None;
    if vlan_present && hook == HookPoint::Tc && caplen >= 12 {
        buf.extend_from_slice(&data[..12]);
        buf.extend_from_slice(&tpid.to_be_bytes());
        buf.extend_from_slice(&tci.to_be_bytes());
        buf.extend_from_slice(&data[12..]);
        wirelen += 4;
        vlan = Some((tpid, tci));
    } else {
        buf.extend_from_slice(data);
    }
    let len = buf.len() - start;
    let iface = index
        .iter()
        .find(|(i, _)| *i == hdr.ifindex)
        .map(|(_, n)| *n)
        .unwrap_or(0);
    let p = Packet {
        ts_ns: (hdr.ts_ns as i64 + tai_offset) as u64,
        ifindex: hdr.ifindex,
        iface,
        hook,
        direction,
        wirelen,
        cpu: hdr.cpu,
        queue: hdr.queue,
        pkt_type: hdr.pkt_type,
        vlan,
        data: Bytes::new(),
        owner: attribution::owner_of(&hdr),
        packet_id: hdr.packet_id,
    };
    Some((p, start, len))
}
