//! Who sent each packet: the process that owns the packet's socket.
//!
//! The cgroup programs here run in the task that creates a socket or uses
//! it (`sock_create`, `bind4/6`, `connect4/6`, `sendmsg4/6` and
//! `recvmsg4/6`, attached to the root cgroup v2, so they see every task)
//! and write that task into the socket's storage ([`OWNERS`], an
//! `SK_STORAGE` map cloned to accepted sockets from their listener). The
//! TC programs read it back, after the filter matched: at egress from the
//! packet's socket (`skb->sk`; a request socket's listener for a SYN-ACK),
//! at ingress from the socket a lookup on the packet's addresses and ports
//! finds (TCP and UDP, IPv4 and IPv6 without extension headers). A packet
//! with no local socket (forwarded, or for no one here) says so
//! ([`OWNER_NO_SOCKET`]) rather than naming whoever runs when it passes.
//! The tracing programs read it from the packet's own socket (`skb->sk`
//! as a typed pointer, [`attribute_traced`]); they may not look sockets
//! up, so a packet without one says [`OWNER_NO_SOCKET_YET`] there.
//!
//! [`XCAP_ATTRIBUTION`] (frozen `.rodata`) is 0 unless asked for, which
//! makes all of it dead code in the TC programs: plain capture pays
//! nothing. [`XCAP_SELECT`] turns on the process filters (`--pid`,
//! `--comm`, `--cgroup`/`--container`): a packet whose owner is not
//! selected counts as not matched and is not copied.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{__sk_buff, bpf_sock, bpf_sock_addr, bpf_sock_tuple},
    btf_maps::{HashMap, SkStorage},
    helpers::generated::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_listener_sock, bpf_get_netns_cookie, bpf_sk_fullsock, bpf_sk_lookup_tcp,
        bpf_sk_lookup_udp, bpf_sk_release, bpf_sk_storage_get, bpf_skb_load_bytes,
    },
    macros::{btf_map, cgroup_sock, cgroup_sock_addr},
    programs::{SockAddrContext, SockContext},
};
use capture_abi::owner::{
    self, Owner, OWNER_FOUND, OWNER_NO_SOCKET, OWNER_NO_SOCKET_YET, OWNER_OFF, OWNER_UNKNOWN,
    SELECT_CGROUP, SELECT_COMM, SELECT_PID,
};

/// 1 to attribute packets; set by the loader (frozen).
#[unsafe(no_mangle)]
static XCAP_ATTRIBUTION: u32 = 0;
abi_name!(owner::GLOBAL_ATTRIBUTION, stringify!(XCAP_ATTRIBUTION));

/// `SELECT_*` bits: which process filters a packet's owner must pass.
#[unsafe(no_mangle)]
static XCAP_SELECT: u32 = 0;
abi_name!(owner::GLOBAL_SELECT, stringify!(XCAP_SELECT));

/// Tracing hooks: where `struct sk_buff` keeps `sk` (set by the loader).
#[unsafe(no_mangle)]
static XCAP_SKB_SK_OFFSET: u32 = 0;
abi_name!(owner::GLOBAL_SKB_SK_OFFSET, stringify!(XCAP_SKB_SK_OFFSET));

/// Socket storage: the owner of each socket. The loader makes it (with
/// BTF and `BPF_F_CLONE`, so accepted sockets inherit their listener's).
#[btf_map(name = "XCAP_OWNERS")]
static OWNERS: SkStorage<Owner> = SkStorage::new();
abi_name!(owner::OWNERS_MAP, "XCAP_OWNERS");

/// `--pid` (and the children found when following them): pids selected.
#[btf_map(name = "XCAP_SEL_PIDS")]
static SEL_PIDS: HashMap<u32, u8, 4096> = HashMap::new();
abi_name!(owner::SEL_PIDS_MAP, "XCAP_SEL_PIDS");

/// `--comm`: command names selected, NUL-padded to 16 bytes.
#[btf_map(name = "XCAP_SEL_COMMS")]
static SEL_COMMS: HashMap<[u8; 16], u8, 64> = HashMap::new();
abi_name!(owner::SEL_COMMS_MAP, "XCAP_SEL_COMMS");

