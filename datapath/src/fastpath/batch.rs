//! Reading a whole BPF array in a few syscalls (BPF_MAP_LOOKUP_BATCH), to adopt the
//! tables another ovnest left: one lookup per slot would be hundreds of thousands.

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd},
};

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Elements per syscall.
const CHUNK: u32 = 4096;

/// The `batch` member of `union bpf_attr` (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}
const _: () = assert!(size_of::<BatchAttr>() == 56);

/// Every element of the array behind `fd` (`len` of them), in index order.
pub(super) fn read_array<V: aya::Pod>(fd: BorrowedFd<'_>, len: u32) -> io::Result<Vec<V>> {
    let mut out: Vec<V> = Vec::with_capacity(len as usize);
    let mut keys = vec![0u32; CHUNK as usize];
    let mut values: Vec<V> = Vec::with_capacity(CHUNK as usize);
    let mut cursor: u32 = 0;
    let mut first = true;
    loop {
        let mut next: u32 = 0;
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                &cursor as *const u32 as u64
            },
            out_batch: &mut next as *mut u32 as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: CHUNK,
            map_fd: fd.as_raw_fd() as u32,
            ..Default::default()
        };
        // SAFETY: `attr` is the kernel's layout for this command; `keys` and `values`
        // have room for `count` elements of the map's key and value size (the caller's
        // `V` is the map's value type), and `next` for one key.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &mut attr as *mut BatchAttr,
                size_of::<BatchAttr>(),
            )
        };
        let done = rc != 0;
        if done {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOENT) {
                return Err(e);
            }
        }
        // SAFETY: the kernel filled the first `count` values (also on ENOENT, the last
        // partial batch).
        unsafe { values.set_len(attr.count as usize) };
        out.extend_from_slice(&values);
        values.clear();
        if done || out.len() >= len as usize {
            break;
        }
        cursor = next;
        first = false;
    }
    Ok(out)
}
