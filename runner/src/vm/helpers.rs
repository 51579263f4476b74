//! The helpers a filter may call: `bpf_loop`, `bpf_get_prandom_u32`,
//! `bpf_get_smp_processor_id`, `bpf_skb_load_bytes`,
//! `bpf_probe_read_kernel`; destinations in the stack only.

use cbpf2ebpf::ebpf::helper;

use super::memory::Machine;
use super::{err, VmError, CODE_BASE, CTX_BASE, E2BIG, EFAULT, EINVAL, FRAME_BYTES, MAX_FRAMES};

impl Machine<'_> {
    /// `depth`: the frames in use, the caller's included.
    pub fn call_helper(
        &mut self,
        pc: usize,
        id: i32,
        depth: usize,
    ) -> std::result::Result<u64, VmError> {
        let [_, r1, r2, r3, r4, ..] = self.reg;
        Ok(match id {
            helper::LOOP => self.bpf_loop(pc, r1 as u32, r2, r3, r4, depth)?,
            helper::GET_PRANDOM_U32 => {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                self.rng as u32 as u64
            }
            helper::GET_SMP_PROCESSOR_ID => 0,
            helper::SKB_LOAD_BYTES => {
                // (ctx, u32 offset, void *to, u32 len)
                if r1 != CTX_BASE {
                    return err(pc, "bpf_skb_load_bytes: r1 is not the context");
                }
                let (off, len) = (r2 as u32 as u64, r4 as u32 as u64);
                if len == 0 {
                    return err(pc, "bpf_skb_load_bytes: length 0");
                }
                let dst = self.helper_dst(pc, r3, len)?;
                let len = len as usize;
                if off <= i32::MAX as u64 && off + len as u64 <= self.packet.len() as u64 {
                    let off = off as usize;
                    self.stack[dst..dst + len].copy_from_slice(&self.packet[off..off + len]);
                    0
                } else {
                    self.stack[dst..dst + len].fill(0);
                    (-EFAULT) as u64
                }
            }
            helper::PROBE_READ_KERNEL => {
                // (void *dst, u32 size, const void *unsafe_ptr)
                let len = r2 as u32 as u64;
                if len == 0 {
                    return Ok(0);
                }
                let dst = self.helper_dst(pc, r1, len)?;
                let len = len as usize;
                match self.locate(r3, len) {
                    Some((r, off)) => {
                        let src = self.bytes(r)[off..off + len].to_vec();
                        self.stack[dst..dst + len].copy_from_slice(&src);
                        0
                    }
                    None => {
                        self.stack[dst..dst + len].fill(0);
                        (-EFAULT) as u64
                    }
                }
            }
            _ => return err(pc, format!("helper {id} is not supported")),
        })
    }

    /// `bpf_loop(nr, callback, ctx, flags)`.
    fn bpf_loop(
        &mut self,
        pc: usize,
        nr: u32,
        callback: u64,
        ctx: u64,
        flags: u64,
        depth: usize,
    ) -> std::result::Result<u64, VmError> {
        let target = callback.wrapping_sub(CODE_BASE);
        if target >= self.insns.len() as u64 {
            return err(pc, "bpf_loop: r2 is not a function's address");
        }
        if flags != 0 {
            return Ok((-EINVAL) as u64);
        }
        if nr > cbpf2ebpf::ebpf::BPF_MAX_LOOPS {
            return Ok((-E2BIG) as u64);
        }
        if depth >= MAX_FRAMES {
            return err(pc, format!("more than {MAX_FRAMES} nested calls"));
        }
        let saved: [u64; 5] = self.reg[6..11].try_into().unwrap();
        let mut calls = 0u64;
        for index in 0..nr as u64 {
            self.reg[1] = index;
            self.reg[2] = ctx;
            self.reg[10] = saved[4] - FRAME_BYTES as u64;
            let r0 = self.exec(target as usize, depth + 1)?;
            calls += 1;
            match r0 {
                0 => {}
                1 => break,
                _ => return err(pc, format!("bpf_loop callback returned {r0}, not 0 or 1")),
            }
        }
        self.reg[6..11].copy_from_slice(&saved);
        Ok(calls)
    }
}
