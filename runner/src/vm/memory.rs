//! The machine's state and its memory: three virtual regions (packet,
//! stack, context), loads and stores checked against them.

use cbpf2ebpf::ebpf::Insn;

use super::{err, VmError, CTX_BASE, FRAME_BYTES, PACKET_BASE, SKB_DATA, SKB_DATA_END, STACK_BASE};

pub(super) struct Machine<'a> {
    pub insns: &'a [Insn],
    pub packet: &'a [u8],
    pub ctx: &'a [u8],
    /// The context is a `struct __sk_buff`.
    pub skb: bool,
    pub stack: Vec<u8>,
    pub reg: [u64; 11],
    pub rng: u64,
    /// Instructions executed in this run, callbacks included.
    pub steps: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Region {
    Packet,
    Stack,
    Ctx,
}

impl Machine<'_> {
    /// Finds `len` bytes at `addr`: region and offset.
    pub fn locate(&self, addr: u64, len: usize) -> Option<(Region, usize)> {
        let regions = [
            (Region::Packet, PACKET_BASE, self.packet.len()),
            (Region::Stack, STACK_BASE, self.stack.len()),
            (Region::Ctx, CTX_BASE, self.ctx.len()),
        ];
        for (r, base, size) in regions {
            // `len` is never 0 here (loads, stores and helpers check).
            if addr >= base
                && addr - base < size as u64
                && len as u64 <= size as u64 - (addr - base)
            {
                return Some((r, (addr - base) as usize));
            }
        }
        None
    }

    pub fn bytes(&self, r: Region) -> &[u8] {
        match r {
            Region::Packet => self.packet,
            Region::Stack => &self.stack,
            Region::Ctx => self.ctx,
        }
    }

    pub fn load(&self, pc: usize, addr: u64, len: usize) -> std::result::Result<u64, VmError> {
        // The verifier turns 32-bit loads of `__sk_buff` data/data_end into
        // packet pointers; so does the VM.
        if self.skb && len == 4 && addr == CTX_BASE + SKB_DATA {
            return Ok(PACKET_BASE);
        }
        if self.skb && len == 4 && addr == CTX_BASE + SKB_DATA_END {
            return Ok(PACKET_BASE + self.packet.len() as u64);
        }
        match self.locate(addr, len) {
            Some((r, off)) => {
                let mut b = [0u8; 8];
                b[..len].copy_from_slice(&self.bytes(r)[off..off + len]);
                Ok(u64::from_le_bytes(b))
            }
            None => err(
                pc,
                format!(
                    "out of bounds load of {len} bytes at {}",
                    self.describe(addr)
                ),
            ),
        }
    }

    pub fn store(
        &mut self,
        pc: usize,
        addr: u64,
        len: usize,
        v: u64,
    ) -> std::result::Result<(), VmError> {
        match self.locate(addr, len) {
            Some((Region::Stack, off)) => {
                self.stack[off..off + len].copy_from_slice(&v.to_le_bytes()[..len]);
                Ok(())
            }
            Some(_) => err(
                pc,
                format!("store of {len} bytes to read-only {}", self.describe(addr)),
            ),
            None => err(
                pc,
                format!(
                    "out of bounds store of {len} bytes at {}",
                    self.describe(addr)
                ),
            ),
        }
    }

    /// A helper's destination: `len` bytes of stack.
    pub fn helper_dst(
        &self,
        pc: usize,
        addr: u64,
        len: u64,
    ) -> std::result::Result<usize, VmError> {
        match self.locate(addr, len as usize) {
            Some((Region::Stack, off)) if len <= FRAME_BYTES as u64 => Ok(off),
            _ => err(
                pc,
                format!(
                    "helper destination of {len} bytes at {} is not stack",
                    self.describe(addr)
                ),
            ),
        }
    }

    /// An address, for messages: region and offset when near a region.
    pub fn describe(&self, addr: u64) -> String {
        let regions = [
            ("packet", PACKET_BASE, self.packet.len()),
            ("stack", STACK_BASE, self.stack.len()),
            ("ctx", CTX_BASE, self.ctx.len()),
        ];
        for (name, base, size) in regions {
            let d = addr.wrapping_sub(base) as i64;
            if d.unsigned_abs() < 1 << 32 {
                return format!("{name}{d:+} ({name} is {size} bytes)");
            }
        }
        format!("{addr:#x}")
    }
}
