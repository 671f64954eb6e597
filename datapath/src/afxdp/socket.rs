//! One AF_XDP socket: an interface queue's fill/completion rings and the socket's RX/TX
//! rings, all on its poll thread's shared UMEM.

use core::num::NonZeroU32;

use tracing::info;
use xdpilone::{DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, User};

use super::{AfXdpConfig, AfXdpError, BindMode};
use crate::pipeline::{BATCH, Desc, FramePool, SocketStats};

/// An XSK bound to `(ifindex, queue)`.
pub struct Xsk {
    pub ifindex: u32,
    pub queue: u32,
    /// Chunks this socket's fill ring holds at most. The UMEM is shared by every socket of
    /// the poll thread and a fill ring only gives chunks back when its interface receives:
    /// without a bound, the rings of idle interfaces soak up the whole UMEM and the busy
    /// one starves (its frames then fail to redirect in XDP).
    fill_target: u32,
    // Field order is drop order: rings before the socket that owns their mappings.
    rx: RingRx,
    tx: RingTx,
    fill_completion: DeviceQueue,
    user: User,
    _socket: Socket,
}

fn errno(
    what: &'static str,
    ifindex: u32,
    queue: u32,
) -> impl FnOnce(xdpilone::Errno) -> AfXdpError {
    move |e| AfXdpError::Socket {
        what,
        ifindex,
        queue,
        errno: e.get_raw(),
    }
}

impl Xsk {
    /// Creates the socket (the UMEM's own socket when `first`), its four rings, and binds
    /// it with `mode`'s flags. Need-wakeup is always asked for, so an idle ring costs no
    /// syscalls.
    pub fn open(
        umem: &Umem,
        first: bool,
        ifindex: u32,
        queue: u32,
        mode: BindMode,
        config: &AfXdpConfig,
        fill_target: u32,
    ) -> Result<Xsk, AfXdpError> {
        let mut info = IfInfo::invalid();
        info.from_ifindex(ifindex)
            .map_err(errno("if_indextoname", ifindex, queue))?;
        info.set_queue(queue);
        let socket = if first {
            Socket::with_shared(&info, umem)
        } else {
            Socket::new(&info)
        }
        .map_err(errno("socket", ifindex, queue))?;
        let fill_completion =
            umem.fq_cq(&socket)
                .map_err(errno("fill/completion rings", ifindex, queue))?;
        let ring = NonZeroU32::new(config.ring_size);
        let mode_flag = match mode {
            BindMode::ZeroCopy => SocketConfig::XDP_BIND_ZEROCOPY,
            BindMode::Copy => SocketConfig::XDP_BIND_COPY,
        };
        // Sockets sharing the UMEM may pass no flags: the kernel takes copy/zero-copy and
        // need-wakeup from the UMEM's own socket (xsk_bind returns EINVAL otherwise).
        let bind_flags = if first {
            mode_flag | SocketConfig::XDP_BIND_NEED_WAKEUP
        } else {
            0
        };
        let socket_config = SocketConfig {
            rx_size: ring,
            tx_size: ring,
            bind_flags,
        };
        let user =
            umem.rx_tx(&socket, &socket_config)
                .map_err(errno("rx/tx rings", ifindex, queue))?;
        let rx = user
            .map_rx()
            .map_err(errno("mapping the rx ring", ifindex, queue))?;
        let tx = user
            .map_tx()
            .map_err(errno("mapping the tx ring", ifindex, queue))?;
        umem.bind(&user).map_err(errno("bind", ifindex, queue))?;
        info!("AF_XDP socket on ifindex {ifindex} queue {queue}: {mode:?} mode");
        Ok(Xsk {
            ifindex,
            queue,
            fill_target,
            rx,
            tx,
            fill_completion,
            user,
            _socket: socket,
        })
    }

    /// The socket's file descriptor, for the XDP program's XSKMAP.
    pub fn fd(&self) -> i32 {
        self.user.as_raw_fd()
    }

    /// Up to `out.len()` received descriptors; returns how many.
    #[inline]
    pub fn receive(&mut self, out: &mut [Desc; BATCH]) -> usize {
        let mut reader = self.rx.receive(BATCH as u32);
        let mut n = 0;
        while n < BATCH {
            let Some(d) = reader.read() else { break };
            out[n] = Desc {
                addr: d.addr,
                len: d.len,
                options: d.options,
            };
            n += 1;
        }
        reader.release();
        n
    }

    /// Moves transmitted chunks from the completion ring back to `pool`.
    #[inline]
    pub fn complete(&mut self, pool: &mut FramePool, frame_mask: u64) -> u32 {
        let mut reader = self.fill_completion.complete(BATCH as u32 * 4);
        let mut n = 0;
        while let Some(addr) = reader.read() {
            pool.give(addr & !frame_mask);
            n += 1;
        }
        reader.release();
        n
    }

