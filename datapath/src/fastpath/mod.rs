//! The XDP fast path: the embedded program, where it is attached, and its tables.
//!
//! [`FastPath`] is the only writer of the program's maps. It keeps a mirror of what they
//! hold, so [`FastPath::apply`] writes only the difference (never flush and reload:
//! traffic of untouched ports never sees a gap), replacing entries so a frame is never
//! decided from half of one (`flat`).
//!
//! With a pin directory ([`FastPath::open`], `pins`) the datapath outlives the process:
//! maps and XDP links are pinned, a new ovnest adopts them, reads the tables back and
//! moves the links to its own program with `bpf_link_update` (atomic: no frame is
//! handled by neither). A new build whose map layouts changed fills new maps first and
//! moves the links after its first complete [`FastPath::apply`]. Without a pin
//! directory ([`FastPath::load`]) everything goes with the process, as tests want.

mod batch;
pub mod bench;
mod cache;
mod counters;
mod flat;
mod handle;
pub mod layout;
mod maps;
mod object;
pub mod pins;
mod test_run;
mod underlay;

use std::{
    collections::{BTreeMap, BTreeSet},
    os::fd::AsFd as _,
    path::PathBuf,
};

use aya::{
    Ebpf, EbpfLoader,
    programs::{
        ProgramError, TestRun, TestRunOptions, TestRunResult, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::XdpLink,
    },
};
pub use cache::{CacheCounters, Decisions};
pub use counters::Counters;
pub use pins::PinDir;
pub use test_run::TestRunner;
use tracing::{info, warn};

use self::{layout::KernelTables, pins::MapLayout};
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
    #[error("{keys} table entries found no free slot (tables full)")]
    Full { keys: usize },
    #[error("waiting for a grace period (membarrier): {0}")]
    GracePeriod(std::io::Error),
    #[error("pin directory {dir}: {source}")]
    Pins {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("XDP link on ifindex {ifindex}: {why}")]
    Link { ifindex: u32, why: String },
}

/// How the program ended up attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (native XDP).
    Native,
    /// In the generic (skb) path: correct but slower.
    Generic,
}

/// How to open the fast path.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Pin maps and links here and adopt what is pinned there; `None`: nothing outlives
    /// the process.
    pub pins: Option<PinDir>,
    /// Who decides what a classified frame gets (`--datapath`).
    pub decisions: Decisions,
    /// Maps whose layout version is taken as one more than this build's: what a new
    /// build with a changed layout does (upgrade tests).
    pub newer_layout: Vec<String>,
}

/// Where the links stand relative to this process's program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Takeover {
    /// Every link runs this program.
    Done,
    /// Adopted links run an older program over maps this one does not share: they move
    /// after the first complete `apply` fills this program's maps.
    AfterApply,
    /// Adopted links run an older program and this one hands frames to userspace
    /// (`hybrid`, `afxdp`): they move once this process's AF_XDP datapath serves
    /// ([`FastPath::userspace_serving`]) and the tables are applied. Until then the older
    /// program forwards from its own decision cache, which dies with it: this one starts
    /// with an empty cache, so no decision of an earlier pipeline outlives its program.
    WhenServing { applied: bool },
}

/// One attachment: the link, and where it is pinned.
struct Attached {
    link: FdLink,
    mode: AttachMode,
    pin: Option<PathBuf>,
    program_id: u32,
}

/// The loaded XDP program and its maps.
pub struct FastPath {
    ebpf: Ebpf,
    tables: maps::Tables,
    links: BTreeMap<u32, Attached>,
    installed: TableSet,
    pins: Option<PinDir>,
    /// This program's map pins (other pins in the directory belong to older layouts).
    map_pins: Vec<PathBuf>,
    takeover: Takeover,
    program_id: u32,
    /// How the program decides (set at load).
    decisions: Decisions,
    /// The underlay program's links, by ifindex, and their pins (see [`underlay`]).
    underlay_links: BTreeMap<u32, (FdLink, Option<PathBuf>)>,
}

