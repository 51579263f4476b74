//! What runs the filter on each packet of a file (`-r`, `--engine`): the
//! translated program in the kernel (`BPF_PROG_TEST_RUN`) or in our VM,
//! or the cBPF program in libpcap's own interpreter.

use anyhow::{anyhow, Context, Result};
use cbpf2ebpf::cbpf::Insn;
use cbpf2ebpf::{libpcap, translate, Options};
use xcap_runner::{Filter, RunFilter, VmFilter};

use crate::plan::Engine;

pub enum Runner {
    Ebpf {
        filter: Filter,
        insns: Vec<cbpf2ebpf::ebpf::Insn>,
        mode: cbpf2ebpf::Mode,
        /// The VM for packets over the kernel engine's size limit, made on
        /// first use.
        fallback: Option<VmFilter>,
        fallback_count: u64,
    },
    Libpcap(Vec<Insn>),
}

impl Runner {
    /// `prog` ready to run: translated with `translation` and loaded, or
    /// checked for libpcap's interpreter.
    pub fn new(engine: Engine, translation: &Options, prog: &[Insn]) -> Result<Self> {
        let engine = match engine {
            Engine::Libpcap => return libpcap_runner(prog),
            Engine::Kernel => Some(xcap_runner::Engine::Kernel),
            Engine::Vm => Some(xcap_runner::Engine::Vm),
            Engine::KernelOrVm => None,
        };
        let mode = translation.mode;
        // The kernel engine loads it here (the VM runs either layout).
        let translation = Options {
            gotol: xcap_runner::kernel_has_gotol(),
            ..translation.clone()
        };
        let insns = translate(prog, &translation)
            .context("can't translate the filter")?
            .insns;
        Ok(Runner::Ebpf {
            filter: load(engine, &insns, mode)?,
            insns,
            mode,
            fallback: None,
            fallback_count: 0,
        })
    }

    /// The filter's return value for the packet: 0 rejects it.
    pub fn run(&mut self, data: &[u8], wirelen: u32) -> Result<u32> {
        match self {
            Runner::Libpcap(prog) => Ok(libpcap::try_filter(prog, data, wirelen)?),
            Runner::Ebpf {
                filter,
                insns,
                mode,
                fallback,
                fallback_count,
            } => {
                if data.len() <= filter.max_packet_len() {
                    return Ok(filter.run(data, wirelen)?);
                }
                let vm = match fallback {
                    Some(vm) => vm,
                    None => fallback.insert(VmFilter::new(insns, *mode).context("vm engine")?),
                };
                *fallback_count += 1;
                Ok(vm.run(data, wirelen)?)
            }
        }
    }

    /// Says once, on stderr, how many packets the VM ran instead of the
    /// kernel.
    pub fn report(&self) {
        if let Runner::Ebpf {
            filter,
            fallback_count,
            ..
        } = self
        {
            if *fallback_count > 0 {
                eprintln!(
                    "xcap: {fallback_count} packet(s) larger than {} bytes were filtered by the vm \
                     engine (the kernel engine's limit)",
                    filter.max_packet_len()
                );
            }
        }
    }
}

/// libpcap's interpreter trusts its input: refuse what would crash it
/// (only possible with --raw-cbpf).
fn libpcap_runner(prog: &[Insn]) -> Result<Runner> {
    libpcap::try_filter(prog, &[], 0)
        .map_err(|e| anyhow!("libpcap's interpreter can't run this program: {e}"))?;
    Ok(Runner::Libpcap(prog.to_vec()))
}

/// The translated program in `engine`; with none asked for, the kernel,
/// or the VM without the privileges for it.
fn load(
    engine: Option<xcap_runner::Engine>,
    insns: &[cbpf2ebpf::ebpf::Insn],
    mode: cbpf2ebpf::Mode,
) -> Result<Filter> {
    use xcap_runner::Engine::{Kernel, Vm};
    Ok(match engine {
        Some(engine) => {
            let name = if engine == Vm {
                "vm engine"
            } else {
                "kernel engine"
            };
            Filter::load(engine, insns, mode).context(name)?
        }
        None => match Filter::load(Kernel, insns, mode) {
            Ok(f) => f,
            Err(xcap_runner::Error::PermissionDenied) => {
                eprintln!(
                    "xcap: no privileges for the kernel engine (run as root or with CAP_BPF, \
                     CAP_PERFMON and CAP_NET_ADMIN); using the vm engine"
                );
                Filter::load(Vm, insns, mode).context("vm engine")?
            }
            Err(e) => return Err(anyhow!(e).context("kernel engine")),
        },
    })
}
