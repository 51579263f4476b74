//! A disassembler whose lines read like the kernel verifier's log (and
//! `bpftool prog dump xlated`): `index: (opcode) text`, e.g.
//! `4: (16) if w7 == 0x800 goto pc+3`.
//!
//! It follows the kernel's `print_bpf_insn()` (kernel/bpf/disasm.c): 32-bit
//! operations name their registers `wN`, jump offsets are relative to the
//! next instruction (`pc+3`), conditional-jump immediates print in hex,
//! ALU immediates in signed decimal. Two differences: `ld_imm64` ends in
//! ` ll` (as in llvm-objdump, so the two-slot form is visible), and any
//! encoding the kernel would not accept prints as `(xx) invalid`.

use std::fmt::Write as _;

use super::op::*;
use super::Insn;

/// Disassembles a program, one line per instruction, each ending in `\n`.
/// The second slot of an `ld_imm64` gets no line of its own, but the index
/// of the next line still counts it.
pub fn disassemble(insns: &[Insn]) -> String {
    let mut out = String::new();
    let mut pc = 0;
    while pc < insns.len() {
        let insn = insns[pc];
        let text = if is_ld_imm64(&insn) {
            match insns.get(pc + 1) {
                Some(second) => ld_imm64(&insn, second),
                None => "invalid (ld_imm64 without its second slot)".to_string(),
            }
        } else {
            describe(&insn).unwrap_or_else(|| "invalid".to_string())
        };
        // `let _`: writing to a String cannot fail.
        let _ = writeln!(out, "{pc}: ({:02x}) {text}", insn.code);
        pc += if is_ld_imm64(&insn) { 2 } else { 1 };
    }
    out
}

fn is_ld_imm64(insn: &Insn) -> bool {
    insn.code == LD | DW | IMM
}

/// Register name: `rN` for 64-bit operations, `wN` for 32-bit ones.
fn reg(r: u8, wide: bool) -> String {
    format!("{}{r}", if wide { 'r' } else { 'w' })
}

/// `u8`, `u16`, `u32`, `u64` for a size field.
fn size_name(code: u8) -> &'static str {
    match code & 0x18 {
        W => "u32",
        H => "u16",
        B => "u8",
        _ => "u64",
    }
}

/// `r1 +0`, `r10 -8`: a memory operand's base and offset.
fn address(base: u8, off: i16) -> String {
    format!("r{base} {off:+}")
}

/// The text after `(xx) ` for every instruction but `ld_imm64`, or `None`
/// for an invalid encoding.
fn describe(insn: &Insn) -> Option<String> {
    match insn.class() {
        ALU | ALU64 => alu(insn),
        JMP | JMP32 => jump(insn),
        LDX => load(insn),
        STX => store_reg(insn),
        ST => store_imm(insn),
        LD => legacy_packet_load(insn),
        _ => None,
    }
}

fn alu(insn: &Insn) -> Option<String> {
    let wide = insn.class() == ALU64;
    let operation = insn.code & 0xf0;
    let by_reg = insn.code & X != 0;
    let dst = reg(insn.dst, wide);
    match operation {
        NEG => return Some(format!("{dst} = -{dst}")),
        END => {
            let bits = insn.imm;
            if !matches!(bits, 16 | 32 | 64) {
                return None;
            }
            // ALU64 | END is the unconditional byte swap (cpu v4).
            return Some(match (wide, by_reg) {
                (true, false) => format!("r{} = bswap{bits} r{}", insn.dst, insn.dst),
                (true, true) => return None,
                (false, to_be) => {
                    let order = if to_be { "be" } else { "le" };
                    format!("r{} = {order}{bits} r{}", insn.dst, insn.dst)
                }
            });
        }
        // Sign-extending move (cpu v4): `off` is the source width.
        MOV if insn.off != 0 => {
            if !by_reg || !matches!(insn.off, 8 | 16 | 32) {
                return None;
            }
            let src = reg(insn.src, wide);
            return Some(format!("{dst} = (s{}){src}", insn.off));
        }
        _ => {}
    }
    let symbol = match operation {
        ADD => "+=",
        SUB => "-=",
        MUL => "*=",
        DIV if insn.off == 1 => "s/=",
        DIV => "/=",
        OR => "|=",
        AND => "&=",
        LSH => "<<=",
        RSH => ">>=",
        MOD if insn.off == 1 => "s%=",
        MOD => "%=",
        XOR => "^=",
        MOV => "=",
        ARSH => "s>>=",
        _ => return None,
    };
    Some(if by_reg {
        format!("{dst} {symbol} {}", reg(insn.src, wide))
    } else {
        format!("{dst} {symbol} {}", insn.imm)
    })
}