impl FastPath {
    /// Loads the embedded program into the kernel (not yet attached anywhere), with
    /// maps of its own that go with the process.
    pub fn load() -> Result<Self, FastPathError> {
        FastPath::open(&Options::default())
    }

    /// Like [`FastPath::load`]; with `all_to_userspace` every classified frame goes to the
    /// AF_XDP datapath (`--datapath afxdp`) instead of being forwarded in XDP.
    pub fn load_with(all_to_userspace: bool) -> Result<Self, FastPathError> {
        FastPath::load_decisions(if all_to_userspace {
            Decisions::Userspace
        } else {
            Decisions::Physical
        })
    }

    /// Loads the program; with `options.pins`, adopts the maps and links pinned there
    /// (see the module doc) and pins what it creates.
    pub fn open(options: &Options) -> Result<Self, FastPathError> {
        let decisions = options.decisions.normalized();
        let parsed = match &options.pins {
            Some(pins) => {
                pins.prepare().map_err(|source| FastPathError::Pins {
                    dir: pins.path().to_owned(),
                    source,
                })?;
                Some(aya_obj::Object::parse(object::XDP_OBJECT).map_err(|e| {
                    FastPathError::Pins {
                        dir: pins.path().to_owned(),
                        source: std::io::Error::other(e),
                    }
                })?)
            }
            None => None,
        };
        let mut loader = EbpfLoader::new();
        cache::configure(&mut loader, decisions);
        let mut map_pins = Vec::new();
        let mut adopted = BTreeSet::new();
        let mut fresh = BTreeSet::new();
        if let (Some(pins), Some(parsed)) = (&options.pins, &parsed) {
            for (name, path) in map_pins_of(pins, parsed, &options.newer_layout) {
                if path.exists() {
                    adopted.insert(name.to_owned());
                } else {
                    fresh.insert(name.to_owned());
                }
                loader.map_pin_path(name, path.clone());
                map_pins.push(path);
            }
        }
        let mut ebpf = loader.load(object::XDP_OBJECT)?;
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or(FastPathError::MissingMap { map: PROGRAM })?
            .try_into()?;
        program.load()?;
        let program_id = program.info()?.id();
        underlay::load(&mut ebpf)?;
        let tables = maps::Tables::open(&mut ebpf, &|name| adopted.contains(name))?;
        let mut fast_path = FastPath {
            ebpf,
            tables,
            links: BTreeMap::new(),
            installed: TableSet::default(),
            pins: options.pins.clone(),
            map_pins,
            takeover: Takeover::Done,
            program_id,
            decisions,
            underlay_links: BTreeMap::new(),
        };
        if fast_path.pins.is_some() {
            fast_path.adopt_links()?;
            fast_path.adopt_underlays()?;
            let behind = fast_path
                .links
                .values()
                .any(|a| a.program_id != fast_path.program_id);
            if behind && decisions != Decisions::Physical {
                info!(
                    "the running program keeps forwarding until this ovnest's userspace \
                     datapath serves"
                );
                fast_path.takeover = Takeover::WhenServing { applied: false };
            } else if behind && !fresh.is_empty() {
                info!(
                    "new map layouts ({}): the running program keeps forwarding until \
                     they are filled",
                    fresh.iter().cloned().collect::<Vec<_>>().join(", ")
                );
                fast_path.takeover = Takeover::AfterApply;
            } else {
                fast_path.take_over_links()?;
            }
        }
        Ok(fast_path)
    }

    /// What the program finds in the tables pinned in `pins`, read from outside: nothing
    /// is loaded and nothing moves (for tests and diagnostics while an ovnest runs).
    pub fn inspect(pins: &PinDir) -> Result<KernelTables, FastPathError> {
        let parsed =
            aya_obj::Object::parse(object::XDP_OBJECT).map_err(|e| FastPathError::Pins {
                dir: pins.path().to_owned(),
                source: std::io::Error::other(e),
            })?;
        let paths: BTreeMap<&str, PathBuf> = map_pins_of(pins, &parsed, &[]).collect();
        maps::inspect(&|name| paths.get(name).cloned())
    }

