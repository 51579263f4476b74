//! What to do: the command line read once into a [`Plan`], with every
//! check of one flag against another. Nothing after this looks at the
//! flags, and nothing here touches the kernel or an interface: a plan is
//! made, and tested, without privileges.
//!
//! The filter (`-F FILE`, `--raw-cbpf FILE`) is read first, so that a
//! filter that cannot be read is reported before anything else. Then the
//! job, in this order of precedence: `-D`, `-r`, a listing (`-d`, `--ebpf`),
//! tracing hooks, live capture ([`hooks`]). Flags that do not apply to
//! the job chosen are ignored, as before, unless a check refuses them.

mod extcap;
mod hooks;
mod output;
#[cfg(test)]
mod tests;
mod values;
mod who;

use anyhow::{bail, Result};
use cbpf2ebpf::{libpcap, Hook as FilterHook, Options};
use clap::ValueEnum;
use injector::blob::{BlobOptions, ProgramKind};

use crate::args::{
    Cli, Command, CompileArgs, CompileHookArg, EngineArg, HookArg, ProgramArg, RunArgs,
    FUNCTION_NAME,
};
use crate::filter::Filter;

pub use extcap::{Extcap, INTERFACE_PREFIX};
pub use hooks::{Capture, Hook, RunAs};
pub use output::{Output, Rotation};

#[derive(Debug, PartialEq)]
pub enum Plan {
    /// `-D`: the interfaces libpcap can capture on, as tcpdump lists them.
    ListInterfaces,
    /// `-d`, `-dd`, `-ddd` or `--ebpf`: print the program.
    ShowProgram(ShowProgram),
    /// `-r FILE`: filter a capture file.
    ReadFile(ReadFile),
    /// Capture at hooks in the kernel: XDP or TC on interfaces, or tracing
    /// hooks.
    Capture(Capture),
    /// `xcap compile`: the filter as an ELF object.
    WriteObject(WriteObject),
    /// A Wireshark extcap query, or `--extcap-install`.
    Extcap(Extcap),
}

#[derive(Debug, PartialEq)]
pub struct ShowProgram {
    pub filter: Filter,
    pub compile_for: CompileFor,
    pub listing: Listing,
}

/// What an expression is compiled for when only its program is printed.
#[derive(Debug, PartialEq)]
pub enum CompileFor {
    /// `-r FILE`: the file's own handle (its link type and snap length).
    File(String),
    /// `-y` and `-s`, on a dead handle, as `tcpdump -d` compiles.
    LinkType { linktype: i32, snaplen: u32 },
}

#[derive(Debug, PartialEq)]
pub enum Listing {
    /// `-d` (1), `-dd` (2), `-ddd` (3 or more): cBPF as tcpdump prints it.
    Cbpf(u8),
    /// `--ebpf`: the translation, headed by its mode and hook as their
    /// flags name them.
    Ebpf {
        options: Options,
        mode: String,
        hook: String,
    },
}

#[derive(Debug, PartialEq)]
pub struct ReadFile {
    pub path: String,
    pub filter: Filter,
    pub engine: Engine,
    /// How the filter is translated (offline semantics).
    pub translation: Options,
    /// Without `-w`, a line per match; with it, what `tcpdump -r -w` writes.
    pub output: Output,
    pub count: Option<u64>,
    /// `-l` when printing: each line goes out at once (`-U` does not
    /// apply to `-r`).
    pub flush_each_packet: bool,
}

/// What runs the filter on each packet of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// The kernel when privileged, else the VM (no `--engine`).
    KernelOrVm,
    Kernel,
    Vm,
    /// libpcap's own cBPF interpreter (no translation).
    Libpcap,
}

/// `xcap compile`.
#[derive(Debug, PartialEq)]
pub struct WriteObject {
    pub expression: String,
    pub options: BlobOptions,
    /// A complete program (XDP or TC), or a function to link (`None`).
    pub program: Option<ProgramKind>,
    /// Programs: drop the matching packets, pass the others.
    pub invert: bool,
    /// Function objects: the exported function's name.
    pub function_name: String,
    /// '-' for stdout.
    pub output: String,
}

/// The plan for a parsed command line.
pub fn plan(cli: &Cli) -> Result<Plan> {
    match &cli.command {
        Some(Command::Compile(args)) => write_object(args).map(Plan::WriteObject),
        None => top_level(&cli.run),
    }
}

/// The expression's words. Reading a file or printing a program runs no
/// command, so there `--` keeps tcpdump's meaning: the end of the options,
/// the expression after it (`xcap -d -- 'tcp port 80'`).
fn expression_words(args: &RunArgs) -> Result<&[String]> {
    let runs_nothing = args.read.is_some() || lists(args);
    if !runs_nothing || args.command.is_empty() {
        return Ok(&args.expression);
    }
    if !args.expression.is_empty() {
        bail!("-- CMD runs a command for a live capture; -r and -d/--ebpf run none");
    }
    Ok(&args.command)
}

/// The top-level command: Wireshark's calls, then the filter, then the
/// job.
fn top_level(args: &RunArgs) -> Result<Plan> {
    if extcap::asked(&args.extcap) {
        return extcap::plan(args);
    }
    if args.list_interfaces {
        return Ok(Plan::ListInterfaces);
    }
    let filter = Filter::read(
        args.raw_cbpf.as_deref(),
        args.filter_file.as_deref(),
        expression_words(args)?,
    )?;
    if let Some(path) = &args.read {
        return read_file(args, path, filter);
    }
    if lists(args) {
        return show_program(args, filter);
    }
    if hooks::tracing_asked(&args.trace) {
        return hooks::tracing(args, filter).map(Plan::Capture);
    }
    hooks::live(args, filter).map(Plan::Capture)
}

