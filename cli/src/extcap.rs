//! xcap as a Wireshark extcap program: what it answers to Wireshark's
//! queries (its interfaces, their link type, their options, whether a
//! capture filter is valid) and where `--extcap-install` links it. A
//! capture (`--capture --fifo`) is an ordinary live capture
//! ([`crate::session`]) into Wireshark's pipe.
//!
//! Wireshark runs every program in its extcap folder with
//! `--extcap-interfaces`; Wireshark 4.0 (Debian 12) has one folder, the
//! system's (`tshark -G folders` names it as "Extcap path"); later
//! versions also read a personal one ("Personal Extcap path").

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{anyhow, Context, Result};
use cbpf2ebpf::libpcap;

use crate::out::IoError;
use crate::plan::{Extcap, INTERFACE_PREFIX};

/// The name Wireshark lists xcap under.
const PROGRAM: &str = "xcap";

pub fn answer(call: &Extcap) -> Result<ExitCode> {
    let text = match call {
        Extcap::Interfaces => interfaces()?,
        Extcap::Dlts => dlts(),
        Extcap::Config => config(),
        Extcap::CheckFilter(filter) => return check_filter(filter),
        Extcap::Install(dir) => return install(dir.as_deref()),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `--extcap-interfaces`: xcap, then `xcap-any` and `xcap-IFACE` for each
/// interface `-i any` would capture on.
fn interfaces() -> Result<String> {
    let any = capture::iface::any().map_err(|e| anyhow!("interfaces: {}", IoError(e)))?;
    let mut text = format!(
        "extcap {{version={}}}{{display=xcap: tcpdump filters run in the kernel (eBPF)}}\n",
        env!("CARGO_PKG_VERSION")
    );
    text += &format!(
        "interface {{value={INTERFACE_PREFIX}any}}{{display=xcap: every interface (TC or XDP)}}\n"
    );
    for name in &any.ethernet {
        text += &format!(
            "interface {{value={INTERFACE_PREFIX}{name}}}{{display=xcap: {name} (TC or XDP)}}\n"
        );
    }
    Ok(text)
}

/// `--extcap-dlts`: Ethernet, as xcap captures it.
fn dlts() -> String {
    format!(
        "dlt {{number={}}}{{name=EN10MB}}{{display=Ethernet}}\n",
        libpcap::DLT_EN10MB
    )
}

/// `--extcap-config`: the filter, the hook and the direction, as
/// Wireshark's capture options show them.
fn config() -> String {
    [
        "arg {number=0}{call=--extcap-filter}{display=Filter}{type=string}{tooltip=A tcpdump filter expression, run in the kernel (with a capture filter, both must match)}",
        "arg {number=1}{call=--extcap-hook}{display=Hook}{type=selector}{tooltip=TC sees both directions; XDP received packets only, earliest}",
        "value {arg=1}{value=tc}{display=TC}{default=true}",
        "value {arg=1}{value=xdp}{display=XDP}{default=false}",
        "arg {number=2}{call=--extcap-direction}{display=Direction}{type=selector}{tooltip=Packets received, sent, or both}",
        "value {arg=2}{value=auto}{display=What the hook sees}{default=true}",
        "value {arg=2}{value=in}{display=Received}{default=false}",
        "value {arg=2}{value=out}{display=Sent (TC)}{default=false}",
        "value {arg=2}{value=inout}{display=Both (TC)}{default=false}",
        "",
    ]
    .join("\n")
}

/// `--extcap-capture-filter` alone: nothing and status 0 for a valid
/// filter, libpcap's message on stdout and status 1 otherwise (what
/// Wireshark shows).
fn check_filter(filter: &str) -> Result<ExitCode> {
    match libpcap::compile(filter, libpcap::DLT_EN10MB, libpcap::DEFAULT_SNAPLEN) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            println!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `--extcap-install [DIR]`: a link to this executable named `xcap` in
/// DIR, or in the folder Wireshark reads.
fn install(dir: Option<&str>) -> Result<ExitCode> {
    let dir = match dir {
        Some(d) => PathBuf::from(d),
        None => wireshark_folder()?,
    };
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| anyhow!("this executable: {}", IoError(e)))?;
    let link = dir.join(PROGRAM);
    std::fs::create_dir_all(&dir)
        .map_err(IoError)
        .with_context(|| dir.display().to_string())?;
    if link.symlink_metadata().is_ok() {
        std::fs::remove_file(&link)
            .map_err(IoError)
            .with_context(|| link.display().to_string())?;
    }
    std::os::unix::fs::symlink(&exe, &link)
        .map_err(IoError)
        .with_context(|| link.display().to_string())?;
    println!(
        "xcap: {} -> {}: Wireshark lists xcap's interfaces when it starts again (capturing needs root)",
        link.display(),
        exe.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The extcap folder `tshark -G folders` names: the personal one when
/// there is one and xcap does not run as root, else the system's.
fn wireshark_folder() -> Result<PathBuf> {
    let out = Command::new("tshark")
        .args(["-G", "folders"])
        .output()
        .map_err(|e| {
            anyhow!(
                "tshark -G folders: {} (give the folder: --extcap-install DIR; Wireshark shows it in Help > About > Folders)",
                IoError(e)
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    // SAFETY: a plain query.
    let root = unsafe { libc::geteuid() == 0 };
    folder_in(&text, root).ok_or_else(|| {
        anyhow!("tshark -G folders names no extcap folder: give one with --extcap-install DIR")
    })
}

/// The extcap folder in `tshark -G folders`' text.
fn folder_in(text: &str, root: bool) -> Option<PathBuf> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let (key, value) = l.split_once(':')?;
            (key.trim() == name).then(|| PathBuf::from(value.trim()))
        })
    };
    let personal = field("Personal Extcap path").filter(|_| !root);
    personal
        .or_else(|| field("Extcap path"))
        .or_else(|| field("Global Extcap path"))
        .filter(|p| p != Path::new(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_install_folder_is_the_one_tshark_names_personal_unless_root() {
        let debian_12 =
            "Temp:\t/tmp\nExtcap path:         \t/usr/lib/x86_64-linux-gnu/wireshark/extcap\n";
        let system = PathBuf::from("/usr/lib/x86_64-linux-gnu/wireshark/extcap");
        assert_eq!(folder_in(debian_12, false), Some(system.clone()));
        let newer = "Personal Extcap path:\t/home/a/.local/lib/wireshark/extcap\nGlobal Extcap path:\t/usr/lib/x86_64-linux-gnu/wireshark/extcap\n";
        assert_eq!(
            folder_in(newer, false),
            Some(PathBuf::from("/home/a/.local/lib/wireshark/extcap"))
        );
        assert_eq!(folder_in(newer, true), Some(system));
        assert_eq!(folder_in("Temp:\t/tmp\n", true), None);
    }

    #[test]
    fn options_and_link_types_are_in_extcaps_syntax() {
        assert_eq!(dlts(), "dlt {number=1}{name=EN10MB}{display=Ethernet}\n");
        let config = config();
        for call in ["--extcap-filter", "--extcap-hook", "--extcap-direction"] {
            assert!(config.contains(&format!("{{call={call}}}")), "{config}");
        }
    }
}
