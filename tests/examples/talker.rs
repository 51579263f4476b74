//! Traffic for the attribution tests, under a command name of its choice
//! (the kernel's `comm`, set with `PR_SET_NAME`), so that two talkers are
//! two programs to xcap.
//!
//! ```text
//! talker NAME serve ADDR PORT         TCP and UDP echo on ADDR:PORT, until killed
//! talker NAME talk ADDR PORT ROUNDS   waits for a line on stdin, then ROUNDS
//!                                     times: a UDP datagram and its echo, a
//!                                     TCP connection with one echo
//! talker NAME hold ADDR PORT          connects over TCP, says "connected",
//!                                     waits for a line on stdin, then one echo
//! talker NAME send ADDR PORT ROUNDS   waits for a line, sends ROUNDS UDP
//!                                     datagrams (no echo awaited)
//! ```
//!
//! A last number after ROUNDS is the exit status (for `xcap -- CMD`).
//!
//! Each mode prints its local ports ("udp PORT", "tcp PORT") on stdout as
//! it uses them, and "done" at the end; waiting on stdin lets a test learn
//! the pid, or move the process to a cgroup, before any socket exists.

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [name, mode, addr, port, rest @ ..] = &args[..] else {
        eprintln!("usage: talker NAME serve|talk|hold|send ADDR PORT [ROUNDS]");
        std::process::exit(2);
    };
    set_name(name);
    let at: SocketAddr = format!("{addr}:{port}")
        .parse()
        .unwrap_or_else(|e| fail(&format!("{addr}:{port}: {e}")));
    let rounds: usize = rest.first().and_then(|r| r.parse().ok()).unwrap_or(1);
    match mode.as_str() {
        "serve" => serve(at),
        "talk" => {
            wait_for_go();
            for _ in 0..rounds {
                udp_echo(at);
                tcp_echo(&mut connect(at));
            }
        }
        "hold" => {
            let mut stream = connect(at);
            say("connected");
            wait_for_go();
            tcp_echo(&mut stream);
        }
        "send" => {
            wait_for_go();
            let socket = udp_socket(at);
            for _ in 0..rounds {
                socket
                    .send_to(b"talker", at)
                    .unwrap_or_else(|e| fail(&format!("send: {e}")));
            }
        }
        other => fail(&format!("{other}: not a mode")),
    }
    say("done");
    let status = rest.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    std::process::exit(status);
}

fn set_name(name: &str) {
    let mut bytes = name.as_bytes().to_vec();
    bytes.truncate(15);
    bytes.push(0);
    // SAFETY: a NUL-terminated name of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, bytes.as_ptr()) };
}

fn fail(message: &str) -> ! {
    eprintln!("talker: {message}");
    std::process::exit(1);
}

fn say(line: &str) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn wait_for_go() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

fn udp_socket(to: SocketAddr) -> UdpSocket {
    let any = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let socket = UdpSocket::bind(any).unwrap_or_else(|e| fail(&format!("udp bind: {e}")));
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap_or_else(|e| fail(&e.to_string()));
    say(&format!(
        "udp {}",
        socket.local_addr().map(|a| a.port()).unwrap_or(0)
    ));
    socket
}

fn udp_echo(to: SocketAddr) {
    let socket = udp_socket(to);
    socket
        .send_to(b"talker", to)
        .unwrap_or_else(|e| fail(&format!("udp send: {e}")));
    let mut buf = [0u8; 64];
    socket
        .recv_from(&mut buf)
        .unwrap_or_else(|e| fail(&format!("udp echo: {e}")));
}

fn connect(to: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&to, Duration::from_secs(5))
        .unwrap_or_else(|e| fail(&format!("connect {to}: {e}")));
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap_or_else(|e| fail(&e.to_string()));
    say(&format!(
        "tcp {}",
        stream.local_addr().map(|a| a.port()).unwrap_or(0)
    ));
    stream
}

fn tcp_echo(stream: &mut TcpStream) {
    stream
        .write_all(b"talker")
        .unwrap_or_else(|e| fail(&format!("tcp send: {e}")));
    let mut buf = [0u8; 6];
    stream
        .read_exact(&mut buf)
        .unwrap_or_else(|e| fail(&format!("tcp echo: {e}")));
}

/// Echoes UDP datagrams on one thread and TCP connections (one read and
/// its echo each) on another.
fn serve(at: SocketAddr) {
    let udp = UdpSocket::bind(at).unwrap_or_else(|e| fail(&format!("udp bind {at}: {e}")));
    let tcp = TcpListener::bind(at).unwrap_or_else(|e| fail(&format!("tcp bind {at}: {e}")));
    say("serving");
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(&buf[..n], from);
        }
    });
    for stream in tcp.incoming().flatten() {
        std::thread::spawn(move || {
            let mut stream = stream;
            let mut buf = [0u8; 1500];
            if let Ok(n) = stream.read(&mut buf) {
                let _ = stream.write_all(&buf[..n]);
            }
            // Until the client closes.
            let _ = stream.read(&mut buf);
        });
    }
}