/// `-r FILE`: its listing, or the file filtered.
fn read_file(args: &RunArgs, path: &str, filter: Filter) -> Result<Plan> {
    if args.hook != HookArg::Offline && !args.ebpf {
        bail!("--hook does not apply to -r: a file is filtered with offline semantics");
    }
    if lists(args) {
        return Ok(Plan::ShowProgram(ShowProgram {
            filter,
            compile_for: CompileFor::File(path.to_owned()),
            listing: listing(args),
        }));
    }
    Ok(Plan::ReadFile(ReadFile {
        path: path.to_owned(),
        filter,
        engine: engine(args.engine),
        translation: Options {
            mode: values::mode(args.mode),
            hook: FilterHook::Offline,
            max_loop_iterations: args.max_loop_iterations,
            ..Options::default()
        },
        output: file_output(args)?,
        count: args.count,
        flush_each_packet: args.print.line_buffered && args.write.is_none(),
    }))
}

/// `-r`'s `-w`: written by libpcap's savefile, as tcpdump's, in one file.
fn file_output(args: &RunArgs) -> Result<Output> {
    let output = output::output(args)?;
    if let Output::File {
        rotation: Some(_), ..
    } = output
    {
        bail!("-C and -G rotate the files of a capture; with -r, xcap writes one file");
    }
    Ok(output)
}

/// `-d`/`--ebpf` without a file: compiled for `-y` and `-s`.
fn show_program(args: &RunArgs, filter: Filter) -> Result<Plan> {
    let linktype = match &args.linktype {
        None => libpcap::DLT_EN10MB,
        Some(name) => values::linktype(name)?,
    };
    let snaplen = values::snaplen(args.snaplen.as_deref())?;
    Ok(Plan::ShowProgram(ShowProgram {
        filter,
        compile_for: CompileFor::LinkType { linktype, snaplen },
        listing: listing(args),
    }))
}

/// `-d` or `--ebpf`: the program is printed, nothing run.
fn lists(args: &RunArgs) -> bool {
    args.dump > 0 || args.ebpf
}

fn listing(args: &RunArgs) -> Listing {
    if args.dump > 0 {
        return Listing::Cbpf(args.dump);
    }
    Listing::Ebpf {
        options: Options {
            mode: values::mode(args.mode),
            hook: filter_hook(args.hook),
            max_loop_iterations: args.max_loop_iterations,
            ..Options::default()
        },
        mode: flag_name(args.mode),
        hook: flag_name(args.hook),
    }
}

/// `xcap compile`'s checks, in this order: `--invert`, `--name`, `-y`,
/// `-s`.
fn write_object(args: &CompileArgs) -> Result<WriteObject> {
    let program = match args.program {
        ProgramArg::None => None,
        ProgramArg::Xdp => Some(ProgramKind::Xdp),
        ProgramArg::Tc => Some(ProgramKind::Tc),
    };
    if program.is_none() && args.invert {
        bail!("--invert needs --program xdp or tc");
    }
    if program.is_some() && args.name != FUNCTION_NAME {
        bail!("--name applies to function objects (--program none)");
    }
    let linktype = values::linktype(&args.linktype)?;
    let snaplen = values::snaplen(args.snaplen.as_deref())?;
    let hook = match (args.hook, program) {
        (Some(h), _) => compile_hook(h),
        (None, Some(k)) => k.default_hook(),
        (None, None) => FilterHook::None,
    };
    Ok(WriteObject {
        expression: args.expression.join(" "),
        options: BlobOptions {
            linktype,
            mode: values::mode(args.mode),
            hook,
            snaplen,
            gotol: args.gotol,
            ..BlobOptions::default()
        },
        program,
        invert: args.invert,
        function_name: args.name.clone(),
        output: args.output.clone(),
    })
}

fn engine(arg: Option<EngineArg>) -> Engine {
    match arg {
        None => Engine::KernelOrVm,
        Some(EngineArg::Kernel) => Engine::Kernel,
        Some(EngineArg::Vm) => Engine::Vm,
        Some(EngineArg::Libpcap) => Engine::Libpcap,
    }
}

fn filter_hook(arg: HookArg) -> FilterHook {
    match arg {
        HookArg::Xdp => FilterHook::Xdp,
        HookArg::TcIngress => FilterHook::TcIngress,
        HookArg::TcEgress => FilterHook::TcEgress,
        HookArg::Socket => FilterHook::Socket,
        HookArg::Offline => FilterHook::Offline,
    }
}

fn compile_hook(arg: CompileHookArg) -> FilterHook {
    match arg {
        CompileHookArg::None => FilterHook::None,
        CompileHookArg::Xdp => FilterHook::Xdp,
        CompileHookArg::TcIngress => FilterHook::TcIngress,
        CompileHookArg::TcEgress => FilterHook::TcEgress,
        CompileHookArg::Socket => FilterHook::Socket,
    }
}

/// A value as its flag spells it (`tc-ingress`).
fn flag_name(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}
