//! Hand-assembled test programs that call a filter function (cbpf2ebpf's
//! ABI: r1 = ctx, r2 = start, r3 = end, r4 = wire length -> r0) `N` times
//! per `BPF_PROG_TEST_RUN` through `bpf_loop`, accumulating the results with
//! `|=`. Three functions: the main program, the loop callback and the filter
//! (each a subprogram; the filter is reached with a bpf2bpf call from the
//! callback, so each iteration costs one helper-driven callback plus one
//! bpf2bpf call). The same program with an empty filter (`r0 = 0; exit`)
//! gives the cost to subtract.
//!
//! Main program stack: fp-8 = ctx, fp-16 = accumulator (the callback's
//! context pointer points here); SYSCALL only: fp-24 = start, fp-32 = end,
//! fp-40 = wire length (scalars, the filter's `Probe` mode addresses).
//!
//! | env | program type | test input | filter arguments |
//! |---|---|---|---|
//! | Xdp | XDP | the packet | r2/r3 = data/data_end, r4 = data_end - data |
//! | Skb | SCHED_CLS | the packet | r2 = 0, r3 = r4 = skb->len |
//! | Syscall | SYSCALL | ctx: wire length (u32), captured length (u32), 8 zero bytes, packet | kernel addresses |

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use cbpf2ebpf::ebpf::{op, Insn, R0, R1, R10, R2, R3, R4, R6, R7, R8};
use xcap_runner::kernel::{self, ProgType, TestRun};

/// `bpf_loop` helper id.
const BPF_LOOP: i32 = 181;
/// `src_reg` of an `ld_imm64` that loads a subprogram's address.
const PSEUDO_FUNC: u8 = 4;
const W: u8 = op::W;
const DW: u8 = op::DW;

/// The program type a harness runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Env {
    Xdp,
    Skb,
    Syscall,
}

impl Env {
    pub fn prog_type(self) -> ProgType {
        match self {
            Env::Xdp => ProgType::XDP,
            Env::Skb => ProgType::SCHED_CLS,
            Env::Syscall => ProgType::SYSCALL,
        }
    }
}

/// The empty function whose cost is subtracted.
pub fn empty_filter() -> Vec<Insn> {
    vec![Insn::mov64_imm(R0, 0), Insn::exit()]
}

/// An assembled harness.
#[derive(Clone, Debug)]
pub struct Program {
    pub insns: Vec<Insn>,
    /// First instruction of each function: main, callback, filter (and
    /// the filter's loop callback).
    pub funcs: Vec<usize>,
}

fn pseudo_call(from: usize, to: usize) -> Insn {
    Insn::new(
        op::JMP | op::CALL,
        0,
        op::PSEUDO_CALL,
        0,
        to as i32 - from as i32 - 1,
    )
}

