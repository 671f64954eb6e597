//! The TC eBPF tagger (`ebpf/tc`): loaded once per uplink, its maps and programs pinned
//! under `<bpffs>/<VM's port>/<uplink>-<ifindex>/` so that every later plugin run reuses
//! them.
//!
//! - uplink ingress: `tagger_uplink` (pops, redirects into the container);
//! - each container's host-side veth ingress: `tagger_container` (pushes, redirects out
//!   of the uplink).
//!
//! The pins die with the VM (bpffs is memory) and the directory name carries the
//! uplink's ifindex, so a recreated uplink gets a fresh load. The entries are rebuilt from
//! the Northbound then ([`BpfTagger::open`]'s `existing`), never from local files.

use std::{
    io,
    path::{Path, PathBuf},
};

use aya::{
    EbpfLoader,
    maps::{Array, HashMap, Map, MapData, PerCpuArray},
    programs::{SchedClassifier, TcAttach, TcAttachType, tc},
};
use ovnest_common::tagger::{MAX_VID, TaggerCounter, TaggerPort};

use super::TaggerError;
use crate::netlink::{Link, Netlink};

/// ELF bytes of the tagger built by cni/build.rs, 8-byte aligned as aya requires.
static TC_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ovnest-tc"));

const CONTAINER_PROG: &str = "tagger_container";
const UPLINK_PROG: &str = "tagger_uplink";
const PORTS: &str = "TAGGER_PORTS";
const VIDS: &str = "TAGGER_VIDS";
const COUNTERS: &str = "TAGGER_COUNTERS";

/// `statfs` magic of bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

pub struct BpfTagger {
    dir: PathBuf,
    uplink: Link,
    ports: HashMap<MapData, u32, TaggerPort>,
    vids: Array<MapData, u32>,
    counters: PerCpuArray<MapData, u64>,
    container_prog: SchedClassifier,
}

fn err(what: impl Into<String>) -> impl FnOnce(String) -> TaggerError {
    let what = what.into();
    move |e| TaggerError(format!("{what}: {e}"))
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes only into `buf`, which is sized for it; `c` is NUL-terminated.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::statfs(c.as_ptr(), &mut buf) == 0 && buf.f_type as i64 == BPF_FS_MAGIC }
}