fn jump(insn: &Insn) -> Option<String> {
    let wide = insn.class() == JMP;
    let operation = insn.code & 0xf0;
    let by_reg = insn.code & X != 0;
    let symbol = match operation {
        JA => {
            // JMP32 | JA is `gotol`, with its 32-bit offset in `imm`.
            return Some(if wide {
                format!("goto pc{:+}", insn.off)
            } else {
                format!("gotol pc{:+}", insn.imm)
            });
        }
        CALL if wide && !by_reg => {
            return Some(match insn.src {
                0 => format!("call {}#{}", helper_name(insn.imm), insn.imm),
                PSEUDO_CALL => format!("call pc{:+}", insn.imm),
                2 => "call kernel-function".to_string(),
                _ => return None,
            })
        }
        EXIT if wide && !by_reg => return Some("exit".to_string()),
        // `may_goto` (BPF_JCOND, src 0): a loop-bound check the kernel fills in.
        0xe0 if wide && !by_reg && insn.src == 0 => {
            return Some(format!("may_goto pc{:+}", insn.off))
        }
        JEQ => "==",
        JGT => ">",
        JGE => ">=",
        JSET => "&",
        JNE => "!=",
        JSGT => "s>",
        JSGE => "s>=",
        JLT => "<",
        JLE => "<=",
        JSLT => "s<",
        JSLE => "s<=",
        _ => return None,
    };
    let dst = reg(insn.dst, wide);
    let rhs = if by_reg {
        reg(insn.src, wide)
    } else {
        format!("0x{:x}", insn.imm as u32)
    };
    Some(format!("if {dst} {symbol} {rhs} goto pc{:+}", insn.off))
}

/// `LDX | MEM` and the sign-extending `LDX | MEMSX`.
fn load(insn: &Insn) -> Option<String> {
    const MEMSX: u8 = 0x80;
    let from = address(insn.src, insn.off);
    match insn.code & 0xe0 {
        MEM => Some(format!(
            "r{} = *({} *)({from})",
            insn.dst,
            size_name(insn.code)
        )),
        MEMSX if insn.code & 0x18 != DW => {
            let signed = size_name(insn.code).replace('u', "s");
            Some(format!("r{} = *({signed} *)({from})", insn.dst))
        }
        _ => None,
    }
}

/// `STX | MEM` and the atomic operations (`STX | ATOMIC`).
fn store_reg(insn: &Insn) -> Option<String> {
    const ATOMIC: u8 = 0xc0;
    const FETCH: i32 = 0x01;
    const XCHG: i32 = 0xe0 | FETCH;
    const CMPXCHG: i32 = 0xf0 | FETCH;
    let size = size_name(insn.code);
    let to = address(insn.dst, insn.off);
    match insn.code & 0xe0 {
        MEM => Some(format!("*({size} *)({to}) = r{}", insn.src)),
        ATOMIC if matches!(insn.code & 0x18, W | DW) => {
            // `atomic64_...` for 64-bit operands, `atomic_...` for 32-bit.
            let width = if insn.code & 0x18 == DW { "64" } else { "" };
            let operation = |imm: i32| match imm & !FETCH {
                x if x == ADD as i32 => Some(("+=", "add")),
                x if x == AND as i32 => Some(("&=", "and")),
                x if x == OR as i32 => Some(("|=", "or")),
                x if x == XOR as i32 => Some(("^=", "xor")),
                _ => None,
            };
            match insn.imm {
                XCHG => Some(format!(
                    "r{} = atomic{width}_xchg(({size} *)({to}), r{})",
                    insn.src, insn.src
                )),
                CMPXCHG => Some(format!(
                    "r0 = atomic{width}_cmpxchg(({size} *)({to}), r0, r{})",
                    insn.src
                )),
                imm if imm & FETCH != 0 => {
                    let (_, name) = operation(imm)?;
                    Some(format!(
                        "r{} = atomic{width}_fetch_{name}(({size} *)({to}), r{})",
                        insn.src, insn.src
                    ))
                }
                imm => {
                    let (symbol, _) = operation(imm)?;
                    Some(format!("lock *({size} *)({to}) {symbol} r{}", insn.src))
                }
            }
        }
        _ => None,
    }
}

