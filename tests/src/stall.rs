//! Interrupted readers on demand: a per-thread software timer (perf `cpu-clock`) fires
//! every few tens of microseconds while the thread runs, and a BPF program attached to it
//! busy-waits in the interrupt, so whatever the thread was doing (such as running the XDP
//! program under BPF_PROG_TEST_RUN) pauses at a random point, as hard interrupts and
//! vCPU preemption pause XDP on a real host. Other threads are not touched.
//!
//! The program is four instructions assembled here (no object file), loaded with
//! BPF_PROG_LOAD as `BPF_PROG_TYPE_PERF_EVENT` and attached with PERF_EVENT_IOC_SET_BPF;
//! dropping the [`Interrupts`] closes the event and unloads it.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    time::Duration,
};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TYPE_PERF_EVENT: u32 = 7;
const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_CPU_CLOCK: u64 = 0;
/// `_IOW('$', 8, __u32)` and `_IO('$', 0)` (include/uapi/linux/perf_event.h).
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;

/// While alive, the thread is interrupted every `every` of its running time and held
/// for `spins` iterations (about a nanosecond each with the JIT) each time.
pub struct Interrupts {
    _event: OwnedFd,
    _prog: OwnedFd,
}

/// One `struct bpf_insn`.
fn insn(code: u8, dst: u8, off: i16, imm: i32) -> u64 {
    let mut bytes = [0u8; 8];
    bytes[0] = code;
    bytes[1] = dst & 0x0f;
    bytes[2..4].copy_from_slice(&off.to_ne_bytes());
    bytes[4..8].copy_from_slice(&imm.to_ne_bytes());
    u64::from_ne_bytes(bytes)
}

/// The calling thread's id.
pub fn current_tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// A new fd from a syscall's return value.
fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall succeeded and returned a new file descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn put(attr: &mut [u8], offset: usize, bytes: &[u8]) {
    attr[offset..offset + bytes.len()].copy_from_slice(bytes);
}

impl Interrupts {
    /// Interrupts thread `tid` every `every` of CPU time it uses, for `spins` each.
    pub fn on_thread(tid: i32, every: Duration, spins: i32) -> io::Result<Interrupts> {
        let program = [
            insn(0xb7, 1, 0, 0),      // r1 = 0
            insn(0x07, 1, 0, 1),      // r1 += 1
            insn(0xa5, 1, -2, spins), // if r1 < spins goto -2
            insn(0xb7, 0, 0, 0),      // r0 = 0
            insn(0x95, 0, 0, 0),      // exit
        ];
        let license = CString::new("GPL").expect("no NUL");
        // union bpf_attr, BPF_PROG_LOAD part (include/uapi/linux/bpf.h).
        let mut attr = [0u8; 144];
        put(&mut attr, 0, &BPF_PROG_TYPE_PERF_EVENT.to_ne_bytes());
        put(&mut attr, 4, &(program.len() as u32).to_ne_bytes());
        put(&mut attr, 8, &(program.as_ptr() as u64).to_ne_bytes());
        put(&mut attr, 16, &(license.as_ptr() as u64).to_ne_bytes());
        // SAFETY: `attr` is a zero-padded BPF_PROG_LOAD attribute whose pointers refer to
        // `program` and `license`, both alive for the call.
        let prog = owned(unsafe {
            libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, attr.as_mut_ptr(), attr.len())
        })?;

        // struct perf_event_attr, first version (PERF_ATTR_SIZE_VER0 = 64 bytes).
        let mut event = [0u8; 64];
        put(&mut event, 0, &PERF_TYPE_SOFTWARE.to_ne_bytes());
        put(&mut event, 4, &64u32.to_ne_bytes());
        put(&mut event, 8, &PERF_COUNT_SW_CPU_CLOCK.to_ne_bytes());
        put(&mut event, 16, &(every.as_nanos() as u64).to_ne_bytes()); // sample_period
        put(&mut event, 40, &1u64.to_ne_bytes()); // flags: disabled
        // SAFETY: `event` is a perf_event_attr of the size it declares; the other
        // arguments are plain integers.
        let event = owned(unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                event.as_ptr(),
                tid,
                -1,
                -1,
                PERF_FLAG_FD_CLOEXEC,
            )
        })?;
        // SAFETY: both ioctls take an integer argument (a prog fd, or nothing).
        unsafe {
            if libc::ioctl(event.as_raw_fd(), PERF_EVENT_IOC_SET_BPF, prog.as_raw_fd()) != 0
                || libc::ioctl(event.as_raw_fd(), PERF_EVENT_IOC_ENABLE, 0) != 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Interrupts {
            _event: event,
            _prog: prog,
        })
    }
}
