//! Where the programs find the kernel structures' fields, from its BTF.

use btf::Btf;
use capture_abi::trace::{
    OFF_CONSUME_SKB_ARGS, OFF_DEV_IFINDEX, OFF_DEV_ND_NET, OFF_DEV_TYPE, OFF_KFREE_SKB_ARGS,
    OFF_LEN, OFF_NET_NS_INUM, OFF_RXQ_DEV, OFF_SHINFO_FRAGS_SIZE, OFF_SHINFO_SIZE, OFF_SKB_DATA,
    OFF_SKB_DATA_LEN, OFF_SKB_DEV, OFF_SKB_HEAD, OFF_SKB_LEN, OFF_SKB_MAC_HEADER,
    OFF_SKB_NETWORK_HEADER, OFF_VALID, OFF_XDP_DATA, OFF_XDP_DATA_END, OFF_XDP_FLAGS,
    OFF_XDP_FRAME_SZ, OFF_XDP_HARD_START, OFF_XDP_RXQ,
};

use crate::Error;

/// The `sk_buff`, `net_device` and `net` offsets the programs read.
pub(super) fn offsets(btf: &Btf) -> Result<[u32; OFF_LEN], Error> {
    let need = |s: &str, f: &str| {
        btf.member_offset(s, f)
            .ok_or_else(|| Error::Config(format!("the kernel BTF has no field {f} in struct {s}")))
    };
    let mut o = [0u32; OFF_LEN];
    o[OFF_SKB_HEAD] = need("sk_buff", "head")?;
    o[OFF_SKB_DATA] = need("sk_buff", "data")?;
    o[OFF_SKB_LEN] = need("sk_buff", "len")?;
    o[OFF_SKB_DATA_LEN] = need("sk_buff", "data_len")?;
    o[OFF_SKB_MAC_HEADER] = need("sk_buff", "mac_header")?;
    o[OFF_SKB_NETWORK_HEADER] = need("sk_buff", "network_header")?;
    o[OFF_SKB_DEV] = need("sk_buff", "dev")?;
    o[OFF_DEV_IFINDEX] = need("net_device", "ifindex")?;
    o[OFF_DEV_TYPE] = need("net_device", "type")?;
    o[OFF_DEV_ND_NET] = need("net_device", "nd_net")?;
    o[OFF_NET_NS_INUM] = match (
        btf.member_offset("net", "ns"),
        btf.member_offset("ns_common", "inum"),
    ) {
        (Some(a), Some(b)) => a + b,
        _ => u32::MAX,
    };
    o[OFF_VALID] = 1;
    // Arguments the tracepoints pass on this kernel: kfree_skb's drop
    // reason came in 5.17, consume_skb's caller address in 6.3.
    o[OFF_KFREE_SKB_ARGS] = btf.tracepoint_args("kfree_skb").unwrap_or(0) as u32;
    o[OFF_CONSUME_SKB_ARGS] = btf.tracepoint_args("consume_skb").unwrap_or(0) as u32;
    xdp_buff_offsets(btf, &mut o);
    Ok(o)
}

/// `struct xdp_buff` and what `--xdp-hook` reads through it (the
/// `OFF_XDP_*`, `OFF_RXQ_*` and `OFF_SHINFO_*` slots). `u32::MAX` marks
/// what this kernel lacks: the hook then refuses to start (see
/// [`super::xdp_hook`]), except for multi-buffer fields, without which
/// frames have one buffer.
pub(super) fn xdp_buff_offsets(btf: &Btf, o: &mut [u32; OFF_LEN]) {
    let at = |s: &str, f: &str| btf.member_offset(s, f).unwrap_or(u32::MAX);
    o[OFF_XDP_DATA] = at("xdp_buff", "data");
    o[OFF_XDP_DATA_END] = at("xdp_buff", "data_end");
    o[OFF_XDP_HARD_START] = at("xdp_buff", "data_hard_start");
    o[OFF_XDP_RXQ] = at("xdp_buff", "rxq");
    o[OFF_XDP_FRAME_SZ] = at("xdp_buff", "frame_sz");
    o[OFF_XDP_FLAGS] = at("xdp_buff", "flags");
    o[OFF_RXQ_DEV] = at("xdp_rxq_info", "dev");
    // SKB_DATA_ALIGN: to SMP_CACHE_BYTES, 64 on x86-64.
    o[OFF_SHINFO_SIZE] = btf
        .find("skb_shared_info", btf::Kind::Struct)
        .and_then(|id| btf.get(id))
        .map_or(u32::MAX, |t| t.size_or_type.next_multiple_of(64));
    o[OFF_SHINFO_FRAGS_SIZE] = at("skb_shared_info", "xdp_frags_size");
}
