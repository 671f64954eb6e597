//! One AF_XDP socket: an interface queue's fill/completion rings and the socket's RX/TX
//! rings, all on its poll thread's shared UMEM.

use core::num::NonZeroU32;

use tracing::info;
use xdpilone::{DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, User};

use super::{AfXdpConfig, AfXdpError, BindMode};
use crate::pipeline::{BATCH, Desc, FramePool};

/// An XSK bound to `(ifindex, queue)`.
pub struct Xsk {
    pub ifindex: u32,
    pub queue: u32,
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

    /// Tops the fill ring up from `pool` in one batch, keeping `reserve` chunks in the pool
    /// for flood copies. Wakes the kernel only when it asked for it.
    #[inline]
    pub fn refill(&mut self, pool: &mut FramePool, reserve: usize) {
        let spare = pool.len().saturating_sub(reserve).min(BATCH * 2) as u32;
        if spare >= BATCH as u32 / 2 {
            let mut writer = self.fill_completion.fill(spare);
            for _ in 0..writer.capacity() {
                let Some(chunk) = pool.take() else { break };
                if !writer.insert_once(chunk) {
                    pool.give(chunk);
                    break;
                }
            }
            writer.commit();
        }
        if self.fill_completion.needs_wakeup() {
            self.fill_completion.wake();
        }
    }

    /// Chunks the fill ring should hold at start.
    pub fn prime(&mut self, pool: &mut FramePool, chunks: usize) {
        let mut writer = self.fill_completion.fill(chunks as u32);
        for _ in 0..writer.capacity() {
            let Some(chunk) = pool.take() else { break };
            if !writer.insert_once(chunk) {
                pool.give(chunk);
                break;
            }
        }
        writer.commit();
    }

    /// Puts `count` descriptors on the TX ring in one commit and kicks once if the kernel
    /// asked for it. What the ring cannot take goes back to `pool`; returns that number.
    #[inline]
    pub fn transmit(
        &mut self,
        count: u32,
        descs: &mut dyn Iterator<Item = Desc>,
        pool: &mut FramePool,
        frame_mask: u64,
    ) -> u32 {
        let mut writer = self.tx.transmit(count);
        for _ in 0..writer.capacity() {
            let Some(d) = descs.next() else { break };
            let desc = xdpilone::xdp::XdpDesc {
                addr: d.addr,
                len: d.len,
                options: 0,
            };
            if !writer.insert_once(desc) {
                pool.give(d.addr & !frame_mask);
                break;
            }
        }
        writer.commit();
        drop(writer);
        let mut refused = 0;
        for d in descs {
            pool.give(d.addr & !frame_mask);
            refused += 1;
        }
        if self.tx.needs_wakeup() {
            self.tx.wake();
        }
        refused
    }
}
