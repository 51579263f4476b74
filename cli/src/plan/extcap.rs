//! Wireshark's extcap calls as plans: the queries Wireshark makes
//! (interfaces, link types, options, a capture filter's check), the
//! installation, and `--capture`, which becomes a live capture into
//! Wireshark's pipe. What xcap answers is [`crate::extcap`]'s business.

use anyhow::{bail, Result};
use capture::{DirectionFilter, XdpMode};

use crate::args::{ExtcapArgs, RunArgs};
use crate::filter::Filter;
use crate::plan::hooks::{self, Capture, Hook};
use crate::plan::output::Output;
use crate::plan::Plan;

/// The prefix of xcap's interfaces in Wireshark's list (`xcap-eth0`).
pub const INTERFACE_PREFIX: &str = "xcap-";

/// A call Wireshark makes, or `--extcap-install`.
#[derive(Debug, PartialEq, Eq)]
pub enum Extcap {
    /// `--extcap-interfaces`.
    Interfaces,
    /// `--extcap-dlts`: the link types of the interface.
    Dlts,
    /// `--extcap-config`: the options of the interface.
    Config,
    /// `--extcap-capture-filter` alone: is the filter valid?
    CheckFilter(String),
    /// `--extcap-install [DIR]`.
    Install(Option<String>),
}

/// Whether the command line is an extcap call (or the installation).
pub(super) fn asked(args: &ExtcapArgs) -> bool {
    args.extcap_install.is_some()
        || args.extcap_interfaces
        || args.extcap_interface.is_some()
        || args.capture
}

/// The call's plan; `--capture` a live capture.
pub(super) fn plan(args: &RunArgs) -> Result<Plan> {
    let e = &args.extcap;
    if let Some(dir) = &e.extcap_install {
        return Ok(Plan::Extcap(Extcap::Install(
            Some(dir.clone()).filter(|d| !d.is_empty()),
        )));
    }
    if e.extcap_interfaces {
        return Ok(Plan::Extcap(Extcap::Interfaces));
    }
    let Some(name) = &e.extcap_interface else {
        bail!("--capture needs --extcap-interface (Wireshark gives both)");
    };
    let interface = interface(name)?;
    if e.capture {
        return capture(args, interface).map(Plan::Capture);
    }
    if e.extcap_dlts {
        return Ok(Plan::Extcap(Extcap::Dlts));
    }
    if e.extcap_config {
        return Ok(Plan::Extcap(Extcap::Config));
    }
    match &e.extcap_capture_filter {
        Some(filter) => Ok(Plan::Extcap(Extcap::CheckFilter(filter.clone()))),
        None => bail!(
            "--extcap-interface {name}: with --capture, --extcap-dlts, --extcap-config or --extcap-capture-filter"
        ),
    }
}

/// The network interface behind `xcap-NAME`.
fn interface(name: &str) -> Result<String> {
    match name.strip_prefix(INTERFACE_PREFIX) {
        Some(iface) if !iface.is_empty() => Ok(iface.to_owned()),
        _ => bail!("--extcap-interface {name}: not one of xcap's ({INTERFACE_PREFIX}IFACE)"),
    }
}

/// `--capture`: the interface at the chosen hook, pcap into `--fifo`,
/// each batch handed over at once (Wireshark shows packets as they come),
/// stderr kept for errors.
fn capture(args: &RunArgs, interface: String) -> Result<Capture> {
    let e = &args.extcap;
    let Some(fifo) = &e.fifo else {
        bail!("--capture needs --fifo (Wireshark gives it)");
    };
    let hook = match e.extcap_hook.as_deref() {
        None | Some("tc") => Hook::Tc,
        Some("xdp") => Hook::Xdp(XdpMode::Auto),
        Some(other) => bail!("--extcap-hook {other}: tc or xdp"),
    };
    let direction = match (e.extcap_direction.as_deref(), &hook) {
        (None | Some("auto"), Hook::Xdp(_)) | (Some("in"), _) => DirectionFilter::In,
        (None | Some("auto") | Some("inout"), _) => DirectionFilter::InOut,
        (Some("out"), _) => DirectionFilter::Out,
        (Some(other), _) => bail!("--extcap-direction {other}: auto, in, out or inout"),
    };
    if matches!(hook, Hook::Xdp(_)) && direction != DirectionFilter::In {
        bail!("XDP sees received packets only: choose the direction in, or the hook tc");
    }
    let filter = Filter::Expression(expression(args));
    let mut capture = hooks::live(args, filter)?;
    capture.hooks = vec![hook];
    capture.interfaces = vec![interface];
    capture.direction = direction;
    capture.flush_each_packet = true;
    capture.quiet_stderr = true;
    capture.output = Output::File {
        path: fifo.clone(),
        pcapng: false,
        rotation: None,
    };
    Ok(capture)
}

/// Wireshark's capture filter, xcap's filter option and the expression
/// words: every one given must match.
fn expression(args: &RunArgs) -> String {
    let e = &args.extcap;
    let words = args.expression.join(" ");
    let parts: Vec<&str> = [
        e.extcap_capture_filter.as_deref(),
        e.extcap_filter.as_deref(),
        Some(words.as_str()),
    ]
    .into_iter()
    .flatten()
    .map(str::trim)
    .filter(|p| !p.is_empty())
    .collect();
    match parts.as_slice() {
        [one] => (*one).to_owned(),
        _ => parts
            .iter()
            .map(|p| format!("({p})"))
            .collect::<Vec<_>>()
            .join(" and "),
    }
}
