//! Frames as the AF_XDP rings hand them over: a [`Desc`] (address, length) into a UMEM
//! of equal power-of-two chunks, and a [`FramePool`] of free chunks for flood copies.
//!
//! The pipeline only ever touches the chunk a descriptor points into (its own frame) or a
//! chunk it took from the pool, so the kernel may be writing other chunks meanwhile.

use core::{marker::PhantomData, ptr::NonNull};

use ovnest_common::XdpMeta;
use ovnest_common::meta::XDP_META_MAGIC;

/// An RX/TX ring descriptor, laid out like the kernel's `struct xdp_desc`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    /// Offset of the first frame byte from the start of the UMEM.
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}
const _: () = assert!(size_of::<Desc>() == 16);

impl Desc {
    pub const fn new(addr: u64, len: u32) -> Self {
        Desc {
            addr,
            len,
            options: 0,
        }
    }
}

/// The UMEM area: `len` bytes at `base`, in chunks of `frame_size` (a power of two).
pub struct Umem<'a> {
    base: NonNull<u8>,
    len: usize,
    frame_size: usize,
    _area: PhantomData<&'a mut [u8]>,
}

// SAFETY: a `Umem` is a unique borrow of its area (see `from_raw`'s contract), like `&mut [u8]`.
unsafe impl Send for Umem<'_> {}

impl<'a> Umem<'a> {
    /// A UMEM over ordinary memory (tests, benches). `None` unless `frame_size` is a power
    /// of two of at least 256 bytes.
    pub fn new(area: &'a mut [u8], frame_size: u32) -> Option<Self> {
        let len = area.len();
        // SAFETY: the slice is uniquely borrowed for 'a and valid for `len` bytes.
        unsafe { Self::from_raw(NonNull::new(area.as_mut_ptr())?, len, frame_size) }
    }

    /// A UMEM over memory shared with the kernel.
    ///
    /// # Safety
    /// `base..base+len` must stay mapped and writable for `'a`, and for `'a` no one else in
    /// this process may access it. The kernel may write chunks this process has handed to
    /// the fill ring; the pipeline never touches those (it only touches descriptors it
    /// received and chunks it owns through its [`FramePool`]).
    pub unsafe fn from_raw(base: NonNull<u8>, len: usize, frame_size: u32) -> Option<Self> {
        let frame_size = frame_size as usize;
        if !frame_size.is_power_of_two() || frame_size < 256 {
            return None;
        }
        Some(Umem {
            base,
            len,
            frame_size,
            _area: PhantomData,
        })
    }

    pub fn frame_size(&self) -> u32 {
        self.frame_size as u32
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of whole chunks.
    pub fn chunks(&self) -> u64 {
        (self.len / self.frame_size) as u64
    }

    /// Start of the chunk holding `addr`.
    #[inline(always)]
    pub fn chunk_start(&self, addr: u64) -> u64 {
        addr & !(self.frame_size as u64 - 1)
    }

    /// The chunk holding `addr`, as a slice, and `addr`'s offset in it. `None` when the
    /// chunk is not entirely inside the area.
    #[inline(always)]
    pub fn chunk_mut(&mut self, addr: u64) -> Option<(&mut [u8], usize)> {
        let start = usize::try_from(self.chunk_start(addr)).ok()?;
        if start.checked_add(self.frame_size)? > self.len {
            return None;
        }
        let offset = (addr as usize) & (self.frame_size - 1);
        // SAFETY: start + frame_size <= len, so the range is inside the area; `&mut self`
        // makes this the only live slice into the area.
        let chunk = unsafe {
            core::slice::from_raw_parts_mut(self.base.as_ptr().add(start), self.frame_size)
        };
        Some((chunk, offset))
    }

    /// Two different chunks at once (a frame and its flood copy).
    #[inline(always)]
    pub fn chunk_pair_mut(&mut self, a: u64, b: u64) -> Option<(&mut [u8], &mut [u8])> {
        let (sa, sb) = (self.chunk_start(a), self.chunk_start(b));
        if sa == sb {
            return None;
        }
        let (sa, sb) = (usize::try_from(sa).ok()?, usize::try_from(sb).ok()?);
        if sa.checked_add(self.frame_size)? > self.len
            || sb.checked_add(self.frame_size)? > self.len
        {
            return None;
        }
        // SAFETY: both ranges are inside the area (checked above) and are distinct aligned
        // chunks, hence disjoint; `&mut self` keeps them the only live slices.
        unsafe {
            Some((
                core::slice::from_raw_parts_mut(self.base.as_ptr().add(sa), self.frame_size),
                core::slice::from_raw_parts_mut(self.base.as_ptr().add(sb), self.frame_size),
            ))
        }
    }

    /// A raw view for filling the UMEM before it is shared (benches, tests).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the whole area is valid for `len` bytes and uniquely borrowed via `&mut self`.
        unsafe { core::slice::from_raw_parts_mut(self.base.as_ptr(), self.len) }
    }
}

