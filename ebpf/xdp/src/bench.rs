//! Packet-rate tooling for `ovnest bench`, kept beside the product so generator, sink and
//! baseline run on exactly the same kernel path:
//! - `bench_tx`: run by BPF_PROG_TEST_RUN in live-frames mode on a VM's interface, it
//!   transmits each injected frame out of that interface (the generator);
//! - `bench_sink`: on the destination VM's interface, counts frames and drops them (the
//!   receiver, cheaper than any socket so it never limits the figure).

use aya_ebpf::{
    bindings::xdp_action, helpers::generated::bpf_xdp_store_bytes, macros::xdp,
    programs::XdpContext,
};
use ovnest_common::maps::{BENCH_TEMPLATE_BYTES, BenchTemplate};

use crate::maps::{
    BENCH_CREDIT, BENCH_FLOWS, BENCH_NEXT, BENCH_PACE, BENCH_RECEIVED, BENCH_SENT, BENCH_TEMPLATES,
};

/// Pacing: with `BENCH_PACE` = p (1..1024), transmits p of every 1024 repetitions, evenly
/// spread; the others are dropped here, which costs the generator about as much time as
/// a transmitted frame, so the offered rate is lowered without bursts.
#[inline(always)]
fn paced_out() -> bool {
    let pace = BENCH_PACE.get(0).copied().unwrap_or(0);
    if pace == 0 || pace >= 1024 {
        return false;
    }
    let Some(credit) = BENCH_CREDIT.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU slot, only this CPU touches it while the program runs.
    unsafe {
        *credit += pace;
        if *credit < 1024 {
            return true;
        }
        *credit -= 1024;
    }
    false
}

#[inline(always)]
fn count_sent() {
    if let Some(sent) = BENCH_SENT.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *sent += 1 };
    }
}

/// Live-frames pages are recycled without being refilled, and the datapath under test
/// rewrites them (strip, push). So each repetition first writes back the bytes of the
/// next flow's template: the datapath always sees the frame the bench asked for.
#[xdp]
pub fn bench_tx(ctx: XdpContext) -> u32 {
    if paced_out() {
        return xdp_action::XDP_DROP;
    }
    let flows = BENCH_FLOWS.get(0).copied().unwrap_or(0);
    if flows == 0 {
        count_sent();
        return xdp_action::XDP_TX;
    }
    let Some(next) = BENCH_NEXT.get_ptr_mut(0) else {
        return xdp_action::XDP_ABORTED;
    };
    // SAFETY: per-CPU slot, only this CPU touches it while the program runs.
    let flow = unsafe {
        let flow = *next % flows;
        *next = (*next).wrapping_add(1);
        flow
    };
    let Some(template) = BENCH_TEMPLATES.get_ptr(flow) else {
        return xdp_action::XDP_ABORTED;
    };
    // SAFETY: a map value pointer from the lookup above, valid for the whole program.
    let template: &BenchTemplate = unsafe { &*template };
    let len = template.len as usize;
    if len == 0 || len > BENCH_TEMPLATE_BYTES || len != ctx.data_end() - ctx.data() {
        return xdp_action::XDP_ABORTED;
    }
    // SAFETY: the helper bounds-checks offset + len against the packet; the source is
    // `len` (<= BENCH_TEMPLATE_BYTES) bytes inside the map value.
    let rc =
        unsafe { bpf_xdp_store_bytes(ctx.ctx, 0, template.bytes.as_ptr() as *mut _, len as u32) };
    if rc != 0 {
        return xdp_action::XDP_ABORTED;
    }
    count_sent();
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
