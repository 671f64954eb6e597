//! The XDP fast path: the embedded program, where it is attached, and its tables.
//!
//! [`FastPath`] is the only writer of the program's maps. It remembers the [`TableSet`]
//! it installed, so [`FastPath::apply`] writes only the difference (never flush and
//! reload: traffic of untouched ports never sees a gap).

pub mod bench;
mod counters;
mod flat;
mod handle;
pub mod layout;
mod maps;
mod object;
mod test_run;

use std::collections::BTreeMap;

use aya::{
    Ebpf, EbpfLoader,
    programs::{
        ProgramError, TestRun, TestRunOptions, TestRunResult, Xdp, XdpMode, xdp::XdpLinkId,
    },
};
pub use counters::Counters;
use log::warn;
pub use test_run::TestRunner;

use self::layout::KernelTables;
use crate::tables::{TableDiff, TableSet};

const PROGRAM: &str = "vif_ingress";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FastPathError {
    #[error("loading the XDP object: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("XDP program: {0}")]
    Program(#[from] ProgramError),
    #[error("BPF map {map}: {source}")]
    Map {
        map: &'static str,
        source: aya::maps::MapError,
    },
    #[error("device map entry for ifindex {ifindex}: {source}")]
    Device {
        ifindex: u32,
        source: aya::maps::xdp::XdpMapError,
    },
    #[error("BPF map {map} missing from the XDP object")]
    MissingMap { map: &'static str },
    #[error("attaching XDP to ifindex {ifindex} failed in native and in generic mode: {source}")]
    Attach { ifindex: u32, source: ProgramError },
    #[error("interface {0} has no XDP program of ours attached")]
    NotAttached(u32),
}

/// How the program ended up attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (native XDP).
    Native,
    /// In the generic (skb) path: correct but slower.
    Generic,
}

/// The loaded XDP program and its maps.
pub struct FastPath {
    ebpf: Ebpf,
    links: BTreeMap<u32, (XdpLinkId, AttachMode)>,
    installed: TableSet,
    installed_kernel: KernelTables,
    flat: flat::FlatTables,
}

impl FastPath {
    /// Loads the embedded program into the kernel (not yet attached anywhere).
    pub fn load() -> Result<Self, FastPathError> {
        FastPath::load_with(false)
    }

    /// Like [`FastPath::load`]; with `all_to_userspace` every classified frame goes to the
    /// AF_XDP datapath (`--datapath afxdp`) instead of being forwarded in XDP.
    pub fn load_with(all_to_userspace: bool) -> Result<Self, FastPathError> {
        let mut ebpf = EbpfLoader::new()
            .override_global("ALL_TO_USERSPACE", &u8::from(all_to_userspace), true)
            .load(object::XDP_OBJECT)?;
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or(FastPathError::MissingMap { map: PROGRAM })?
            .try_into()?;
        program.load()?;
        Ok(FastPath {
            ebpf,
            links: BTreeMap::new(),
            installed: TableSet::default(),
            installed_kernel: KernelTables::default(),
            flat: flat::FlatTables::new(),
        })
    }

    /// Leaves the flat tables empty, so the program finds every key through the hash
    /// maps: the path keys take when their flat window is full. For tests; call it
    /// before the first [`FastPath::apply`].
    pub fn hash_lookups_only(mut self) -> Self {
        self.flat.enabled = false;
        self
    }

    fn program(&self) -> Result<&Xdp, FastPathError> {
        let program = self
            .ebpf
            .program(PROGRAM)
            .ok_or(FastPathError::MissingMap { map: PROGRAM })?;
        Ok(<&Xdp>::try_from(program)?)
    }

    fn program_mut(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(PROGRAM)
            .and_then(|p| <&mut Xdp>::try_from(p).ok())
            .expect("XDP program present since load()")
    }

    /// Attaches to `ifindex` in native mode, falling back to generic mode with a warning.
    /// Attaching twice is a no-op.
    pub fn attach(&mut self, ifindex: u32) -> Result<AttachMode, FastPathError> {
        if let Some((_, mode)) = self.links.get(&ifindex) {
            return Ok(*mode);
        }
        let program = self.program_mut();
        let (link, mode) = match program.attach(ifindex, XdpMode::Driver) {
            Ok(link) => (link, AttachMode::Native),
            Err(native) => {
                warn!("ifindex {ifindex}: native XDP refused ({native}); using generic mode");
                let link = program
                    .attach(ifindex, XdpMode::Skb)
                    .map_err(|source| FastPathError::Attach { ifindex, source })?;
                (link, AttachMode::Generic)
            }
        };
        self.links.insert(ifindex, (link, mode));
        Ok(mode)
    }

    /// Detaches from `ifindex`.
    pub fn detach(&mut self, ifindex: u32) -> Result<(), FastPathError> {
        let (link, _) = self
            .links
            .remove(&ifindex)
            .ok_or(FastPathError::NotAttached(ifindex))?;
        self.program_mut().detach(link)?;
        Ok(())
    }

    /// Interfaces the program is attached to, with their mode.
    pub fn attached(&self) -> impl Iterator<Item = (u32, AttachMode)> + '_ {
        self.links
            .iter()
            .map(|(ifindex, (_, mode))| (*ifindex, *mode))
    }

    /// Makes the maps hold `desired`, writing only what differs from what is installed.
    /// Returns the logical difference. On error the installed view stays the last fully
    /// applied state, so the next call retries the rest.
    pub fn apply(&mut self, desired: &TableSet) -> Result<TableDiff, FastPathError> {
        let diff = self.installed.diff(desired);
        if !diff.is_empty() {
            let kernel = KernelTables::of(desired);
            let diff = self.installed_kernel.diff(&kernel);
            maps::apply(&mut self.ebpf, &diff, &mut self.flat)?;
            self.installed = desired.clone();
            self.installed_kernel = kernel;
            let overflow = self.flat_overflow();
            if overflow > 0 {
                log::debug!(
                    "{overflow} keys found no flat slot; the program looks them up by hash"
                );
            }
        }
        Ok(diff)
    }

    /// Keys of the VIF, child and L2 tables that found no free slot in their flat table's
    /// probe window, so the program reaches them through the hash map (slower, same result).
    pub fn flat_overflow(&self) -> usize {
        let k = &self.installed_kernel;
        self.flat.vifs.overflow(k.vifs.len())
            + self.flat.children.overflow(k.children.len())
            + self.flat.macs.overflow(k.macs.len())
    }

    /// What the maps hold, as far as this process wrote them.
    pub fn installed(&self) -> &TableSet {
        &self.installed
    }

    /// Verdict and drop counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, FastPathError> {
        counters::read(&self.ebpf)
    }

    /// Traffic of the port whose `stats_slot` is `slot`, summed over CPUs.
    pub fn port_stats(&self, slot: u32) -> Result<ovnest_common::PortStats, FastPathError> {
        counters::port_stats(&self.ebpf, slot)
    }

    /// Registers an AF_XDP socket for `ifindex`'s queue `queue` at XSKMAP index `index`.
    pub fn register_xsk(
        &mut self,
        ifindex: u32,
        index: u32,
        n_queues: u32,
        queue: u32,
        fd: impl std::os::fd::AsRawFd,
    ) -> Result<(), FastPathError> {
        maps::register_xsk(&mut self.ebpf, ifindex, index, n_queues, queue, fd)
    }

    /// Runs the program once on `frame` as if it arrived on `ifindex` queue 0
    /// (BPF_PROG_TEST_RUN). The rewritten frame is left in `out`.
    pub fn test_run(
        &self,
        ifindex: u32,
        frame: &[u8],
        out: &mut [u8],
    ) -> Result<TestRunResult, FastPathError> {
        test_run(self.program()?, ifindex, frame, Some(out))
    }

    /// [`FastPath::test_run`] without the output frame, when only the verdict and the
    /// kernel's timing matter. Nothing is transmitted.
    pub fn test_run_timed(
        &self,
        ifindex: u32,
        frame: &[u8],
    ) -> Result<TestRunResult, FastPathError> {
        test_run(self.program()?, ifindex, frame, None)
    }

    /// A handle that runs the program with BPF_PROG_TEST_RUN from another thread, while
    /// this one keeps updating the maps.
    pub fn test_runner(&self) -> Result<TestRunner, FastPathError> {
        use std::os::fd::AsFd as _;
        let fd = self.program()?.fd()?.as_fd().try_clone_to_owned();
        Ok(TestRunner::new(fd.map_err(|e| {
            FastPathError::Program(ProgramError::IOError(e))
        })?))
    }

    /// Runs the program `repeat` times on fresh copies of `frame` in live-frames mode:
    /// XDP_TX and redirects really transmit. Returns the kernel's total run time.
    pub fn test_run_live(
        &self,
        ifindex: u32,
        frame: &[u8],
        repeat: u32,
        batch: u32,
    ) -> Result<TestRunResult, FastPathError> {
        test_run_live(self.program()?, ifindex, frame, repeat, batch)
    }
}