/// Takes the [`XdpMeta`] the XDP program left just before the frame at `offset` in
/// `chunk`, if its magic is there, and clears the magic so a later frame in this chunk that
/// arrives without metadata is never mistaken for a classified one.
#[inline(always)]
pub fn take_meta(chunk: &mut [u8], offset: usize) -> Option<XdpMeta> {
    const LEN: usize = size_of::<XdpMeta>();
    let start = offset.checked_sub(LEN)?;
    let bytes: &mut [u8; LEN] = chunk.get_mut(start..offset)?.try_into().ok()?;
    let magic = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != XDP_META_MAGIC {
        return None;
    }
    bytes[..4].fill(0);
    let u32_at =
        |i: usize| u32::from_ne_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let meta = XdpMeta {
        magic,
        ingress: ovnest_common::PortKey {
            datapath: u32_at(4),
            port: u32_at(8),
        },
        vid: u16::from_ne_bytes([bytes[12], bytes[13]]),
        flags: u16::from_ne_bytes([bytes[14], bytes[15]]),
    };
    Some(meta)
}

/// Writes `meta` before the frame at `offset` (what the XDP program does; tests, benches).
pub fn put_meta(chunk: &mut [u8], offset: usize, meta: &XdpMeta) -> Option<()> {
    let start = offset.checked_sub(size_of::<XdpMeta>())?;
    let bytes = chunk.get_mut(start..offset)?;
    bytes[0..4].copy_from_slice(&meta.magic.to_ne_bytes());
    bytes[4..8].copy_from_slice(&meta.ingress.datapath.to_ne_bytes());
    bytes[8..12].copy_from_slice(&meta.ingress.port.to_ne_bytes());
    bytes[12..14].copy_from_slice(&meta.vid.to_ne_bytes());
    bytes[14..16].copy_from_slice(&meta.flags.to_ne_bytes());
    Some(())
}

/// Free UMEM chunks, as chunk start addresses. Fixed capacity: never allocates after
/// construction.
#[derive(Debug)]
pub struct FramePool {
    free: Vec<u64>,
    /// Where a new frame starts inside a chunk: room for a pushed tag and XDP metadata.
    headroom: u32,
}

impl FramePool {
    /// An empty pool able to hold `capacity` chunks.
    pub fn with_capacity(capacity: usize, headroom: u32) -> Self {
        FramePool {
            free: Vec::with_capacity(capacity),
            headroom,
        }
    }

    /// Offset of a frame written into a fresh chunk.
    pub fn headroom(&self) -> u32 {
        self.headroom
    }

    /// Takes a free chunk (its start address).
    #[inline(always)]
    pub fn take(&mut self) -> Option<u64> {
        self.free.pop()
    }

    /// Gives back a chunk (any address inside it). Past capacity (a double free) it is
    /// dropped rather than grow the pool.
    #[inline(always)]
    pub fn give(&mut self, chunk_start: u64) {
        if self.free.len() < self.free.capacity() {
            self.free.push(chunk_start);
        }
    }

    pub fn len(&self) -> usize {
        self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.free.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.free.capacity()
    }
}