    /// The pinned links of the directory, still attached to an interface.
    fn adopt_links(&mut self) -> Result<(), FastPathError> {
        let Some(pins) = &self.pins else {
            return Ok(());
        };
        let found = pins.link_pins().map_err(|source| FastPathError::Pins {
            dir: pins.path().to_owned(),
            source,
        })?;
        for pin in found {
            let (ifindex, program_id) = match link_target(&pin.path) {
                Ok(target) => target,
                Err(e) => {
                    warn!("{}: {e}; removing the pin", pin.path.display());
                    let _ = std::fs::remove_file(&pin.path);
                    continue;
                }
            };
            if ifindex == 0 {
                // Its interface was deleted: the link no longer attaches anything.
                let _ = std::fs::remove_file(&pin.path);
                continue;
            }
            let link = match PinnedLink::from_pin(&pin.path) {
                Ok(link) => FdLink::from(link),
                Err(e) => {
                    warn!("{}: {e}; removing the pin", pin.path.display());
                    let _ = std::fs::remove_file(&pin.path);
                    continue;
                }
            };
            self.links.insert(
                ifindex,
                Attached {
                    link,
                    mode: pin.mode,
                    pin: Some(pin.path),
                    program_id,
                },
            );
        }
        Ok(())
    }

    /// Moves every link to this program (`bpf_link_update`: the interface switches from
    /// one program to the other between two frames), then drops the pins of map layouts
    /// no link uses any more.
    fn take_over_links(&mut self) -> Result<(), FastPathError> {
        let behind: Vec<u32> = self
            .links
            .iter()
            .filter(|(_, a)| a.program_id != self.program_id)
            .map(|(i, _)| *i)
            .collect();
        for ifindex in behind {
            let Some(attached) = self.links.remove(&ifindex) else {
                continue;
            };
            let link_err = |why: String| FastPathError::Link { ifindex, why };
            let pin = attached.pin.clone();
            let xdp = XdpLink::try_from(attached.link).map_err(|e| link_err(e.to_string()))?;
            let program = self.program_mut();
            let id = program.attach_to_link(xdp)?;
            let link =
                FdLink::try_from(program.take_link(id)?).map_err(|e| link_err(e.to_string()))?;
            self.links.insert(
                ifindex,
                Attached {
                    link,
                    mode: attached.mode,
                    pin,
                    program_id: self.program_id,
                },
            );
            info!("ifindex {ifindex}: XDP link moved to this ovnest's program");
        }
        self.takeover = Takeover::Done;
        if let Some(pins) = &self.pins {
            let stale = pins
                .stale_maps(&self.map_pins)
                .map_err(|source| FastPathError::Pins {
                    dir: pins.path().to_owned(),
                    source,
                })?;
            for pin in stale {
                info!("removing {} (an older map layout)", pin.display());
                let _ = std::fs::remove_file(pin);
            }
        }
        Ok(())
    }

    /// Leaves the flat windows empty, so the program finds every key through the spill
    /// path: the one keys take when their window is full. For tests; call it before the
    /// first [`FastPath::apply`].
    pub fn hash_lookups_only(mut self) -> Self {
        self.tables.windows_off();
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
    /// Attaching twice, or to an interface a previous ovnest attached, is a no-op.
    pub fn attach(&mut self, ifindex: u32) -> Result<AttachMode, FastPathError> {
        if let Some(attached) = self.links.get(&ifindex) {
            return Ok(attached.mode);
        }
        let (link, mode) = attach_link(self.program_mut(), ifindex, "ifindex")?;
        let (link, pin) = match &self.pins {
            Some(pins) => pin_link(link, ifindex, pins.link_path(ifindex, mode))?,
            None => (link, None),
        };
        self.links.insert(
            ifindex,
            Attached {
                link,
                mode,
                pin,
                program_id: self.program_id,
            },
        );
        Ok(mode)
    }

    /// Detaches from `ifindex` (and unpins its link).
    pub fn detach(&mut self, ifindex: u32) -> Result<(), FastPathError> {
        let attached = self
            .links
            .remove(&ifindex)
            .ok_or(FastPathError::NotAttached(ifindex))?;
        if let Some(pin) = &attached.pin {
            let _ = std::fs::remove_file(pin);
        }
        // The last reference to the link: closing it detaches the program.
        drop(attached.link);
        Ok(())
    }

    /// Interfaces the program is attached to, with their mode.
    pub fn attached(&self) -> impl Iterator<Item = (u32, AttachMode)> + '_ {
        self.links.iter().map(|(ifindex, a)| (*ifindex, a.mode))
    }

