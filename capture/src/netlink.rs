//! A small rtnetlink client (`NETLINK_ROUTE`): requests acknowledged one at
//! a time, and dumps. Just what [`crate::clsact`] needs to add and remove
//! qdiscs and tc filters; errors carry the kernel's own text (extended
//! acks), e.g. "Protocol mismatch for filter with specified priority."

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub const RTM_NEWQDISC: u16 = 36;
pub const RTM_DELQDISC: u16 = 37;
pub const RTM_GETQDISC: u16 = 38;
pub const RTM_NEWTFILTER: u16 = 44;
pub const RTM_DELTFILTER: u16 = 45;
pub const RTM_GETTFILTER: u16 = 46;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_EXT_ACK: libc::c_int = 11;
const HDR: usize = 16;

/// A refusal: the errno and, when the kernel gave one, its reason.
#[derive(Debug)]
pub struct Error {
    pub io: io::Error,
    pub reason: Option<String>,
}

impl Error {
    pub fn errno(&self) -> Option<i32> {
        self.io.raw_os_error()
    }
}

impl From<io::Error> for Error {
    fn from(io: io::Error) -> Error {
        Error { io, reason: None }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            Some(r) => write!(f, "{} ({})", self.io, r.trim_end_matches('.')),
            None => write!(f, "{}", self.io),
        }
    }
}

impl std::error::Error for Error {}

/// A message being built: header fields, a fixed body, attributes.
pub struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    pub fn new(kind: u16, flags: u16, body: &[u8]) -> Msg {
        let mut buf = vec![0u8; HDR];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(body);
        pad(&mut buf);
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    pub fn attr(&mut self, kind: u16, value: &[u8]) -> &mut Msg {
        let len = 4 + value.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        pad(&mut self.buf);
        self
    }

    pub fn attr_u32(&mut self, kind: u16, value: u32) -> &mut Msg {
        self.attr(kind, &value.to_ne_bytes())
    }

    /// A NUL-terminated string.
    pub fn attr_str(&mut self, kind: u16, value: &str) -> &mut Msg {
        let mut v = value.as_bytes().to_vec();
        v.push(0);
        self.attr(kind, &v)
    }

    /// Opens a nested attribute; [`Msg::end_nest`] closes it.
    pub fn nest(&mut self, kind: u16) -> &mut Msg {
        self.nests.push(self.buf.len());
        self.attr(kind, &[])
    }

    pub fn end_nest(&mut self) -> &mut Msg {
        if let Some(at) = self.nests.pop() {
            let len = (self.buf.len() - at) as u16;
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }
}

fn pad(buf: &mut Vec<u8>) {
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// One message of a reply: its type and body (after the header).
pub struct Reply {
    pub kind: u16,
    pub body: Vec<u8>,
}

/// The attributes in `bytes`: (type without its flag bits, value).
pub fn attrs(mut bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if bytes.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([bytes[0], bytes[1]]) as usize;
        let kind = u16::from_ne_bytes([bytes[2], bytes[3]]) & 0x3fff;
        if len < 4 || len > bytes.len() {
            return None;
        }
        let value = &bytes[4..len];
        bytes = &bytes[len.next_multiple_of(4).min(bytes.len())..];
        Some((kind, value))
    })
}

/// A string attribute's value, without its NUL.
pub fn attr_string(value: &[u8]) -> String {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).into_owned()
}

/// A `NETLINK_ROUTE` socket of this network namespace.
pub struct Route {
    fd: OwnedFd,
    seq: u32,
}

impl Route {
    pub fn open() -> io::Result<Route> {
        // SAFETY: socket() has no memory preconditions; the fd is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd, ours alone.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // The kernel's reason with each refusal, and acks without a copy of
        // the request. Both are best effort: without them errors are plainer.
        for opt in [NETLINK_EXT_ACK, NETLINK_CAP_ACK] {
            let one: libc::c_int = 1;
            // SAFETY: an int option on our socket.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_NETLINK,
                    opt,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        Ok(Route { fd, seq: 0 })
    }

    /// Sends `msg` with an ack requested and waits for the ack.
    pub fn request(&mut self, msg: Msg) -> Result<(), Error> {
        let mut msg = msg;
        let flags = u16::from_ne_bytes([msg.buf[6], msg.buf[7]]) | NLM_F_ACK;
        msg.buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        let seq = self.send(msg)?;
        self.receive(seq, false).map(drop)
    }

    /// Sends a dump request and collects every message of the answer.
    pub fn dump(&mut self, kind: u16, body: &[u8]) -> Result<Vec<Reply>, Error> {
        let seq = self.send(Msg::new(kind, NLM_F_DUMP, body))?;
        self.receive(seq, true)
    }

    fn send(&mut self, mut msg: Msg) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let len = msg.buf.len() as u32;
        msg.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        msg.buf[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        // SAFETY: a zeroed sockaddr_nl names the kernel.
        let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: the buffer and address are valid for the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.buf.as_ptr().cast(),
                msg.buf.len(),
                0,
                (&to as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(self.seq)
    }

    /// Reads replies to `seq` until its ack (a request) or its end (a
    /// dump); messages of other sequence numbers are left aside.
    fn receive(&mut self, seq: u32, dump: bool) -> Result<Vec<Reply>, Error> {
        // The kernel sizes dump batches at most 32 KiB.
        let mut buf = vec![0u8; 64 * 1024];
        let mut out = Vec::new();
        loop {
            // SAFETY: recv into our buffer.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e.into());
            }
            let n = n as usize;
            if n > buf.len() {
                return Err(io::Error::other("netlink reply larger than 64 KiB").into());
            }
            let mut at = 0;
            while at + HDR <= n {
                let u32_at = |o: usize| u32::from_ne_bytes(buf[o..o + 4].try_into().unwrap());
                let len = u32_at(at) as usize;
                if len < HDR || at + len > n {
                    break;
                }
                let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
                let flags = u16::from_ne_bytes([buf[at + 6], buf[at + 7]]);
                let msg_seq = u32_at(at + 8);
                let body = &buf[at + HDR..at + len];
                at += len.next_multiple_of(4);
                if msg_seq != seq {
                    continue;
                }
                match kind {
                    NLMSG_DONE if dump => return Ok(out),
                    NLMSG_ERROR => {
                        let code = body
                            .get(0..4)
                            .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
                            .unwrap_or(-libc::EIO);
                        if code == 0 && !dump {
                            return Ok(out);
                        }
                        return Err(Error {
                            io: io::Error::from_raw_os_error(-code),
                            reason: ack_reason(body, flags),
                        });
                    }
                    _ => out.push(Reply {
                        kind,
                        body: body.to_vec(),
                    }),
                }
            }
        }
    }
}

/// The kernel's text in an error's extended ack: after the error code and
/// the request's header (and its body, unless capped), attributes.
fn ack_reason(body: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || body.len() < 4 + HDR {
        return None;
    }
    let request_len = if flags & NLM_F_CAPPED != 0 {
        HDR
    } else {
        u32::from_ne_bytes(body[4..8].try_into().unwrap()) as usize
    };
    let tlvs = body.get((4 + request_len).next_multiple_of(4)..)?;
    attrs(tlvs)
        .find(|(k, _)| *k == NLMSGERR_ATTR_MSG)
        .map(|(_, v)| attr_string(v))
        .filter(|s| !s.is_empty())
}
