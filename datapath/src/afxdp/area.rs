//! The UMEM's memory: an anonymous, page-aligned mapping owned by one poll thread.

use core::ptr::NonNull;
use std::io;

/// `len` bytes of anonymous memory, unmapped on drop.
pub struct Area {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; moving it to another thread
// moves the ownership with it.
unsafe impl Send for Area {}

impl Area {
    /// Maps `len` bytes (rounded up by the kernel to whole pages), populated up front so
    /// the hot loop takes no page faults.
    pub fn new(len: usize) -> io::Result<Area> {
        // SAFETY: an anonymous private mapping with no address hint has no preconditions;
        // the result is checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Area { base, len })
    }

    pub fn base(&self) -> NonNull<u8> {
        self.base
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The whole area as a raw slice pointer, for `xdpilone::Umem::new`.
    pub fn as_ptr_slice(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.base, self.len)
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: base/len are exactly what mmap returned; the owner (the worker) drops its
        // sockets, which reference the area, before the area (field order).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}