/// Builds the harness. `loops: Some(n)` calls the filter `n` times through
/// `bpf_loop`; `None` calls the callback once directly (for verifier and
/// JIT statistics).
pub fn build(env: Env, filter: &[Insn], loops: Option<u32>) -> Program {
    // Placeholders for calls, patched once the layout is known.
    enum Fix {
        CallCb(usize),
        LdFunc(usize),
        CallFilter(usize),
    }
    let mut fixes = Vec::new();
    let mut p: Vec<Insn> = Vec::new();
    // --- main
    p.push(Insn::mov64_reg(R6, R1));
    p.push(Insn::stx(DW, R10, R1, -8));
    p.push(Insn::st_imm(DW, R10, -16, 0));
    if env == Env::Syscall {
        p.push(Insn::ldx(W, R7, R6, 0)); // wire length
        p.push(Insn::ldx(W, R8, R6, 4)); // captured length
                                         // The context address as a scalar (as root): spill the pointer,
                                         // overwrite its low half with a copy, read it back as data.
        p.push(Insn::stx(DW, R10, R6, -24));
        p.push(Insn::mov32_reg(R2, R6));
        p.push(Insn::stx(W, R10, R2, -24));
        p.push(Insn::ldx(DW, R2, R10, -24));
        p.push(Insn::alu64_imm(op::ADD, R2, 16));
        p.push(Insn::stx(DW, R10, R2, -24)); // start
        p.push(Insn::alu64_reg(op::ADD, R2, R8));
        p.push(Insn::stx(DW, R10, R2, -32)); // end
        p.push(Insn::stx(DW, R10, R7, -40)); // wire length
    }
    match loops {
        Some(n) => {
            p.push(Insn::mov64_imm(R1, n as i32));
            fixes.push(Fix::LdFunc(p.len()));
            p.extend_from_slice(&Insn::ld_imm64(R2, 0));
            p.push(Insn::mov64_reg(R3, R10));
            p.push(Insn::alu64_imm(op::ADD, R3, -16));
            p.push(Insn::mov64_imm(R4, 0));
            p.push(Insn::call_helper(BPF_LOOP));
        }
        None => {
            p.push(Insn::mov64_imm(R1, 0));
            p.push(Insn::mov64_reg(R2, R10));
            p.push(Insn::alu64_imm(op::ADD, R2, -16));
            fixes.push(Fix::CallCb(p.len()));
            p.push(Insn::exit()); // placeholder
        }
    }
    match env {
        Env::Xdp => {
            // XDP may only return 0..=4: XDP_PASS (2) if some call
            // matched, XDP_DROP (1) otherwise.
            p.push(Insn::ldx(DW, R1, R10, -16));
            p.push(Insn::mov64_imm(R0, 1));
            p.push(Insn::jmp_imm(op::JEQ, R1, 0, 1));
            p.push(Insn::mov64_imm(R0, 2));
            p.push(Insn::exit());
        }
        Env::Skb | Env::Syscall => {
            p.push(Insn::ldx(W, R0, R10, -16));
            p.push(Insn::exit());
        }
    }
    // --- callback(index, &acc)
    let cb = p.len();
    p.push(Insn::mov64_reg(R6, R2));
    p.push(Insn::ldx(DW, R1, R6, 8)); // ctx
    match env {
        Env::Xdp => {
            p.push(Insn::ldx(W, R2, R1, 0)); // data
            p.push(Insn::ldx(W, R3, R1, 4)); // data_end
            p.push(Insn::mov64_reg(R4, R3));
            p.push(Insn::alu64_reg(op::SUB, R4, R2));
        }
        Env::Skb => {
            p.push(Insn::mov64_imm(R2, 0));
            p.push(Insn::ldx(W, R3, R1, 0)); // skb->len
            p.push(Insn::mov64_reg(R4, R3));
        }
        Env::Syscall => {
            p.push(Insn::ldx(DW, R2, R6, -8));
            p.push(Insn::ldx(DW, R3, R6, -16));
            p.push(Insn::ldx(DW, R4, R6, -24));
        }
    }
    fixes.push(Fix::CallFilter(p.len()));
    p.push(Insn::exit()); // placeholder
    p.push(Insn::ldx(DW, R1, R6, 0));
    p.push(Insn::alu64_reg(op::OR, R1, R0));
    p.push(Insn::stx(DW, R6, R1, 0));
    p.push(Insn::mov64_imm(R0, 0));
    p.push(Insn::exit());
    // --- filter
    let f = p.len();
    p.extend_from_slice(filter);
    for fix in fixes {
        match fix {
            Fix::CallCb(at) => p[at] = pseudo_call(at, cb),
            Fix::CallFilter(at) => p[at] = pseudo_call(at, f),
            Fix::LdFunc(at) => {
                p[at].src = PSEUDO_FUNC;
                p[at].imm = cb as i32 - at as i32 - 1;
            }
        }
    }
    // The filter's loop callback, if it has one, is a function too.
    let mut funcs = vec![0, cb, f];
    funcs.extend(
        cbpf2ebpf::ebpf::function_starts(filter)
            .into_iter()
            .skip(1)
            .map(|s| f + s),
    );
    Program { insns: p, funcs }
}

/// A loaded harness.
pub struct Loaded {
    pub fd: OwnedFd,
    pub env: Env,
}

impl AsFd for Loaded {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Loads a harness. Always with BTF function info: the verifier wants it
/// for the `ld_imm64` of the callback's address ("missing btf func_info")
/// and for LD_ABS/LD_IND in a subprogram. `runner::kernel::load_program`
/// sends no BTF, hence `sys::load_with_btf`.
pub fn load(env: Env, prog: &Program) -> Result<Loaded> {
    let fd = crate::sys::load_with_btf(env.prog_type(), &prog.insns, &prog.funcs, "xcap_bench")?;
    Ok(Loaded { fd, env })
}

/// The test input for `packet` in `env`.
pub fn input(env: Env, packet: &[u8]) -> Vec<u8> {
    match env {
        Env::Xdp | Env::Skb => packet.to_vec(),
        Env::Syscall => {
            let mut v = Vec::with_capacity(16 + packet.len());
            v.extend_from_slice(&(packet.len() as u32).to_le_bytes());
            v.extend_from_slice(&(packet.len() as u32).to_le_bytes());
            v.resize(16, 0);
            v.extend_from_slice(packet);
            v
        }
    }
}

/// Runs once `repeat` times; returns whether any call matched and the
/// mean run time in ns (the kernel's figure for XDP and SCHED_CLS, a
/// user-space clock around the syscall for SYSCALL, which has no repeat).
pub fn run(l: &Loaded, input: &[u8], repeat: u32) -> Result<(bool, f64)> {
    match l.env {
        Env::Xdp | Env::Skb => {
            let out = kernel::test_run(
                &l.fd,
                &TestRun {
                    data_in: input,
                    repeat,
                    ..Default::default()
                },
            )
            .context("BPF_PROG_TEST_RUN")?;
            let matched = match l.env {
                Env::Xdp => match out.retval {
                    2 => true,
                    1 => false,
                    r => bail!("XDP harness returned {r}"),
                },
                _ => out.retval != 0,
            };
            Ok((matched, out.duration_ns as f64))
        }
        Env::Syscall => {
            let mut total = 0.0;
            let mut matched = false;
            let n = repeat.max(1);
            for _ in 0..n {
                let t = Instant::now();
                let out = kernel::test_run(
                    &l.fd,
                    &TestRun {
                        ctx_in: input,
                        ..Default::default()
                    },
                )
                .context("BPF_PROG_TEST_RUN")?;
                total += t.elapsed().as_nanos() as f64;
                matched = out.retval != 0;
            }
            Ok((matched, total / n as f64))
        }
    }
}