/// `--cgroup` and `--container`: cgroup ids selected (each cgroup and
/// every one below it, as found at start).
#[btf_map(name = "XCAP_SEL_CGROUPS")]
static SEL_CGROUPS: HashMap<u64, u8, 4096> = HashMap::new();
abi_name!(owner::SEL_CGROUPS_MAP, "XCAP_SEL_CGROUPS");

const SK_STORAGE_GET_F_CREATE: u64 = 1;
/// `BPF_F_CURRENT_NETNS`: look sockets up in the device's namespace.
const CURRENT_NETNS: u64 = u64::MAX;
const ETH_P_IP: u32 = 0x0800;
const ETH_P_IPV6: u32 = 0x86dd;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const ETH_HLEN: u32 = 14;

fn owners() -> *mut c_void {
    core::ptr::from_ref(&OWNERS).cast_mut().cast()
}

#[inline(always)]
fn enabled() -> bool {
    let on = unsafe { core::ptr::read_volatile(&XCAP_ATTRIBUTION) };
    on != 0
}

/// Writes the running task into `owner`.
#[inline(always)]
fn record_current(owner: *mut Owner, netns: u64) {
    let pid_tgid = unsafe { bpf_get_current_pid_tgid() };
    unsafe {
        (*owner).pid = (pid_tgid >> 32) as u32;
        (*owner).tid = pid_tgid as u32;
        (*owner).cgroup = bpf_get_current_cgroup_id();
        (*owner).netns = netns;
        bpf_get_current_comm((*owner).comm.as_mut_ptr().cast(), 16);
    }
}

/// A socket is made: its creator owns it.
#[cgroup_sock(sock_create)]
pub fn xcap_owner_create(ctx: SockContext) -> i32 {
    let ctx = ctx.sock as *mut c_void;
    // The context is the socket (bpf_sk_storage_get's cgroup-sock form).
    let owner = unsafe {
        bpf_sk_storage_get(
            owners(),
            ctx,
            core::ptr::null_mut(),
            SK_STORAGE_GET_F_CREATE,
        )
    } as *mut Owner;
    if !owner.is_null() {
        record_current(owner, unsafe { bpf_get_netns_cookie(ctx) });
    }
    1
}
abi_name!(owner::PROGRAMS[0], stringify!(xcap_owner_create));

/// bind, connect, sendmsg, recvmsg: the task using the socket owns it now
/// (a socket passed on, or shared after fork, follows its last user).
#[inline(always)]
fn used(ctx: &SockAddrContext) -> i32 {
    let addr: *mut bpf_sock_addr = ctx.sock_addr;
    let sk = unsafe { (*addr).__bindgen_anon_1.sk } as *mut c_void;
    let owner =
        unsafe { bpf_sk_storage_get(owners(), sk, core::ptr::null_mut(), SK_STORAGE_GET_F_CREATE) }
            as *mut Owner;
    if !owner.is_null() {
        record_current(owner, unsafe { bpf_get_netns_cookie(addr as *mut c_void) });
    }
    1
}

#[cgroup_sock_addr(bind4)]
pub fn xcap_owner_bind4(ctx: SockAddrContext) -> i32 {
    used(&ctx)
}
abi_name!(owner::PROGRAMS[1], stringify!(xcap_owner_bind4));

#[cgroup_sock_addr(bind6)]
pub fn xcap_owner_bind6(ctx: SockAddrContext) -> i32 {
    used(&ctx)
}
abi_name!(owner::PROGRAMS[2], stringify!(xcap_owner_bind6));

#[cgroup_sock_addr(connect4)]
pub fn xcap_owner_connect4(ctx: SockAddrContext) -> i32 {
    used(&ctx)
}
abi_name!(owner::PROGRAMS[3], stringify!(xcap_owner_connect4));

#[cgroup_sock_addr(connect6)]
pub fn xcap_owner_connect6(ctx: SockAddrContext) -> i32 {
    used(&ctx)
}
abi_name!(owner::PROGRAMS[4], stringify!(xcap_owner_connect6));

#[cgroup_sock_addr(sendmsg4)]
pub fn xcap_owner_sendmsg4(ctx: SockAddrContext) -> i32 {
    used(&ctx)
}
abi_name!(owner::PROGRAMS[5], stringify!(xcap_owner_sendmsg4));

