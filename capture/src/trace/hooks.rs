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

pub(super) fn plan(btf: &Btf, hooks: &[TraceHook]) -> Result<Vec<Planned>, Error> {
    let mut out = Vec::new();
    let mut fentries = 0;
    let mut fexits = 0;
    for h in hooks {
        match h {
            TraceHook::Tracepoint(name) => {
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
                if out
                    .iter()
                    .any(|p| matches!(p, Planned::Tp { name, .. } if *name == n))
                {
                    continue;
                }
                out.push(Planned::Tp {
                    name: n,
                    prog,
                    id,
                    desc: format!("tp_btf {cat}:{n}"),
                });
            }
            // Loaded apart: see `start_xdp_hooks`.
            TraceHook::XdpProgram { .. } => {}
            TraceHook::Fentry { function, arg } | TraceHook::Fexit { function, arg } => {
                let exit = matches!(h, TraceHook::Fexit { .. });
                let (kind, count) = match exit {
                    false => ("fentry", &mut fentries),
                    true => ("fexit", &mut fexits),
                };
                *count += 1;
                if *count > 1 {
                    return Err(Error::Config(format!(
                        "only one --{kind} function per capture (for now)"
                    )));
                }
                let Some(params) = btf.function_params(function) else {
                    return Err(Error::Config(format!(
                        "no kernel function '{function}' in the kernel BTF"
                    )));
                };
                let skb_args: Vec<usize> = params
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| btf.is_ptr_to_struct(p.type_id, "sk_buff"))
                    .map(|(i, _)| i)
                    .collect();
                let n = match arg {
                    Some(n) => {
                        if *n >= params.len() {
                            return Err(Error::Config(format!(
                                "{function} has {} argument{}, no argument {n}",
                                params.len(),
                                if params.len() == 1 { "" } else { "s" }
                            )));
                        }
                        if !skb_args.contains(n) {
                            return Err(Error::Config(format!(
                                "argument {n} of {function} ({} {}) is not a struct sk_buff *",
                                btf.type_name(params[*n].type_id),
                                params[*n].name
                            )));
                        }
                        *n
                    }
                    None => match skb_args.first() {
                        Some(n) => *n,
                        None => {
                            return Err(Error::Config(format!(
                                "{function} has no struct sk_buff * argument"
                            )))
                        }
                    },
                };
                if n > MAX_FENTRY_ARG {
                    return Err(Error::Config(format!(
                        "{function}: the sk_buff is argument {n}; xcap reads arguments 0 to {MAX_FENTRY_ARG}"
                    )));
                }
                let prefix = match exit {
                    false => FENTRY_PROGRAM_PREFIX,
                    true => FEXIT_PROGRAM_PREFIX,
                };
                out.push(Planned::Fentry {
                    function: function.clone(),
                    prog: format!("{prefix}{n}"),
                    desc: format!("{kind} {function} (argument {n}, {})", params[n].name),
                    exit,
                });
            }
        }
    }
    if out.is_empty() {
        return Err(Error::Config("no tracing hook given".into()));
    }
    Ok(out)
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
