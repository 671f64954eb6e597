//! The generator and the receiver of `ovnest bench`, on the same kernel path as the
//! datapath under test:
//! - `bench_tx`: run by BPF_PROG_TEST_RUN in live-frames mode on a VM's interface, it
//!   transmits each injected frame out of that interface (the generator);
//! - `bench_sink`: on the destination VM's interface, counts frames and drops them (the
//!   receiver, cheaper than any socket so it never limits the figure);
//! - `bench_capture`: counts and drops like the sink, and keeps a copy of the last frame
//!   (`ovnest bench --tunnel` reads the Geneve frames a hypervisor sends; never attached
//!   while a rate is measured).

use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::{bpf_ktime_get_ns, bpf_xdp_load_bytes, bpf_xdp_store_bytes},
    macros::xdp,
    programs::XdpContext,
};
use ovnest_common::maps::{BENCH_TEMPLATE_BYTES, BenchTemplate};

use crate::maps::{
    BENCH_CAPTURED, BENCH_DUE_NS, BENCH_FLOWS, BENCH_GAP_NS, BENCH_NEXT, BENCH_RECEIVED,
    BENCH_SENT, BENCH_SEQ, BENCH_SEQ_AT, BENCH_TEMPLATES,
};

/// How far behind its schedule the generator may fall and still catch up (back to back);
/// after a longer stall (the end of a BPF_PROG_TEST_RUN call) the schedule restarts, so
/// the target never sees a burst longer than this.
const MAX_LAG_NS: u64 = 2_000;
/// Upper bound of one wait, in clock reads (a clock read costs tens of ns): rates down
/// to a few tens of kpps are paced exactly, lower ones run slightly fast.
const MAX_SPINS: u32 = 4_096;

/// Rate control: holds the frame until its departure time (`BENCH_GAP_NS` after the
/// previous one). The generator waits instead of dropping frames to pace itself: a
/// dropped live frame returns its page to the pool the datapath under test returns its
/// pages to, under the same lock, which would load the target with the generator's work.
#[inline(always)]
fn wait_departure() {
    let gap = BENCH_GAP_NS.get(0).copied().unwrap_or(0);
    if gap == 0 {
        return;
    }
    let Some(due) = BENCH_DUE_NS.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: bpf_ktime_get_ns has no preconditions; `due` is this CPU's slot, only this
    // CPU touches it while the program runs.
    unsafe {
        let mut now = bpf_ktime_get_ns();
        let mut departure = *due;
        if now > departure + MAX_LAG_NS {
            departure = now;
        }
        let mut spins = 0;
        while now < departure && spins < MAX_SPINS {
            now = bpf_ktime_get_ns();
            spins += 1;
        }
        *due = departure + gap;
    }
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
    wait_departure();
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
    if !new_flow(&ctx) {
        return xdp_action::XDP_ABORTED;
    }
    count_sent();
    xdp_action::XDP_TX
}

/// New-flows mode: writes the next sequence number at `BENCH_SEQ_AT`. False when the
/// frame cannot hold it.
#[inline(always)]
fn new_flow(ctx: &XdpContext) -> bool {
    let at = BENCH_SEQ_AT.get(0).copied().unwrap_or(0);
    if at == 0 {
        return true;
    }
    let Some(seq) = BENCH_SEQ.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU slot, only this CPU touches it while the program runs; the helper
    // bounds-checks offset + 4 against the packet, the source is 4 bytes on the stack.
    unsafe {
        let mut bytes = (*seq).to_be_bytes();
        *seq = (*seq).wrapping_add(1);
        bpf_xdp_store_bytes(ctx.ctx, at, bytes.as_mut_ptr() as *mut _, 4) == 0
    }
}

#[xdp]
pub fn bench_sink(_ctx: XdpContext) -> u32 {
    if let Some(count) = BENCH_RECEIVED.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *count += 1 };
    }
    xdp_action::XDP_DROP
}

#[xdp]
pub fn bench_capture(ctx: XdpContext) -> u32 {
    if let Some(count) = BENCH_RECEIVED.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *count += 1 };
    }
    let Some(slot) = BENCH_CAPTURED.get_ptr_mut(0) else {
        return xdp_action::XDP_DROP;
    };
    let len = ctx.data_end() - ctx.data();
    // SAFETY: a read of a local just written; volatile so LLVM keeps the bounds checks
    // below on this value, not on `data_end` arithmetic the verifier refuses.
    let len: usize = unsafe { core::ptr::read_volatile(&len) };
    // Checked at full width: the helper is given this register, and the verifier must
    // know its bounds (a check on a 32-bit copy leaves the original unbounded).
    if len == 0 || len > BENCH_TEMPLATE_BYTES {
        return xdp_action::XDP_DROP;
    }
    // SAFETY: `slot` is the map value (one capture at a time: the bench sends slowly
    // while it captures); the helper bounds-checks 0..len against the packet, and the
    // destination holds BENCH_TEMPLATE_BYTES >= len bytes.
    unsafe {
        if bpf_xdp_load_bytes(ctx.ctx, 0, (*slot).bytes.as_mut_ptr() as *mut _, len as u32) == 0 {
            (*slot).len = len as u32;
        }
    }
    xdp_action::XDP_DROP
}
