//! BPF_PROG_TEST_RUN through a handle of its own: a [`TestRunner`] owns a duplicate of the
//! program's fd and is `Send`, so test threads can run the program while another thread
//! updates its maps through the [`super::FastPath`] (the race-freedom stress test does).

use std::{
    io,
    os::fd::{AsRawFd as _, OwnedFd},
};

/// `bpf(2)` command number of BPF_PROG_TEST_RUN (include/uapi/linux/bpf.h).
const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// The `test` member of `union bpf_attr` (include/uapi/linux/bpf.h), up to `batch_size`.
#[repr(C)]
#[derive(Default)]
struct TestAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}
const _: () = assert!(size_of::<TestAttr>() == 80);

/// Runs one loaded program with BPF_PROG_TEST_RUN, from any thread.
#[derive(Debug)]
pub struct TestRunner {
    prog: OwnedFd,
}

impl TestRunner {
    pub(super) fn new(prog: OwnedFd) -> TestRunner {
        TestRunner { prog }
    }

    /// Runs the program once on `frame` as if it arrived on `ifindex` (which must exist in
    /// the calling thread's namespace), queue 0. Returns the verdict and the length of
    /// the rewritten frame left in `out`.
    pub fn run(&self, ifindex: u32, frame: &[u8], out: &mut [u8]) -> io::Result<(u32, usize)> {
        let ctx = super::xdp_md(ifindex, frame.len());
        let mut attr = TestAttr {
            prog_fd: self.prog.as_raw_fd() as u32,
            data_size_in: frame.len() as u32,
            data_size_out: out.len() as u32,
            data_in: frame.as_ptr() as u64,
            data_out: out.as_mut_ptr() as u64,
            repeat: 1,
            ctx_size_in: ctx.len() as u32,
            ctx_in: ctx.as_ptr() as u64,
            ..Default::default()
        };
        // SAFETY: `attr` is the kernel's layout for this command, zero beyond the fields
        // set; every pointer in it refers to a live buffer of the size given next to it,
        // and the kernel writes at most `data_size_out` bytes into `out`.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_TEST_RUN,
                &mut attr as *mut TestAttr,
                size_of::<TestAttr>(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((attr.retval, (attr.data_size_out as usize).min(out.len())))
    }
}