    /// Makes the maps hold `desired`, writing only what differs from what they hold.
    /// Returns the logical difference from the last `desired` applied by this process.
    /// On error what was written stays known, so the next call finishes the job.
    pub fn apply(&mut self, desired: &TableSet) -> Result<TableDiff, FastPathError> {
        let diff = self.installed.diff(desired);
        self.tables.sync(&KernelTables::of(desired))?;
        self.installed = desired.clone();
        match self.takeover {
            Takeover::AfterApply => self.take_over_links()?,
            Takeover::WhenServing { .. } => {
                self.takeover = Takeover::WhenServing { applied: true };
            }
            Takeover::Done => {}
        }
        let spilled = self.tables.spilled();
        if spilled > 0 && !diff.is_empty() {
            tracing::debug!(
                "{spilled} keys found no window slot; the program reaches them by spill"
            );
        }
        Ok(diff)
    }

    /// Says this process's AF_XDP datapath serves every attached interface: adopted links
    /// still running an older program move to this one now if the tables are applied
    /// (see `Takeover::WhenServing`).
    pub fn userspace_serving(&mut self) -> Result<(), FastPathError> {
        if self.takeover == (Takeover::WhenServing { applied: true }) {
            self.take_over_links()?;
        }
        Ok(())
    }

    /// Keys of the flat tables that found no free slot in their probe window, so the
    /// program reaches them through the spill map (slower, same result).
    pub fn flat_overflow(&self) -> usize {
        self.tables.spilled()
    }

    /// What the maps hold, as far as this process wrote them.
    pub fn installed(&self) -> &TableSet {
        &self.installed
    }

    /// What the program finds in its tables now (read back when adopted).
    pub fn kernel_tables(&self) -> KernelTables {
        self.tables.view()
    }