fn mount_bpffs(at: &Path) -> io::Result<()> {
    let target = std::ffi::CString::new(at.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: all pointers are NUL-terminated strings that outlive the call; no data.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes sure `dir` is on a bpffs: as is, or by mounting one on the standard place
/// (`/sys/fs/bpf`) or on `dir` itself. A VM where each plugin run gets its own mount
/// namespace needs `dir` on a bpffs mounted outside (the lab mounts one for its VMs).
fn ensure_bpffs(dir: &Path) -> Result<(), TaggerError> {
    if dir.exists() && is_bpffs(dir) {
        return Ok(());
    }
    let sys = Path::new("/sys/fs/bpf");
    if dir.starts_with(sys) && !is_bpffs(sys) && sys.is_dir() {
        mount_bpffs(sys)
            .map_err(|e| err(format!("mounting bpffs on {}", sys.display()))(e.to_string()))?;
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| err(format!("creating {}", dir.display()))(e.to_string()))?;
    if !is_bpffs(dir) {
        mount_bpffs(dir)
            .map_err(|e| err(format!("mounting bpffs on {}", dir.display()))(e.to_string()))?;
    }
    Ok(())
}

/// Turns off VLAN insertion offload on the uplink so a pushed tag is written into the
/// frame when it leaves: a veth would otherwise carry it as metadata that an XDP program
/// on the other end (ovnest on the hypervisor) never sees. NICs that do not offload it
/// (virtio-net) already write it; for them this is a no-op.
fn tag_in_frame(uplink: &str) -> io::Result<()> {
    const ETHTOOL_GFLAGS: u32 = 0x25;
    const ETHTOOL_SFLAGS: u32 = 0x26;
    const ETH_FLAG_TXVLAN: u32 = 1 << 7;
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    #[repr(C)]
    struct Ifreq {
        name: [u8; libc::IFNAMSIZ],
        data: *mut EthtoolValue,
        _pad: [u8; 16],
    }
    // SAFETY: a datagram socket only used as an ioctl handle; checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut value = EthtoolValue {
        cmd: ETHTOOL_GFLAGS,
        data: 0,
    };
    let mut req = Ifreq {
        name: [0; libc::IFNAMSIZ],
        data: &mut value,
        _pad: [0; 16],
    };
    let n = uplink.len().min(libc::IFNAMSIZ - 1);
    req.name[..n].copy_from_slice(&uplink.as_bytes()[..n]);
    let ioctl = |req: &mut Ifreq| {
        use std::os::fd::AsRawFd as _;
        // SAFETY: SIOCETHTOOL reads the name and the ethtool_value `req.data` points to
        // (alive for the call), and writes only that value.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, req as *mut Ifreq) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    ioctl(&mut req)?;
    if value.data & ETH_FLAG_TXVLAN == 0 {
        return Ok(());
    }
    value.cmd = ETHTOOL_SFLAGS;
    value.data &= !ETH_FLAG_TXVLAN;
    req.data = &mut value;
    ioctl(&mut req)
}

/// `<bpffs>/<VM's port>/<uplink>-<ifindex>`: one VM's tagger even where several VMs share
/// a bpffs (a lab); a recreated uplink (new ifindex) gets a fresh load.
fn pin_dir(bpffs: &Path, vm_port: &str, uplink: &Link) -> PathBuf {
    let safe: String = vm_port
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    bpffs
        .join(safe)
        .join(format!("{}-{}", uplink.name, uplink.index))
}

impl BpfTagger {
    /// The tagger of `uplink`: opened from its pins, or loaded, attached to the uplink and
    /// pinned, then given the `existing` containers' entries (host veth name, VID) that
    /// still have a veth. Call under the VM's lock.
    pub fn open(
        bpffs: &Path,
        vm_port: &str,
        uplink: &str,
        nl: &mut Netlink,
        existing: &[(String, u16)],
    ) -> Result<BpfTagger, TaggerError> {
        let uplink = nl
            .link(uplink)
            .map_err(|e| TaggerError(format!("looking up uplink {uplink}: {e}")))?
            .ok_or_else(|| {
                TaggerError(format!("the VM has no interface {uplink:?} (\"uplink\")"))
            })?;
        let dir = pin_dir(bpffs, vm_port, &uplink);
        if let Ok(t) = BpfTagger::from_pins(&dir, &uplink) {
            return Ok(t);
        }
        ensure_bpffs(bpffs)?;
        let mut t = BpfTagger::load(&dir, uplink)?;
        for (veth, vid) in existing {
            if let Ok(Some(link)) = nl.link(veth) {
                t.add(&link, *vid)?;
            }
        }
        Ok(t)
    }

    /// The tagger of `uplink` if one is loaded; never loads or attaches anything (for
    /// DEL, CHECK, GC and status: they must not put programs on an interface).
    pub fn existing(
        bpffs: &Path,
        vm_port: &str,
        uplink: &str,
        nl: &mut Netlink,
    ) -> Result<Option<BpfTagger>, TaggerError> {
        let Some(uplink) = nl
            .link(uplink)
            .map_err(|e| TaggerError(format!("looking up uplink {uplink}: {e}")))?
        else {
            return Ok(None);
        };
        let dir = pin_dir(bpffs, vm_port, &uplink);
        Ok(BpfTagger::from_pins(&dir, &uplink).ok())
    }

    fn from_pins(dir: &Path, uplink: &Link) -> Result<BpfTagger, TaggerError> {
        let map = |name: &str| {
            MapData::from_pin(dir.join(name))
                .and_then(Map::from_map_data)
                .map_err(|e| TaggerError(format!("{name}: {e}")))
        };
        let ports = HashMap::try_from(map(PORTS)?).map_err(|e| TaggerError(e.to_string()))?;
        let vids = Array::try_from(map(VIDS)?).map_err(|e| TaggerError(e.to_string()))?;
        let counters =
            PerCpuArray::try_from(map(COUNTERS)?).map_err(|e| TaggerError(e.to_string()))?;
        let container_prog = SchedClassifier::from_pin(dir.join(CONTAINER_PROG))
            .map_err(|e| TaggerError(e.to_string()))?;
        Ok(BpfTagger {
            dir: dir.to_owned(),
            uplink: uplink.clone(),
            ports,
            vids,
            counters,
            container_prog,
        })
    }

    /// Loads the object, attaches `tagger_uplink` to the uplink (replacing an older one),
    /// pins maps and programs into `dir`.
    fn load(dir: &Path, uplink: Link) -> Result<BpfTagger, TaggerError> {
        let fail = |what: &str| {
            let what = what.to_owned();
            move |e: &dyn std::fmt::Display| TaggerError(format!("{what}: {e}"))
        };
        // A half-made directory from a run that died is cleared first.
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| fail("creating the pin directory")(&e))?;
        let mut ebpf = EbpfLoader::new()
            .load(TC_OBJECT)
            .map_err(|e| fail("loading the tagger object")(&e))?;
        for name in [CONTAINER_PROG, UPLINK_PROG] {
            let prog: &mut SchedClassifier = ebpf
                .program_mut(name)
                .ok_or_else(|| TaggerError(format!("no program {name} in the object")))?
                .try_into()
                .map_err(|e| fail(name)(&e))?;
            prog.load().map_err(|e| fail(name)(&e))?;
            prog.pin(dir.join(name)).map_err(|e| fail(name)(&e))?;
        }
        for name in [PORTS, VIDS, COUNTERS] {
            ebpf.map(name)
                .ok_or_else(|| TaggerError(format!("no map {name} in the object")))?
                .pin(dir.join(name))
                .map_err(|e| fail(name)(&e))?;
        }
        tag_in_frame(&uplink.name)
            .map_err(|e| fail(&format!("tx-vlan offload off on {}", uplink.name))(&e))?;
        attach(
            ebpf.program_mut(UPLINK_PROG)
                .and_then(|p| <&mut SchedClassifier>::try_from(p).ok())
                .ok_or_else(|| TaggerError(format!("no program {UPLINK_PROG}")))?,
            &uplink,
            UPLINK_PROG,
            true,
        )?;
        drop(ebpf);
        BpfTagger::from_pins(dir, &uplink)
    }

    /// Attaches the container program to `veth` and maps it to `vid` both ways.
    pub fn add(&mut self, veth: &Link, vid: u16) -> Result<(), TaggerError> {
        if vid == 0 || vid > MAX_VID {
            return Err(TaggerError(format!(
                "VID {vid} is not usable (1..={MAX_VID})"
            )));
        }
        self.ports
            .insert(&veth.index, &TaggerPort::new(self.uplink.index, vid), 0)
            .map_err(|e| TaggerError(format!("tagger entry for {}: {e}", veth.name)))?;
        self.vids
            .set(u32::from(vid), &veth.index, 0)
            .map_err(|e| TaggerError(format!("tagger VID {vid}: {e}")))?;
        attach(&mut self.container_prog, veth, CONTAINER_PROG, false)
    }

    /// Forgets the container behind `veth_index` (its veth is about to go or is gone);
    /// returns the VID it had.
    pub fn remove(&mut self, veth_index: u32) -> Result<Option<u16>, TaggerError> {
        let Ok(port) = self.ports.get(&veth_index, 0) else {
            return Ok(None);
        };
        if self.vids.get(&u32::from(port.vid), 0).ok() == Some(veth_index) {
            self.vids
                .set(u32::from(port.vid), &0, 0)
                .map_err(|e| TaggerError(format!("clearing VID {}: {e}", port.vid)))?;
        }
        let _ = self.ports.remove(&veth_index);
        Ok(Some(port.vid))
    }

    /// Clears VID `vid` if it points at no live port (a veth deleted behind our back).
    pub fn clear_vid(&mut self, vid: u16) -> Result<(), TaggerError> {
        let index = self.vids.get(&u32::from(vid), 0).unwrap_or(0);
        if index != 0 {
            let _ = self.ports.remove(&index);
            self.vids
                .set(u32::from(vid), &0, 0)
                .map_err(|e| TaggerError(format!("clearing VID {vid}: {e}")))?;
        }
        Ok(())
    }

    /// `(VID pushed for veth, veth the VID pops to)`, for CHECK.
    pub fn lookup(&self, veth_index: u32) -> Option<(u16, u32)> {
        let port = self.ports.get(&veth_index, 0).ok()?;
        let back = self.vids.get(&u32::from(port.vid), 0).ok()?;
        Some((port.vid, back))
    }

    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        TaggerCounter::ALL
            .iter()
            .map(|c| {
                let total = self
                    .counters
                    .get(&(*c as u32), 0)
                    .map(|per_cpu| per_cpu.iter().sum())
                    .unwrap_or(0);
                (c.name(), total)
            })
            .collect()
    }

    pub fn pin_dir(&self) -> &Path {
        &self.dir
    }
}