/// One BPF_PROG_TEST_RUN of `program` on `frame` arriving on `ifindex` queue 0.
fn test_run(
    program: &Xdp,
    ifindex: u32,
    frame: &[u8],
    out: Option<&mut [u8]>,
) -> Result<TestRunResult, FastPathError> {
    let ctx = xdp_md(ifindex, frame.len());
    let opts = TestRunOptions {
        data_in: Some(frame),
        data_out: out,
        ctx_in: Some(&ctx),
        ..Default::default()
    };
    Ok(program.test_run(opts)?)
}

/// `repeat` runs of `program` in live-frames mode, flushed every `batch` frames.
fn test_run_live(
    program: &Xdp,
    ifindex: u32,
    frame: &[u8],
    repeat: u32,
    batch: u32,
) -> Result<TestRunResult, FastPathError> {
    let ctx = xdp_md(ifindex, frame.len());
    let opts = TestRunOptions {
        data_in: Some(frame),
        ctx_in: Some(&ctx),
        repeat,
        attrs: aya::programs::TestRunAttrs::new().xdp_live_frames(batch),
        ..Default::default()
    };
    Ok(program.test_run(opts)?)
}

/// A `struct xdp_md` for BPF_PROG_TEST_RUN: no metadata, the frame's length, the ingress
/// interface (it must exist in the caller's network namespace), queue 0.
fn xdp_md(ifindex: u32, len: usize) -> [u8; 24] {
    let fields = [0u32, len as u32, 0, ifindex, 0, 0]; // data, data_end, data_meta, ingress, rxq, egress
    let mut ctx = [0u8; 24];
    for (chunk, field) in ctx.as_chunks_mut::<4>().0.iter_mut().zip(fields) {
        *chunk = field.to_ne_bytes();
    }
    ctx
}