    /// The pin directory, when the datapath outlives the process.
    pub fn pins(&self) -> Option<&PinDir> {
        self.pins.as_ref()
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

/// One BPF_PROG_TEST_RUN of `program` on `frame` arriving on `ifindex` queue 0: the
/// result, and where the frame starts in `out` (after the XDP metadata the program
/// wrote for userspace: `out` holds `metadata ++ frame`).
fn test_run_with_meta(
    program: &Xdp,
    ifindex: u32,
    frame: &[u8],
    out: &mut [u8],
) -> Result<(TestRunResult, usize), FastPathError> {
    let ctx = xdp_md(ifindex, frame.len());
    let mut ctx_out = [0u8; 24];
    let result = program.test_run(TestRunOptions {
        data_in: Some(frame),
        data_out: Some(out),
        ctx_in: Some(&ctx),
        ctx_out: Some(&mut ctx_out),
        ..Default::default()
    })?;
    // `struct xdp_md` out: `data` is the offset of the frame from the metadata.
    let data = u32::from_ne_bytes([ctx_out[0], ctx_out[1], ctx_out[2], ctx_out[3]]);
    Ok((result, data as usize))
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

/// Every map of the object with the path it is pinned at: `newer_layout` names maps whose
/// layout version is taken as one more than this build's.
fn map_pins_of<'a>(
    pins: &'a PinDir,
    object: &'a aya_obj::Object,
    newer_layout: &'a [String],
) -> impl Iterator<Item = (&'a str, PathBuf)> + 'a {
    object
        .maps
        .iter()
        // Sections (.rodata: load-time settings) are per program, not state.
        .filter(|(name, _)| !name.starts_with('.'))
        .filter(|(name, _)| !cache::PER_PROGRAM.contains(&name.as_str()))
        .map(move |(name, map)| {
            let bump = u32::from(newer_layout.iter().any(|n| n == name));
            let layout = MapLayout::of(
                ovnest_common::layout::version(name) + bump,
                map.map_type(),
                map.key_size(),
                map.value_size(),
                map.max_entries(),
                map.map_flags(),
            );
            (name.as_str(), pins.map_path(name, layout))
        })
}

/// The interface the XDP link pinned at `pin` is attached to (0 once that interface is
/// gone) and the program it runs, from BPF_OBJ_GET_INFO_BY_FD (aya's `LinkInfo` has no
/// XDP part, and `FdLink` does not lend its fd).
fn link_target(pin: &std::path::Path) -> std::io::Result<(u32, u32)> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    use std::os::unix::ffi::OsStrExt as _;
    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    const BPF_LINK_TYPE_XDP: u32 = 6;
    let path = std::ffi::CString::new(pin.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // `obj` member of `union bpf_attr`: pathname, bpf_fd, file_flags.
    let mut get = [0u64; 2];
    get[0] = path.as_ptr() as u64;
    // SAFETY: `get` is the kernel's layout for BPF_OBJ_GET and points at a NUL-terminated
    // path alive for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            get.as_mut_ptr(),
            size_of_val(&get),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: BPF_OBJ_GET returned a new fd that we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // `struct bpf_link_info`: type, id, prog_id, then a union whose `xdp.ifindex` is at 16.
    let mut info = [0u32; 16];
    // `info` member of `union bpf_attr`: bpf_fd, info_len, info.
    let mut attr = [0u64; 2];
    attr[0] = u64::from(fd.as_raw_fd() as u32) | (size_of_val(&info) as u64) << 32;
    attr[1] = info.as_mut_ptr() as u64;
    // SAFETY: `attr` is the kernel's layout for this command and points at `info`, which
    // has room for the `info_len` bytes it announces.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            attr.as_mut_ptr(),
            size_of_val(&attr),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if info[0] != BPF_LINK_TYPE_XDP {
        return Err(std::io::Error::other(format!(
            "not an XDP link (type {})",
            info[0]
        )));
    }
    Ok((info[4], info[2]))
}

/// Attaches `program` to `ifindex` natively, else in generic mode (`what` names the
/// interface in the warning), and takes the attachment as a BPF link, which can be pinned
/// and moved to another program.
fn attach_link(
    program: &mut Xdp,
    ifindex: u32,
    what: &str,
) -> Result<(FdLink, AttachMode), FastPathError> {
    let (id, mode) = match program.attach(ifindex, XdpMode::Driver) {
        Ok(id) => (id, AttachMode::Native),
        Err(native) => {
            warn!("{what} {ifindex}: native XDP refused ({native}); using generic mode");
            let id = program
                .attach(ifindex, XdpMode::Skb)
                .map_err(|source| FastPathError::Attach { ifindex, source })?;
            (id, AttachMode::Generic)
        }
    };
    let link = FdLink::try_from(program.take_link(id)?).map_err(|e| FastPathError::Link {
        ifindex,
        why: format!("{e} (a BPF link is needed: kernel 5.9 or later)"),
    })?;
    Ok((link, mode))
}

/// Pins `link` at `path`, over the pin of a link whose interface went away, if one is
/// still there.
fn pin_link(
    link: FdLink,
    ifindex: u32,
    path: std::path::PathBuf,
) -> Result<(FdLink, Option<std::path::PathBuf>), FastPathError> {
    let _ = std::fs::remove_file(&path);
    let pinned = link.pin(&path).map_err(|e| FastPathError::Link {
        ifindex,
        why: format!("pinning at {}: {e}", path.display()),
    })?;
    Ok((FdLink::from(pinned), Some(path)))
}