/// Attaches `prog` at `link`'s clsact ingress as a netlink filter; with `replace`, filters
/// of the same program name there go first (a fresh veth has none). Netlink filters live
/// as long as the interface, so the attachment outlives this short process without a
/// pinned link.
fn attach(
    prog: &mut SchedClassifier,
    link: &Link,
    name: &str,
    replace: bool,
) -> Result<(), TaggerError> {
    // Usually already there (a previous run, another clsact user): attaching says if not.
    if let Err(e) = tc::qdisc_add_clsact(link.index) {
        tracing::debug!("clsact on {}: {e}", link.name);
    }
    if replace {
        // The kernel keeps 15 characters of a program's name.
        let short: String = name.chars().take(15).collect();
        let _ = tc::qdisc_detach_program(link.index, TcAttachType::Ingress.into(), &short);
    }
    let id = prog
        .attach(
            link.index,
            TcAttach::Netlink {
                parent: TcAttachType::Ingress.into(),
                options: tc::NlOptions::default(),
            },
        )
        .map_err(|e| TaggerError(format!("attaching {name} to {}: {e}", link.name)))?;
    let link = prog
        .take_link(id)
        .map_err(|e| TaggerError(format!("{name} on {}: {e}", link.name)))?;
    // Dropping the handle would detach the filter: it must stay after we exit. A netlink
    // filter handle owns no descriptor, so forgetting it leaks nothing.
    std::mem::forget(link);
    Ok(())
}