fn store_imm(insn: &Insn) -> Option<String> {
    if insn.code & 0xe0 != MEM {
        return None;
    }
    let to = address(insn.dst, insn.off);
    Some(format!(
        "*({} *)({to}) = {}",
        size_name(insn.code),
        insn.imm
    ))
}

/// The legacy `LD | ABS` and `LD | IND` packet loads (into r0, from the skb
/// in r6).
fn legacy_packet_load(insn: &Insn) -> Option<String> {
    const ABS: u8 = 0x20;
    const IND: u8 = 0x40;
    if insn.code & 0x18 == DW {
        return None;
    }
    let size = size_name(insn.code);
    match insn.code & 0xe0 {
        ABS => Some(format!("r0 = *({size} *)skb[{}]", insn.imm)),
        IND => Some(format!("r0 = *({size} *)skb[r{} + {}]", insn.src, insn.imm)),
        _ => None,
    }
}

/// `r1 = 0x1234 ll`, or a map reference for the pseudo sources.
fn ld_imm64(first: &Insn, second: &Insn) -> String {
    const PSEUDO_MAP_FD: u8 = 1;
    const PSEUDO_MAP_VALUE: u8 = 2;
    let value = ((second.imm as u32 as u64) << 32) | first.imm as u32 as u64;
    match first.src {
        0 => format!("r{} = 0x{value:x} ll", first.dst),
        PSEUDO_MAP_FD => format!("r{} = map[fd:{}] ll", first.dst, first.imm),
        PSEUDO_MAP_VALUE => {
            format!("r{} = map[fd:{}]+{} ll", first.dst, first.imm, second.imm)
        }
        crate::ebpf::op::PSEUDO_FUNC => format!("r{} = func pc{:+} ll", first.dst, first.imm),
        src => format!("r{} = 0x{value:x} ll (src {src})", first.dst),
    }
}

/// The kernel's name for a helper, `bpf_` prefixed, or `unknown`.
fn helper_name(id: i32) -> String {
    usize::try_from(id)
        .ok()
        .and_then(|i| HELPER_NAMES.get(i))
        .map_or_else(|| "unknown".to_string(), |name| format!("bpf_{name}"))
}

