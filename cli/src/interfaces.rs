//! `-D`: the interfaces libpcap can capture on, numbered, with their
//! flags and connection status, as tcpdump lists them.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use pcap::{ConnectionStatus, Device, IfFlags};

pub fn list() -> Result<ExitCode> {
    let devices = Device::list().map_err(|e| anyhow!("{e}"))?;
    if devices.is_empty() {
        bail!("no suitable device found");
    }
    let mut text = String::new();
    for (i, d) in devices.iter().enumerate() {
        text += &format!("{}.{}", i + 1, d.name);
        if let Some(desc) = &d.desc {
            text += &format!(" ({desc})");
        }
        text += &flags(d);
        text += "\n";
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// ` [Up, Running, Connected]`, or nothing when libpcap knows nothing.
fn flags(d: &Device) -> String {
    let f = &d.flags;
    let status = &f.connection_status;
    if f.if_flags.is_empty() && matches!(status, ConnectionStatus::Unknown) {
        return String::new();
    }
    let names: Vec<&str> = [
        (IfFlags::UP, "Up"),
        (IfFlags::RUNNING, "Running"),
        (IfFlags::LOOPBACK, "Loopback"),
        (IfFlags::WIRELESS, "Wireless"),
    ]
    .iter()
    .filter(|(flag, _)| f.if_flags.contains(*flag))
    .map(|&(_, name)| name)
    .collect();
    let names = if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    };
    let wireless = f.if_flags.contains(IfFlags::WIRELESS);
    let status = match (status, wireless) {
        (ConnectionStatus::Unknown, false) => ", Connection status unknown",
        (ConnectionStatus::Unknown, true) => ", Association status unknown",
        (ConnectionStatus::Connected, false) => ", Connected",
        (ConnectionStatus::Connected, true) => ", Associated",
        (ConnectionStatus::Disconnected, false) => ", Disconnected",
        (ConnectionStatus::Disconnected, true) => ", Not associated",
        (ConnectionStatus::NotApplicable, _) => "",
    };
    format!(" [{names}{status}]")
}