#[cgroup_sock_addr(sendmsg6)]
pub fn xcap_owner_sendmsg6(ctx: SockAddrContext) -> i32 {
    used(&ctx)
}
abi_name!(owner::PROGRAMS[6], stringify!(xcap_owner_sendmsg6));

#[cgroup_sock_addr(recvmsg4)]
pub fn xcap_owner_recvmsg4(ctx: SockAddrContext) -> i32 {
    used(&ctx)
}
abi_name!(owner::PROGRAMS[7], stringify!(xcap_owner_recvmsg4));

#[cgroup_sock_addr(recvmsg6)]
pub fn xcap_owner_recvmsg6(ctx: SockAddrContext) -> i32 {
    used(&ctx)
}
abi_name!(owner::PROGRAMS[8], stringify!(xcap_owner_recvmsg6));

/// The owner of a packet at TC (`ingress`: by socket lookup; egress: its
/// socket) into `out`, and what was found (`OWNER_*`); `OWNER_OFF` when
/// attribution is off.
#[inline(always)]
pub fn attribute(skb: *mut __sk_buff, ingress: bool, out: &mut Owner) -> u8 {
    if !enabled() {
        return OWNER_OFF;
    }
    if ingress {
        lookup_ingress(skb, out)
    } else {
        lookup_egress(skb, out)
    }
}

