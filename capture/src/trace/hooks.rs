//! Which hooks a tracing capture attaches to: tracepoints, kernel
//! functions with an skb argument (fentry/fexit), XDP programs.

use btf::Btf;
use capture_abi::trace::{
    Tracepoint, FENTRY_PROGRAM_PREFIX, FEXIT_PROGRAM_PREFIX, MAX_FENTRY_ARG, TRACEPOINTS,
};

use super::TraceHook;
use crate::Error;

/// A resolved hook, ready to load.
pub(super) enum Planned {
    Tp {
        name: &'static str,
        prog: &'static str,
        id: u16,
        desc: String,
    },
    /// fentry, or fexit when `exit`.
    Fentry {
        function: String,
        prog: String,
        desc: String,
        exit: bool,
    },
}

/// Resolves a tracepoint name (`kfree_skb` or `skb:kfree_skb`).
pub(super) fn tracepoint(name: &str) -> Option<Tracepoint> {
    let (cat, bare) = match name.split_once(':') {
        Some((c, b)) => (Some(c), b),
        None => (None, name),
    };
    TRACEPOINTS
        .iter()
        .find(|t| t.name == bare && cat.is_none_or(|c| c == t.category))
        .copied()
}

/// The hooks resolved against the kernel's BTF, in order, each
/// tracepoint once; `--xdp-hook`'s programs are loaded apart
/// (`start_xdp_hooks`).
pub(super) fn plan(btf: &Btf, hooks: &[TraceHook]) -> Result<Vec<Planned>, Error> {
    let mut out = Vec::new();
    let (mut fentries, mut fexits) = (0, 0);
    for h in hooks {
        match h {
            TraceHook::Tracepoint(name) => {
                let planned = plan_tracepoint(name)?;
                if !out.iter().any(|p| same_tracepoint(p, &planned)) {
                    out.push(planned);
                }
            }
            TraceHook::XdpProgram { .. } => {}
            TraceHook::Fentry { function, arg } | TraceHook::Fexit { function, arg } => {
                let exit = matches!(h, TraceHook::Fexit { .. });
                let count = match exit {
                    false => &mut fentries,
                    true => &mut fexits,
                };
                *count += 1;
                if *count > 1 {
                    return Err(Error::Config(format!(
                        "only one --{} function per capture (for now)",
                        trampoline_kind(exit)
                    )));
                }
                out.push(plan_trampoline(btf, function, *arg, exit)?);
            }
        }
    }
    if out.is_empty() {
        return Err(Error::Config("no tracing hook given".into()));
    }
    Ok(out)
}

/// A tracepoint xcap knows, by name (`kfree_skb` or `skb:kfree_skb`).
fn plan_tracepoint(name: &str) -> Result<Planned, Error> {
    let Some(Tracepoint {
        name: n,
        category: cat,
        program: prog,
        hook: id,
    }) = tracepoint(name)
    else {
        let known: Vec<String> = TRACEPOINTS
            .iter()
            .map(|t| format!("{}:{}", t.category, t.name))
            .collect();
        return Err(Error::Config(format!(
            "unknown tracepoint '{name}' (known: {})",
            known.join(", ")
        )));
    };
    Ok(Planned::Tp {
        name: n,
        prog,
        id,
        desc: format!("tp_btf {cat}:{n}"),
    })
}

/// Whether `p` is the tracepoint `q` already.
fn same_tracepoint(p: &Planned, q: &Planned) -> bool {
    matches!((p, q), (Planned::Tp { name: a, .. }, Planned::Tp { name: b, .. }) if a == b)
}

/// fentry (fexit when `exit`) on `function`, on its skb argument: number
/// `arg`, or the first `struct sk_buff *`.
fn plan_trampoline(
    btf: &Btf,
    function: &str,
    arg: Option<usize>,
    exit: bool,
) -> Result<Planned, Error> {
    let Some(params) = btf.function_params(function) else {
        return Err(Error::Config(format!(
            "no kernel function '{function}' in the kernel BTF"
        )));
    };
    let n = skb_argument(btf, function, &params, arg)?;
    if n > MAX_FENTRY_ARG {
        return Err(Error::Config(format!(
            "{function}: the sk_buff is argument {n}; xcap reads arguments 0 to {MAX_FENTRY_ARG}"
        )));
    }
    let prefix = match exit {
        false => FENTRY_PROGRAM_PREFIX,
        true => FEXIT_PROGRAM_PREFIX,
    };
    Ok(Planned::Fentry {
        function: function.to_owned(),
        prog: format!("{prefix}{n}"),
        desc: format!(
            "{} {function} (argument {n}, {})",
            trampoline_kind(exit),
            params[n].name
        ),
        exit,
    })
}

/// The position of `function`'s skb argument: `arg` when it is a
/// `struct sk_buff *`, else the first that is.
fn skb_argument(
    btf: &Btf,
    function: &str,
    params: &[btf::Param],
    arg: Option<usize>,
) -> Result<usize, Error> {
    let skb_args: Vec<usize> = params
        .iter()
        .enumerate()
        .filter(|(_, p)| btf.is_ptr_to_struct(p.type_id, "sk_buff"))
        .map(|(i, _)| i)
        .collect();
    match arg {
        Some(n) if n >= params.len() => Err(Error::Config(format!(
            "{function} has {} argument{}, no argument {n}",
            params.len(),
            if params.len() == 1 { "" } else { "s" }
        ))),
        Some(n) if !skb_args.contains(&n) => Err(Error::Config(format!(
            "argument {n} of {function} ({} {}) is not a struct sk_buff *",
            btf.type_name(params[n].type_id),
            params[n].name
        ))),
        Some(n) => Ok(n),
        None => skb_args
            .first()
            .copied()
            .ok_or_else(|| Error::Config(format!("{function} has no struct sk_buff * argument"))),
    }
}

/// What a trampoline program on a kernel function is called.
pub(super) fn trampoline_kind(exit: bool) -> &'static str {
    if exit {
        "fexit"
    } else {
        "fentry"
    }
}

impl Planned {
    /// How errors name the hook (`tp_btf skb:kfree_skb`).
    pub(super) fn desc(&self) -> &str {
        match self {
            Planned::Tp { desc, .. } | Planned::Fentry { desc, .. } => desc,
        }
    }
}
/// `--xdp-hook`'s hook, if it is asked for: (program, entry, exit). It
/// is not mixed with other tracing hooks.
pub(super) fn xdp_programs(hooks: &[TraceHook]) -> Result<Option<(&str, bool, bool)>, Error> {
    let xdp: Vec<(&str, bool, bool)> = hooks
        .iter()
        .filter_map(|h| match h {
            TraceHook::XdpProgram {
                program,
                entry,
                exit,
            } => Some((program.as_str(), *entry, *exit)),
            _ => None,
        })
        .collect();
    match xdp[..] {
        [] => Ok(None),
        [one] if hooks.len() == 1 => Ok(Some(one)),
        [_] => Err(Error::Config(
            "--xdp-hook does not combine with --trace or --fentry in one capture".into(),
        )),
        _ => Err(Error::Config("one --xdp-hook per capture".into())),
    }
}
