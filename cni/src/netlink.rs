//! Just enough rtnetlink for a container interface: a veth pair whose peer is created
//! directly in the container's namespace with its name, MAC and MTU (one message), links
//! up, an IPv4 address, a default route, lookups and deletion. Synchronous, one socket
//! per namespace, no dependency beyond libc.

use std::{
    ffi::CStr,
    fs::File,
    io,
    net::Ipv4Addr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use crate::spec::Ipv4Net;

const NLMSG_HDR: usize = 16;
const NLA_HDR: usize = 4;
const IFINFOMSG: usize = 16;
const IFADDRMSG: usize = 8;
const RTMSG: usize = 12;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
/// In an NLMSG_ERROR's flags: extended-ack attributes follow the echoed request.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// In an NLMSG_ERROR's flags: the echoed request was cut to its header.
const NLM_F_CAPPED: u16 = 0x100;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSGERR_ATTR_MSG: u16 = 1;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;

const IFF_UP: u32 = 0x1;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
const RTNH_F_ONLINK: u32 = 4;

/// A network interface as rtnetlink reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    pub up: bool,
}

/// A request under construction: header, fixed part, attributes (nests tracked by
/// their start offsets).
struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(kind: u16, flags: u16) -> Msg {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // seq, set by finish
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    fn ifinfomsg(mut self, index: u32, flags: u32, change: u32) -> Msg {
        ifinfomsg(&mut self.buf, index, flags, change);
        self
    }

    fn bytes(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Msg {
        let len = (NLA_HDR + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.bytes(data);
        self
    }

    fn attr_str(&mut self, kind: u16, s: &str) -> &mut Msg {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.attr(kind, &data)
    }

    fn begin(&mut self, kind: u16) -> &mut Msg {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self
    }

    fn end(&mut self) -> &mut Msg {
        if let Some(start) = self.nests.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

fn ifinfomsg(buf: &mut Vec<u8>, index: u32, flags: u32, change: u32) {
    buf.push(libc::AF_UNSPEC as u8);
    buf.push(0);
    buf.extend_from_slice(&0u16.to_ne_bytes()); // device type
    buf.extend_from_slice(&index.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&change.to_ne_bytes());
}

/// Attributes in `data`, as (type without flag bits, payload).
fn attrs(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= NLA_HDR {
        let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let kind = u16::from_ne_bytes([data[2], data[3]]) & 0x3fff;
        if len < NLA_HDR || len > data.len() {
            break;
        }
        out.push((kind, &data[NLA_HDR..len]));
        let step = (len + 3) & !3;
        data = data.get(step..).unwrap_or(&[]);
    }
    out
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn c_string(b: &[u8]) -> String {
    CStr::from_bytes_until_nul(b)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(b).into_owned())
}

/// An rtnetlink socket, bound to the network namespace it was opened in.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    /// A socket in the calling thread's namespace.
    pub fn open() -> io::Result<Netlink> {
        // SAFETY: plain socket(2); the result is checked before it is owned.
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
        // SAFETY: fd is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let one: libc::c_int = 1;
        // Extended acks: the kernel says why it refused, not only errno. Best effort.
        // SAFETY: setsockopt reads `one` (an int of the size passed) and nothing else.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_NETLINK,
                libc::NETLINK_EXT_ACK,
                (&one as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        Ok(Netlink { fd, seq: 1 })
    }

    /// A socket in the namespace `netns` (an open `/run/netns/X` or `/proc/PID/ns/net`);
    /// the calling thread is back in its own namespace when this returns.
    pub fn open_in(netns: &File) -> io::Result<Netlink> {
        let _inside = crate::netns::Entered::enter(netns)?;
        Netlink::open()
    }

    fn send(&mut self, msg: Msg) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let buf = msg.finish(seq);
        // SAFETY: send(2) reads `buf.len()` bytes of `buf`.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(seq)
    }

    /// Sends `msg` and collects the payloads of the replies (a dump's parts, a get's
    /// answer) until the ack, the end of the dump, or an error.
    fn request(&mut self, msg: Msg, dump: bool) -> io::Result<Vec<(u16, Vec<u8>)>> {
        let seq = self.send(msg)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: recv(2) writes at most `buf.len()` bytes into `buf`.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut data = &buf[..n as usize];
            let mut finished = false;
            while data.len() >= NLMSG_HDR {
                let len = u32_at(data, 0) as usize;
                let kind = u16::from_ne_bytes([data[4], data[5]]);
                let flags = u16::from_ne_bytes([data[6], data[7]]);
                let msg_seq = u32_at(data, 8);
                if len < NLMSG_HDR || len > data.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "truncated netlink message",
                    ));
                }
                let payload = &data[NLMSG_HDR..len];
                data = data.get((len + 3) & !3..).unwrap_or(&[]);
                if msg_seq != seq {
                    continue;
                }
                match kind {
                    NLMSG_ERROR => {
                        let errno = u32_at(payload, 0) as i32;
                        if errno == 0 {
                            finished = true;
                            continue;
                        }
                        return Err(nl_error(-errno, flags, payload));
                    }
                    NLMSG_DONE => finished = true,
                    _ => {
                        out.push((kind, payload.to_vec()));
                        if !dump && flags & NLM_F_MULTI == 0 {
                            finished = true;
                        }
                    }
                }
            }
            if finished {
                return Ok(out);
            }
        }
    }

    /// Creates the veth pair `host` (here) – `peer` (in `peer_ns`, with `peer_mac`), both
    /// with `mtu`. Fails with EEXIST if either name is taken on its side.
    pub fn create_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_ns: &File,
        peer_mac: [u8; 6],
        mtu: u32,
    ) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL).ifinfomsg(0, 0, 0);
        m.attr_str(IFLA_IFNAME, host)
            .attr(IFLA_MTU, &mtu.to_ne_bytes())
            .begin(IFLA_LINKINFO)
            .attr_str(IFLA_INFO_KIND, "veth")
            .begin(IFLA_INFO_DATA)
            .begin(VETH_INFO_PEER);
        let mut info = Vec::with_capacity(IFINFOMSG);
        ifinfomsg(&mut info, 0, 0, 0);
        m.bytes(&info);
        m.attr_str(IFLA_IFNAME, peer)
            .attr(IFLA_ADDRESS, &peer_mac)
            .attr(IFLA_MTU, &mtu.to_ne_bytes())
            .attr(IFLA_NET_NS_FD, &(peer_ns.as_raw_fd() as u32).to_ne_bytes())
            .end()
            .end()
            .end();
        self.request(m, false).map(drop)
    }

    fn parse_link(payload: &[u8]) -> Option<Link> {
        if payload.len() < IFINFOMSG {
            return None;
        }
        let index = u32_at(payload, 4);
        let flags = u32_at(payload, 8);
        let mut link = Link {
            index,
            name: String::new(),
            mac: None,
            mtu: 0,
            up: flags & IFF_UP != 0,
        };
        for (kind, value) in attrs(&payload[IFINFOMSG..]) {
            match kind {
                IFLA_IFNAME => link.name = c_string(value),
                IFLA_MTU => link.mtu = u32_at(value, 0),
                IFLA_ADDRESS if value.len() == 6 => {
                    let mut mac = [0u8; 6];
                    mac.copy_from_slice(value);
                    link.mac = Some(mac);
                }
                _ => {}
            }
        }
        Some(link)
    }

    /// The interface called `name`, if it exists.
    pub fn link(&mut self, name: &str) -> io::Result<Option<Link>> {
        let mut m = Msg::new(RTM_GETLINK, 0).ifinfomsg(0, 0, 0);
        m.attr_str(IFLA_IFNAME, name);
        match self.request(m, false) {
            Ok(replies) => Ok(replies.iter().find_map(|(_, p)| Netlink::parse_link(p))),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every interface of the namespace.
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let m = Msg::new(RTM_GETLINK, NLM_F_DUMP).ifinfomsg(0, 0, 0);
        Ok(self
            .request(m, true)?
            .iter()
            .filter(|(kind, _)| *kind == RTM_NEWLINK)
            .filter_map(|(_, p)| Netlink::parse_link(p))
            .collect())
    }

    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        let m = Msg::new(RTM_NEWLINK, NLM_F_ACK).ifinfomsg(index, IFF_UP, IFF_UP);
        self.request(m, false).map(drop)
    }

    pub fn add_address(&mut self, index: u32, net: Ipv4Net) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        let mut fixed = vec![libc::AF_INET as u8, net.prefix, 0, RT_SCOPE_UNIVERSE];
        fixed.extend_from_slice(&index.to_ne_bytes());
        m.bytes(&fixed);
        let octets = net.addr.octets();
        m.attr(IFA_LOCAL, &octets).attr(IFA_ADDRESS, &octets);
        self.request(m, false).map(drop)
    }

    /// The IPv4 addresses on interface `index`.
    pub fn addresses(&mut self, index: u32) -> io::Result<Vec<Ipv4Net>> {
        let mut m = Msg::new(RTM_GETADDR, NLM_F_DUMP);
        let mut fixed = vec![libc::AF_INET as u8, 0, 0, 0];
        fixed.extend_from_slice(&0u32.to_ne_bytes());
        m.bytes(&fixed);
        let mut out = Vec::new();
        for (_, p) in self.request(m, true)? {
            if p.len() < IFADDRMSG || p[0] != libc::AF_INET as u8 || u32_at(&p, 4) != index {
                continue;
            }
            let prefix = p[1];
            for (kind, value) in attrs(&p[IFADDRMSG..]) {
                if kind == IFA_LOCAL && value.len() == 4 {
                    let addr = Ipv4Addr::new(value[0], value[1], value[2], value[3]);
                    out.extend(Ipv4Net::new(addr, prefix));
                }
            }
        }
        Ok(out)
    }

    /// `default via gateway dev index` (on-link when the gateway is outside `net`).
    pub fn add_default_route(
        &mut self,
        index: u32,
        gateway: Ipv4Addr,
        net: Ipv4Net,
    ) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        let onlink = if net.contains(gateway) {
            0
        } else {
            RTNH_F_ONLINK
        };
        let mut fixed = vec![
            libc::AF_INET as u8,
            0, // dst_len: default route
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
        ];
        fixed.extend_from_slice(&onlink.to_ne_bytes());
        debug_assert_eq!(fixed.len(), RTMSG);
        m.bytes(&fixed);
        m.attr(RTA_GATEWAY, &gateway.octets())
            .attr(RTA_OIF, &index.to_ne_bytes());
        self.request(m, false).map(drop)
    }

    /// Deletes interface `name`; `false` if there was none. Deleting one end of a veth
    /// deletes the other, wherever it is.
    pub fn delete_link(&mut self, name: &str) -> io::Result<bool> {
        let mut m = Msg::new(RTM_DELLINK, NLM_F_ACK).ifinfomsg(0, 0, 0);
        m.attr_str(IFLA_IFNAME, name);
        match self.request(m, false) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// errno plus the kernel's extended-ack message, if it sent one.
fn nl_error(errno: i32, flags: u16, payload: &[u8]) -> io::Error {
    let base = io::Error::from_raw_os_error(errno);
    if flags & NLM_F_ACK_TLVS == 0 {
        return base;
    }
    // The error code, then the request echoed (its header only when capped), then TLVs.
    let echoed = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDR
    } else {
        u32_at(payload, 4) as usize
    };
    let tlvs = payload.get(4 + ((echoed + 3) & !3)..).unwrap_or(&[]);
    match attrs(tlvs)
        .into_iter()
        .find(|(k, _)| *k == NLMSGERR_ATTR_MSG)
    {
        Some((_, msg)) => io::Error::new(base.kind(), format!("{base}: {}", c_string(msg))),
        None => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_aligned_and_nested() {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_ACK).ifinfomsg(0, 0, 0);
        m.attr_str(IFLA_IFNAME, "eth0")
            .begin(IFLA_LINKINFO)
            .attr_str(IFLA_INFO_KIND, "veth")
            .end();
        let buf = m.finish(7);
        assert_eq!(u32_at(&buf, 0) as usize, buf.len());
        assert_eq!(u32_at(&buf, 8), 7);
        assert!(buf.len().is_multiple_of(4));
        let top = attrs(&buf[NLMSG_HDR + IFINFOMSG..]);
        assert_eq!(top.len(), 2);
        assert_eq!(c_string(top[0].1), "eth0");
        assert_eq!(top[1].0, IFLA_LINKINFO);
        let inner = attrs(top[1].1);
        assert_eq!(inner, vec![(IFLA_INFO_KIND, &b"veth\0"[..])]);
    }

    #[test]
    fn attributes_parse_defensively() {
        // A length past the end, a length below the header: parsing stops, no panic.
        assert!(attrs(&[200, 0, 1, 0, 1, 2]).is_empty());
        assert!(attrs(&[2, 0, 1, 0]).is_empty());
        assert_eq!(attrs(&[5, 0, 3, 0, b'x', 0, 0, 0]), vec![(3, &b"x"[..])]);
    }
}