/// Helper names by id, from `__BPF_FUNC_MAPPER` in `<linux/bpf.h>` (6.x).
const HELPER_NAMES: &[&str] = &[
    "unspec",
    "map_lookup_elem",
    "map_update_elem",
    "map_delete_elem",
    "probe_read",
    "ktime_get_ns",
    "trace_printk",
    "get_prandom_u32",
    "get_smp_processor_id",
    "skb_store_bytes",
    "l3_csum_replace",
    "l4_csum_replace",
    "tail_call",
    "clone_redirect",
    "get_current_pid_tgid",
    "get_current_uid_gid",
    "get_current_comm",
    "get_cgroup_classid",
    "skb_vlan_push",
    "skb_vlan_pop",
    "skb_get_tunnel_key",
    "skb_set_tunnel_key",
    "perf_event_read",
    "redirect",
    "get_route_realm",
    "perf_event_output",
    "skb_load_bytes",
    "get_stackid",
    "csum_diff",
    "skb_get_tunnel_opt",
    "skb_set_tunnel_opt",
    "skb_change_proto",
    "skb_change_type",
    "skb_under_cgroup",
    "get_hash_recalc",
    "get_current_task",
    "probe_write_user",
    "current_task_under_cgroup",
    "skb_change_tail",
    "skb_pull_data",
    "csum_update",
    "set_hash_invalid",
    "get_numa_node_id",
    "skb_change_head",
    "xdp_adjust_head",
    "probe_read_str",
    "get_socket_cookie",
    "get_socket_uid",
    "set_hash",
    "setsockopt",
    "skb_adjust_room",
    "redirect_map",
    "sk_redirect_map",
    "sock_map_update",
    "xdp_adjust_meta",
    "perf_event_read_value",
    "perf_prog_read_value",
    "getsockopt",
    "override_return",
    "sock_ops_cb_flags_set",
    "msg_redirect_map",
    "msg_apply_bytes",
    "msg_cork_bytes",
    "msg_pull_data",
    "bind",
    "xdp_adjust_tail",
    "skb_get_xfrm_state",
    "get_stack",
    "skb_load_bytes_relative",
    "fib_lookup",
    "sock_hash_update",
    "msg_redirect_hash",
    "sk_redirect_hash",
    "lwt_push_encap",
    "lwt_seg6_store_bytes",
    "lwt_seg6_adjust_srh",
    "lwt_seg6_action",
    "rc_repeat",
    "rc_keydown",
    "skb_cgroup_id",
    "get_current_cgroup_id",
    "get_local_storage",
    "sk_select_reuseport",
    "skb_ancestor_cgroup_id",
    "sk_lookup_tcp",
    "sk_lookup_udp",
    "sk_release",
    "map_push_elem",
    "map_pop_elem",
    "map_peek_elem",
    "msg_push_data",
    "msg_pop_data",
    "rc_pointer_rel",
    "spin_lock",
    "spin_unlock",
    "sk_fullsock",
    "tcp_sock",
    "skb_ecn_set_ce",
    "get_listener_sock",
    "skc_lookup_tcp",
    "tcp_check_syncookie",
    "sysctl_get_name",
    "sysctl_get_current_value",
    "sysctl_get_new_value",
    "sysctl_set_new_value",
    "strtol",
    "strtoul",
    "sk_storage_get",
    "sk_storage_delete",
    "send_signal",
    "tcp_gen_syncookie",
    "skb_output",
    "probe_read_user",
    "probe_read_kernel",
    "probe_read_user_str",
    "probe_read_kernel_str",
    "tcp_send_ack",
    "send_signal_thread",
    "jiffies64",
    "read_branch_records",
    "get_ns_current_pid_tgid",
    "xdp_output",
    "get_netns_cookie",
    "get_current_ancestor_cgroup_id",
    "sk_assign",
    "ktime_get_boot_ns",
    "seq_printf",
    "seq_write",
    "sk_cgroup_id",
    "sk_ancestor_cgroup_id",
    "ringbuf_output",
    "ringbuf_reserve",
    "ringbuf_submit",
    "ringbuf_discard",
    "ringbuf_query",
    "csum_level",
    "skc_to_tcp6_sock",
    "skc_to_tcp_sock",
    "skc_to_tcp_timewait_sock",
    "skc_to_tcp_request_sock",
    "skc_to_udp6_sock",
    "get_task_stack",
    "load_hdr_opt",
    "store_hdr_opt",
    "reserve_hdr_opt",
    "inode_storage_get",
    "inode_storage_delete",
    "d_path",
    "copy_from_user",
    "snprintf_btf",
    "seq_printf_btf",
    "skb_cgroup_classid",
    "redirect_neigh",
    "per_cpu_ptr",
    "this_cpu_ptr",
    "redirect_peer",
    "task_storage_get",
    "task_storage_delete",
    "get_current_task_btf",
    "bprm_opts_set",
    "ktime_get_coarse_ns",
    "ima_inode_hash",
    "sock_from_file",
    "check_mtu",
    "for_each_map_elem",
    "snprintf",
    "sys_bpf",
    "btf_find_by_name_kind",
    "sys_close",
    "timer_init",
    "timer_set_callback",
    "timer_start",
    "timer_cancel",
    "get_func_ip",
    "get_attach_cookie",
    "task_pt_regs",
    "get_branch_snapshot",
    "trace_vprintk",
    "skc_to_unix_sock",
    "kallsyms_lookup_name",
    "find_vma",
    "loop",
    "strncmp",
    "get_func_arg",
    "get_func_ret",
    "get_func_arg_cnt",
    "get_retval",
    "set_retval",
    "xdp_get_buff_len",
    "xdp_load_bytes",
    "xdp_store_bytes",
    "copy_from_user_task",
    "skb_set_tstamp",
    "ima_file_hash",
    "kptr_xchg",
    "map_lookup_percpu_elem",
    "skc_to_mptcp_sock",
    "dynptr_from_mem",
    "ringbuf_reserve_dynptr",
    "ringbuf_submit_dynptr",
    "ringbuf_discard_dynptr",
    "dynptr_read",
    "dynptr_write",
    "dynptr_data",
    "tcp_raw_gen_syncookie_ipv4",
    "tcp_raw_gen_syncookie_ipv6",
    "tcp_raw_check_syncookie_ipv4",
    "tcp_raw_check_syncookie_ipv6",
    "ktime_get_tai_ns",
    "user_ringbuf_drain",
];

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::disassemble;

    fn one(insn: Insn) -> String {
        let line = disassemble(&[insn]);
        let (_index, text) = line.trim_end().split_once(' ').unwrap();
        text.to_string()
    }

    #[test]
    fn examples_from_the_verifier_log() {
        let mut prog = vec![
            Insn::mov64_reg(R6, R1),
            Insn::ldx(op::W, R2, R1, 0),
            Insn::mov32_imm(R0, 0),
            Insn::to_be(R0, 16),
            Insn::jmp32_imm(op::JEQ, R7, 0x800, 3),
            Insn::ja(-2),
            Insn::ja32(70000),
            Insn::call_helper(helper::SKB_LOAD_BYTES),
            Insn::new(op::JMP | op::CALL, 0, op::PSEUDO_CALL, 0, 10),
        ];
        prog.extend(Insn::ld_imm64(R1, 0x1234));
        prog.push(Insn::exit());
        assert_eq!(
            disassemble(&prog),
            "0: (bf) r6 = r1\n\
             1: (61) r2 = *(u32 *)(r1 +0)\n\
             2: (b4) w0 = 0\n\
             3: (dc) r0 = be16 r0\n\
             4: (16) if w7 == 0x800 goto pc+3\n\
             5: (05) goto pc-2\n\
             6: (06) gotol pc+70000\n\
             7: (85) call bpf_skb_load_bytes#26\n\
             8: (85) call pc+10\n\
             9: (18) r1 = 0x1234 ll\n\
             11: (95) exit\n"
        );
    }

    #[test]
    fn alu_forms() {
        assert_eq!(one(Insn::alu64_imm(op::ADD, R1, -8)), "(07) r1 += -8");
        assert_eq!(one(Insn::alu32_imm(op::SUB, R1, 1)), "(14) w1 -= 1");
        assert_eq!(one(Insn::alu32_reg(op::MUL, R1, R2)), "(2c) w1 *= w2");
        assert_eq!(one(Insn::alu32_reg(op::DIV, R1, R2)), "(3c) w1 /= w2");
        assert_eq!(one(Insn::alu64_reg(op::OR, R1, R2)), "(4f) r1 |= r2");
        assert_eq!(one(Insn::alu32_imm(op::AND, R1, 0xff)), "(54) w1 &= 255");
        assert_eq!(one(Insn::alu32_reg(op::LSH, R1, R2)), "(6c) w1 <<= w2");
        assert_eq!(one(Insn::alu64_imm(op::RSH, R1, 3)), "(77) r1 >>= 3");
        assert_eq!(one(Insn::neg32(R3)), "(84) w3 = -w3");
        assert_eq!(
            one(Insn::new(op::ALU64 | op::NEG, R3, 0, 0, 0)),
            "(87) r3 = -r3"
        );
        assert_eq!(one(Insn::alu32_reg(op::MOD, R1, R2)), "(9c) w1 %= w2");
        assert_eq!(one(Insn::alu32_imm(op::XOR, R1, -1)), "(a4) w1 ^= -1");
        assert_eq!(one(Insn::mov32_reg(R1, R2)), "(bc) w1 = w2");
        assert_eq!(one(Insn::alu64_imm(op::ARSH, R1, 1)), "(c7) r1 s>>= 1");
        assert_eq!(one(Insn::to_be(R2, 32)), "(dc) r2 = be32 r2");
        assert_eq!(
            one(Insn::new(op::ALU | op::END, R2, 0, 0, 16)),
            "(d4) r2 = le16 r2"
        );
        assert_eq!(
            one(Insn::new(op::ALU64 | op::END, R2, 0, 0, 64)),
            "(d7) r2 = bswap64 r2"
        );
        assert_eq!(
            one(Insn::new(op::ALU64 | op::DIV | op::X, R1, R2, 1, 0)),
            "(3f) r1 s/= r2"
        );
        assert_eq!(
            one(Insn::new(op::ALU64 | op::MOD | op::K, R1, 0, 1, 7)),
            "(97) r1 s%= 7"
        );
        assert_eq!(
            one(Insn::new(op::ALU64 | op::MOV | op::X, R1, R2, 8, 0)),
            "(bf) r1 = (s8)r2"
        );
        assert_eq!(
            one(Insn::new(op::ALU | op::MOV | op::X, R1, R2, 16, 0)),
            "(bc) w1 = (s16)w2"
        );
    }

    #[test]
    fn jump_forms() {
        assert_eq!(
            one(Insn::jmp_imm(op::JGT, R1, -1, 5)),
            "(25) if r1 > 0xffffffff goto pc+5"
        );
        assert_eq!(
            one(Insn::jmp_reg(op::JGE, R1, R2, -1)),
            "(3d) if r1 >= r2 goto pc-1"
        );
        assert_eq!(
            one(Insn::jmp32_reg(op::JSET, R1, R2, 0)),
            "(4e) if w1 & w2 goto pc+0"
        );
        assert_eq!(
            one(Insn::jmp_imm(op::JNE, R1, 0, 1)),
            "(55) if r1 != 0x0 goto pc+1"
        );
        assert_eq!(
            one(Insn::jmp_imm(op::JSGT, R1, 2, 1)),
            "(65) if r1 s> 0x2 goto pc+1"
        );
        assert_eq!(
            one(Insn::jmp32_imm(op::JSGE, R1, 2, 1)),
            "(76) if w1 s>= 0x2 goto pc+1"
        );
        assert_eq!(
            one(Insn::jmp_reg(op::JLT, R3, R2, 1)),
            "(ad) if r3 < r2 goto pc+1"
        );
        assert_eq!(
            one(Insn::jmp_imm(op::JLE, R3, 9, 1)),
            "(b5) if r3 <= 0x9 goto pc+1"
        );
        assert_eq!(
            one(Insn::jmp_reg(op::JSLT, R3, R2, 1)),
            "(cd) if r3 s< r2 goto pc+1"
        );
        assert_eq!(
            one(Insn::jmp32_imm(op::JSLE, R3, 9, 1)),
            "(d6) if w3 s<= 0x9 goto pc+1"
        );
        assert_eq!(
            one(Insn::call_helper(helper::PROBE_READ_KERNEL)),
            "(85) call bpf_probe_read_kernel#113"
        );
        assert_eq!(one(Insn::call_helper(100_000)), "(85) call unknown#100000");
        assert_eq!(
            one(Insn::new(op::JMP | op::CALL, 0, op::PSEUDO_CALL, 0, -7)),
            "(85) call pc-7"
        );
    }

    #[test]
    fn memory_forms() {
        assert_eq!(
            one(Insn::ldx(op::B, R0, R2, 14)),
            "(71) r0 = *(u8 *)(r2 +14)"
        );
        assert_eq!(
            one(Insn::ldx(op::H, R0, R2, 12)),
            "(69) r0 = *(u16 *)(r2 +12)"
        );
        assert_eq!(
            one(Insn::ldx(op::DW, R0, R10, -8)),
            "(79) r0 = *(u64 *)(r10 -8)"
        );
        assert_eq!(
            one(Insn::new(0x91, R0, R2, 1, 0)),
            "(91) r0 = *(s8 *)(r2 +1)"
        );
        assert_eq!(
            one(Insn::stx(op::DW, R10, R1, -16)),
            "(7b) *(u64 *)(r10 -16) = r1"
        );
        assert_eq!(
            one(Insn::stx(op::W, R10, R1, -4)),
            "(63) *(u32 *)(r10 -4) = r1"
        );
        assert_eq!(
            one(Insn::st_imm(op::W, R10, -4, -1)),
            "(62) *(u32 *)(r10 -4) = -1"
        );
        assert_eq!(
            one(Insn::st_imm(op::B, R10, -1, 7)),
            "(72) *(u8 *)(r10 -1) = 7"
        );
        assert_eq!(
            one(Insn::new(0xdb, R1, R2, 0, 0)),
            "(db) lock *(u64 *)(r1 +0) += r2"
        );
        assert_eq!(
            one(Insn::new(0xc3, R1, R2, 4, 0x51)),
            "(c3) r2 = atomic_fetch_and((u32 *)(r1 +4), r2)"
        );
        assert_eq!(
            one(Insn::new(0xdb, R1, R2, 0, 0xe1)),
            "(db) r2 = atomic64_xchg((u64 *)(r1 +0), r2)"
        );
        assert_eq!(
            one(Insn::new(0xdb, R1, R2, 0, 0xf1)),
            "(db) r0 = atomic64_cmpxchg((u64 *)(r1 +0), r0, r2)"
        );
        assert_eq!(
            one(Insn::new(0x30, 0, 0, 0, 23)),
            "(30) r0 = *(u8 *)skb[23]"
        );
        assert_eq!(
            one(Insn::new(0x48, 0, 7, 0, 14)),
            "(48) r0 = *(u16 *)skb[r7 + 14]"
        );
    }

    #[test]
    fn ld_imm64_and_invalid() {
        let [a, b] = Insn::ld_imm64(R3, 0xdead_beef_0000_0001);
        assert_eq!(
            disassemble(&[a, b, Insn::exit()]),
            "0: (18) r3 = 0xdeadbeef00000001 ll\n2: (95) exit\n"
        );
        assert_eq!(
            disassemble(&[a]),
            "0: (18) invalid (ld_imm64 without its second slot)\n"
        );
        assert_eq!(one(Insn::new(0xff, 0, 0, 0, 0)), "(ff) invalid");
        assert_eq!(one(Insn::new(0x00, 0, 0, 0, 0)), "(00) invalid");
        assert_eq!(one(Insn::new(0x9e, 0, 0, 0, 0)), "(9e) invalid"); // JMP32 | EXIT | X
        assert_eq!(one(Insn::new(0x96, 0, 0, 0, 0)), "(96) invalid"); // JMP32 | EXIT
        assert_eq!(one(Insn::new(0xd4, 1, 0, 0, 8)), "(d4) invalid"); // le8
        assert_eq!(one(Insn::new(0xe4, 1, 0, 0, 0)), "(e4) invalid");
        // Every opcode byte disassembles without panicking.
        for code in 0..=255u8 {
            let line = disassemble(&[Insn::new(code, 1, 2, 3, 4), Insn::exit()]);
            assert!(line.starts_with("0: ("), "{line}");
        }
    }
}