    /// Tops the fill ring up from `pool` in one batch, to at most its target and keeping
    /// `reserve` chunks in the pool for flood copies. Wakes the kernel only when it asked
    /// for it.
    #[inline]
    pub fn refill(&mut self, pool: &mut FramePool, reserve: usize) {
        // Chunks committed to the fill ring that the kernel has not taken yet.
        let in_ring = self.fill_completion.pending();
        let room = self.fill_target.saturating_sub(in_ring) as usize;
        let spare = pool.len().saturating_sub(reserve).min(BATCH * 2).min(room) as u32;
        if spare >= BATCH as u32 / 2 {
            // Two reservations at most, as in `transmit`: the first may stop at
            // xdpilone's cached view of the kernel's consumer.
            let mut left = spare;
            for _ in 0..2 {
                let added = fill(&mut self.fill_completion, pool, left);
                left -= added;
                if left == 0 || added == 0 {
                    break;
                }
            }
        }
        if self.fill_completion.needs_wakeup() {
            self.fill_completion.wake();
        }
    }

    /// Fills the ring to its target at start.
    pub fn prime(&mut self, pool: &mut FramePool) {
        fill(&mut self.fill_completion, pool, self.fill_target);
    }

    /// Puts `count` descriptors on the TX ring and kicks the kernel. What the ring cannot
    /// take goes back to `pool`; returns that number.
    ///
    /// xdpilone reserves against its cached view of the kernel's consumer and refreshes
    /// that view only once it shows no room at all, so one reservation may offer fewer
    /// slots than the ring has; a second one, after the first was used up, reads the
    /// consumer again. Without it a batch that crosses the cached limit would be refused
    /// in part while the ring is nearly empty.
    #[inline]
    pub fn transmit(
        &mut self,
        count: u32,
        descs: &mut dyn Iterator<Item = Desc>,
        pool: &mut FramePool,
        frame_mask: u64,
    ) -> u32 {
        let mut left = count;
        let mut refused = 0;
        for _ in 0..2 {
            if left == 0 {
                break;
            }
            let mut writer = self.tx.transmit(left);
            let room = writer.capacity();
            let mut inserted = 0;
            while inserted < room {
                let Some(d) = descs.next() else { break };
                let desc = xdpilone::xdp::XdpDesc {
                    addr: d.addr,
                    len: d.len,
                    options: 0,
                };
                if !writer.insert_once(desc) {
                    pool.give(d.addr & !frame_mask);
                    refused += 1;
                    break;
                }
                inserted += 1;
            }
            writer.commit();
            left = left.saturating_sub(inserted);
            if inserted < room {
                break;
            }
        }
        for d in descs {
            pool.give(d.addr & !frame_mask);
            refused += 1;
        }
        // Frames the kick left behind are the poll loop's (it kicks every pass).
        let _ = self.kick();
        refused
    }

    /// Descriptors on the TX ring the kernel has not taken yet.
    #[inline]
    pub fn tx_pending(&self) -> u32 {
        self.tx.pending()
    }

    /// Makes the kernel send what the TX ring holds. In copy mode (veth) the kernel sends
    /// only inside `sendto`, at most 32 frames per call (`xsk_generic_xmit`'s budget),
    /// and never on its own: a batch larger than that, or one the device refused while
    /// its queue was stopped, waits for the next kick. So kick until the ring is empty or
    /// a call makes no progress. Returns whether frames still wait and another kick may
    /// send them (the poll loop kicks again next pass rather than sleeping); a socket
    /// whose device is gone is not worth spinning on.
    #[inline]
    pub fn kick(&mut self) -> bool {
        let mut pending = self.tx.pending();
        while pending > 0 {
            // SAFETY: sendto with no buffer on the socket's own descriptor, which lives as
            // long as `self`; MSG_DONTWAIT, so it never blocks.
            let sent = unsafe {
                libc::sendto(
                    self.tx.as_raw_fd(),
                    core::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    core::ptr::null(),
                    0,
                )
            };
            let error = (sent < 0).then(std::io::Error::last_os_error);
            let left = self.tx.pending();
            if left < pending {
                pending = left;
                continue;
            }
            // No progress: the device is busy (try again later) or gone.
            return match error.and_then(|e| e.raw_os_error()) {
                None => true,
                Some(errno) => matches!(errno, libc::EAGAIN | libc::EBUSY | libc::ENOBUFS),
            };
        }
        false
    }

    /// The kernel's counters for this socket (XDP_STATISTICS): frames its XDP redirects
    /// could not place (RX ring full, fill ring empty), descriptors it rejected.
    pub fn statistics(&self) -> Option<SocketStats> {
        let s = self.user.statistics_v2().ok()?;
        Some(SocketStats {
            ifindex: self.ifindex,
            queue: self.queue,
            rx_dropped: s.rx_dropped,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty: s.rx_fill_ring_empty_descs,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            tx_ring_empty: s.tx_ring_empty_descs,
        })
    }
}

/// Moves up to `max` chunks from `pool` onto the fill ring in one reservation and one
/// commit; returns how many.
#[inline]
fn fill(ring: &mut DeviceQueue, pool: &mut FramePool, max: u32) -> u32 {
    let mut writer = ring.fill(max);
    let mut added = 0;
    for _ in 0..writer.capacity() {
        let Some(chunk) = pool.take() else { break };
        if !writer.insert_once(chunk) {
            pool.give(chunk);
            break;
        }
        added += 1;
    }
    writer.commit();
    added
}
