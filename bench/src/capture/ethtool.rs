//! `ethtool -S` drop counters of the receiving veth, read with
//! SIOCETHTOOL (no ethtool binary, nothing spawned).

use std::os::fd::{AsRawFd, OwnedFd};

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETH_SS_STATS: u32 = 1;

#[repr(C)]
struct Ifreq {
    name: [u8; 16],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// `ethtool -S` without the ethtool binary: SIOCETHTOOL on a socket of the
/// interface's namespace.
pub(super) struct Ethtool {
    names: Vec<String>,
}

fn ethtool_ioctl(sock: &OwnedFd, iface: &str, buf: &mut [u64]) -> std::io::Result<()> {
    let mut ifr = Ifreq {
        name: [0; 16],
        data: buf.as_mut_ptr().cast::<libc::c_void>(),
        _pad: [0; 16],
    };
    for (d, s) in ifr.name.iter_mut().zip(iface.bytes().take(15)) {
        *d = s;
    }
    // SAFETY: ifr points at a live buffer big enough for the command in it.
    if unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Ethtool {
    pub(super) fn new(sock: &OwnedFd, iface: &str) -> std::io::Result<Ethtool> {
        // struct ethtool_drvinfo: 196 bytes, n_stats at 180.
        let mut info = vec![0u64; 25];
        info[0] = ETHTOOL_GDRVINFO as u64;
        ethtool_ioctl(sock, iface, &mut info)?;
        let bytes: Vec<u8> = info.iter().flat_map(|w| w.to_le_bytes()).collect();
        let n = u32::from_le_bytes(bytes[180..184].try_into().unwrap()) as usize;
        // struct ethtool_gstrings: cmd, string_set, len, then len * 32 bytes.
        let mut strings = vec![0u64; (12 + n * 32).div_ceil(8)];
        strings[0] = ETHTOOL_GSTRINGS as u64 | ((ETH_SS_STATS as u64) << 32);
        strings[1] = n as u64;
        ethtool_ioctl(sock, iface, &mut strings)?;
        let bytes: Vec<u8> = strings.iter().flat_map(|w| w.to_le_bytes()).collect();
        let names = (0..n)
            .map(|i| {
                let s = &bytes[12 + i * 32..12 + (i + 1) * 32];
                let end = s.iter().position(|&b| b == 0).unwrap_or(32);
                String::from_utf8_lossy(&s[..end]).into_owned()
            })
            .collect();
        Ok(Ethtool { names })
    }

    /// Sum of the counters whose names say drops or errors (veth: the
    /// per-queue `drops` of its NAPI ring, `xdp_drops`, `xdp_tx_errors`,
    /// `xdp_xmit_errors`).
    pub(super) fn drops(&self, sock: &OwnedFd, iface: &str) -> std::io::Result<u64> {
        let n = self.names.len();
        let mut buf = vec![0u64; 1 + n];
        buf[0] = ETHTOOL_GSTATS as u64 | ((n as u64) << 32);
        ethtool_ioctl(sock, iface, &mut buf)?;
        Ok(self
            .names
            .iter()
            .zip(&buf[1..])
            .filter(|(name, _)| name.contains("drops") || name.contains("errors"))
            .map(|(_, v)| v)
            .sum())
    }
}
