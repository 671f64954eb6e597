//! Packet-rate tooling for `ovnest bench`, kept beside the product so generator, sink and
//! baseline run on exactly the same kernel path:
//! - `bench_tx`: run by BPF_PROG_TEST_RUN in live-frames mode on a VM's interface, it
//!   transmits each injected frame out of that interface (the generator);
//! - `bench_sink`: on the destination VM's interface, counts frames and drops them (the
//!   receiver, cheaper than any socket so it never limits the figure).

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

use crate::maps::BENCH_RECEIVED;

#[xdp]
pub fn bench_tx(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_TX
}

#[xdp]
pub fn bench_sink(_ctx: XdpContext) -> u32 {
    if let Some(count) = BENCH_RECEIVED.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *count += 1 };
    }
    xdp_action::XDP_DROP
}