/// Egress: the socket the packet was sent on, or for a request socket
/// (SYN-ACK) its listener.
#[inline(never)]
fn lookup_egress(skb: *mut __sk_buff, out: &mut Owner) -> u8 {
    let sk: *mut bpf_sock = unsafe { (*skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return OWNER_NO_SOCKET;
    }
    let mut full = unsafe { bpf_sk_fullsock(sk) };
    if full.is_null() {
        full = unsafe { bpf_get_listener_sock(sk) };
    }
    if full.is_null() {
        return OWNER_UNKNOWN;
    }
    read_owner(full as *mut c_void, out)
}

#[inline(always)]
fn read_owner(sk: *mut c_void, out: &mut Owner) -> u8 {
    let owner =
        unsafe { bpf_sk_storage_get(owners(), sk, core::ptr::null_mut(), 0) } as *const Owner;
    if owner.is_null() {
        return OWNER_UNKNOWN;
    }
    *out = unsafe { core::ptr::read(owner) };
    OWNER_FOUND
}

/// Ingress: the socket the stack would deliver the packet to (a request's
/// listener), found by its protocol, addresses and ports.
#[inline(never)]
fn lookup_ingress(skb: *mut __sk_buff, out: &mut Owner) -> u8 {
    // Filled by loads below; the verifier wants it initialised.
    let mut tuple: bpf_sock_tuple = unsafe { core::mem::zeroed() };
    let proto = unsafe { (*skb).protocol }.swap_bytes() >> 16;
    let ctx = skb as *mut c_void;
    // Addresses load straight into the tuple (small frame: this runs
    // below the program's, whose inlined filter may take 240 bytes).
    let (ip_proto, size, ports_at) = if proto == ETH_P_IP {
        // Version and IHL, ..., fragment offset, TTL, protocol.
        let mut head = [0u8; 10];
        let v4 = unsafe { &mut tuple.__bindgen_anon_1.ipv4 };
        let loaded = unsafe {
            bpf_skb_load_bytes(ctx, ETH_HLEN, head.as_mut_ptr().cast(), 10) == 0
                && bpf_skb_load_bytes(ctx, ETH_HLEN + 12, (&mut v4.saddr as *mut u32).cast(), 8)
                    == 0
        };
        // A fragment after the first has no ports.
        if !loaded || (u16::from_be_bytes([head[6], head[7]]) & 0x1fff) != 0 {
            return OWNER_NO_SOCKET;
        }
        let ihl = u32::from(head[0] & 0x0f) * 4;
        (head[9], 12u32, ETH_HLEN + ihl)
    } else if proto == ETH_P_IPV6 {
        let mut next = [0u8; 1];
        let v6 = unsafe { &mut tuple.__bindgen_anon_1.ipv6 };
        let loaded = unsafe {
            bpf_skb_load_bytes(ctx, ETH_HLEN + 6, next.as_mut_ptr().cast(), 1) == 0
                && bpf_skb_load_bytes(ctx, ETH_HLEN + 8, v6.saddr.as_mut_ptr().cast(), 32) == 0
        };
        if !loaded {
            return OWNER_NO_SOCKET;
        }
        (next[0], 36u32, ETH_HLEN + 40)
    } else {
        return OWNER_NO_SOCKET;
    };
    if ip_proto != IPPROTO_TCP && ip_proto != IPPROTO_UDP {
        return OWNER_NO_SOCKET;
    }
    let mut ports = [0u16; 2];
    if unsafe { bpf_skb_load_bytes(ctx, ports_at, ports.as_mut_ptr().cast(), 4) } != 0 {
        return OWNER_NO_SOCKET;
    }
    // The ports sit at the same offsets in both forms of the tuple.
    let (sport, dport) = if size == 12 {
        let v4 = unsafe { &mut tuple.__bindgen_anon_1.ipv4 };
        (&mut v4.sport, &mut v4.dport)
    } else {
        let v6 = unsafe { &mut tuple.__bindgen_anon_1.ipv6 };
        (&mut v6.sport, &mut v6.dport)
    };
    *sport = ports[0];
    *dport = ports[1];
    let sk = unsafe {
        if ip_proto == IPPROTO_TCP {
            bpf_sk_lookup_tcp(ctx, &mut tuple, size, CURRENT_NETNS, 0)
        } else {
            bpf_sk_lookup_udp(ctx, &mut tuple, size, CURRENT_NETNS, 0)
        }
    };
    if sk.is_null() {
        return OWNER_NO_SOCKET;
    }
    let state = read_owner(sk as *mut c_void, out);
    unsafe { bpf_sk_release(sk as *mut c_void) };
    state
}

/// The owner of a packet at a tracing hook, from its socket: `skb` is the
/// hook's `struct sk_buff *` argument, a pointer the verifier knows the
/// type of, so `skb->sk` read from it directly is a `struct sock *` that
/// `bpf_sk_storage_get` takes (tracing programs, Linux 5.11). A packet
/// with no socket there is [`OWNER_NO_SOCKET`] on the way out (`egress`:
/// the transmit hooks, where a local packet has its socket) and
/// [`OWNER_NO_SOCKET_YET`] elsewhere; a request socket (a SYN-ACK's) or a
/// TIME_WAIT socket has no storage: [`OWNER_UNKNOWN`]. (TC reaches a
/// request socket's listener with `bpf_get_listener_sock`; here the field
/// shares a union with an integer, which the verifier reads as one.)
#[inline(always)]
pub fn attribute_traced(skb: *const c_void, egress: bool, out: &mut Owner) -> u8 {
    if !enabled() {
        return OWNER_OFF;
    }
    let at = unsafe { core::ptr::read_volatile(&XCAP_SKB_SK_OFFSET) } as usize;
    // A plain load (not a probe read): it keeps the pointer's type.
    let sk = unsafe { core::ptr::read_volatile(skb.cast::<u8>().add(at).cast::<*mut c_void>()) };
    if sk.is_null() {
        return if egress {
            OWNER_NO_SOCKET
        } else {
            OWNER_NO_SOCKET_YET
        };
    }
    read_owner(sk, out)
}

/// Whether the owner passes every process filter asked for (`XCAP_SELECT`).
#[inline(always)]
pub fn selected(state: u8, owner: &Owner) -> bool {
    let select = unsafe { core::ptr::read_volatile(&XCAP_SELECT) };
    if select == 0 {
        return true;
    }
    if state != OWNER_FOUND {
        return false;
    }
    if select & SELECT_PID != 0 && SEL_PIDS.get_ptr(owner.pid).is_none() {
        return false;
    }
    if select & SELECT_COMM != 0 && SEL_COMMS.get_ptr(owner.comm).is_none() {
        return false;
    }
    if select & SELECT_CGROUP != 0 && SEL_CGROUPS.get_ptr(owner.cgroup).is_none() {
        return false;
    }
    true
}
