//! `ovnest bench`'s XDP programs, an object of their own so that the product's object
//! (`ovnest run`) carries none of their maps (the generator's frames alone are 1.5 MB):
//! - `bench_tx`, `bench_sink` and `bench_capture` ([`generator`]): the traffic generator,
//!   the receiver, and a receiver that keeps the last frame;
//! - `baseline_strip_redirect` ([`baseline`]): what ovnest's fast path is measured against.
//!
//! The baseline strips tags with the product's own `vlan` code (same file), so the two
//! differ only in what the fast path adds.
// On the host (`cargo test --workspace`, clippy) the crate builds as an empty binary.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// frame.rs (shared with the fast path) holds inline assembly for the BPF target.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

mod baseline;
// The product's header layouts and tag surgery, compiled into this object too; the
// helpers the bench does not call are dead code here.
#[allow(dead_code)]
#[path = "../frame.rs"]
mod frame;
mod generator;
mod maps;
#[allow(dead_code)]
#[path = "../vlan.rs"]
mod vlan;

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(target_arch = "bpf")]
// SAFETY: the kernel reads the licence from the section of this name; the symbol name is
// unique in the object.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
