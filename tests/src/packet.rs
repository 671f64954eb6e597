//! Raw AF_PACKET sockets for kernel tests: send exact bytes, receive exact bytes plus the
//! VLAN tag the kernel moved into PACKET_AUXDATA (as tcpdump shows it).

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

/// A frame as received: bytes without the tag the kernel stripped, and that tag's VID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub bytes: Vec<u8>,
    pub vid: Option<u16>,
}

impl Received {
    /// The frame as it was on the wire (tag put back in place).
    pub fn on_wire(&self) -> Vec<u8> {
        match self.vid {
            None => self.bytes.clone(),
            Some(vid) => {
                let mut out = self.bytes[..12].to_vec();
                out.extend_from_slice(&[0x81, 0x00]);
                out.extend_from_slice(&vid.to_be_bytes());
                out.extend_from_slice(&self.bytes[12..]);
                out
            }
        }
    }
}

/// A raw socket bound to one interface of the calling thread's network namespace.
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
}

const TP_STATUS_VLAN_VALID: u32 = 1 << 4;

impl PacketSocket {
    /// Opens a socket on `ifname` in the namespace the calling thread is in now.
    pub fn open(ifname: &str) -> io::Result<PacketSocket> {
        let name = std::ffi::CString::new(ifname)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: if_nametoindex reads a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2) call; the fd is owned right below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh, valid fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid starting value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto;
        addr.sll_ifindex = ifindex;
        // SAFETY: addr is a valid sockaddr_ll and its size is passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let one: i32 = 1;
        // SAFETY: the option value is an int, as PACKET_AUXDATA expects.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_AUXDATA,
                (&raw const one).cast(),
                4,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSocket { fd, ifindex })
    }

    /// Asks for a receive buffer of `bytes` (SO_RCVBUFFORCE: root may exceed rmem_max),
    /// so a steady flow is not dropped by the socket while the reader is busy.
    pub fn set_receive_buffer(&self, bytes: i32) -> io::Result<()> {
        // SAFETY: the option value is an int, as SO_RCVBUFFORCE expects.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&raw const bytes).cast(),
                4,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sends `frame` exactly as given.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid starting value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = self.ifindex;
        addr.sll_halen = 6;
        // SAFETY: buffer and address are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// The next incoming frame (outgoing copies skipped), or `None` at `deadline`.
    pub fn recv_until(&self, deadline: Instant) -> io::Result<Option<Received>> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&raw mut pfd, 1, ms) };
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if rc == 0 {
                continue;
            }
            if let Some(frame) = self.recv_one()? {
                return Ok(Some(frame));
            }
        }
    }

    /// Every incoming frame that `wanted` accepts until `deadline`... or the first one,
    /// whichever comes first: returns the first accepted frame.
    pub fn recv_matching(
        &self,
        timeout: Duration,
        mut wanted: impl FnMut(&Received) -> bool,
    ) -> io::Result<Option<Received>> {
        let deadline = Instant::now() + timeout;
        while let Some(frame) = self.recv_until(deadline)? {
            if wanted(&frame) {
                return Ok(Some(frame));
            }
        }
        Ok(None)
    }

    fn recv_one(&self) -> io::Result<Option<Received>> {
        let mut buf = vec![0u8; 9216];
        let mut control = [0u64; 16];
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid starting value.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data; the fields that matter are set below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&raw mut from).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_ll>() as u32;
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control);
        // SAFETY: every pointer in msg refers to a live buffer of the stated size.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &raw mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(err)
            };
        }
        if from.sll_pkttype == libc::PACKET_OUTGOING {
            return Ok(None);
        }
        buf.truncate(n as usize);
        let mut vid = None;
        // SAFETY: CMSG_* walk the control buffer the kernel filled, within msg_controllen.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_PACKET
                    && (*cmsg).cmsg_type == libc::PACKET_AUXDATA
                {
                    let aux = std::ptr::read_unaligned(
                        libc::CMSG_DATA(cmsg).cast::<libc::tpacket_auxdata>(),
                    );
                    if aux.tp_status & TP_STATUS_VLAN_VALID != 0 {
                        vid = Some(aux.tp_vlan_tci & 0x0fff);
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
            }
        }
        Ok(Some(Received { bytes: buf, vid }))
    }
}
