//! Where the datapath outlives ovnest: one bpffs directory per chassis holding the
//! program's maps and its XDP links, so a restarted (or upgraded) ovnest finds the
//! forwarding state it left and adopts it instead of rebuilding it.
//!
//! ```text
//! /sys/fs/bpf/ovnest/<chassis>/
//!   maps/<NAME>-v<version>-<shape>   every map of the object (generic: whatever it has)
//!   links/xdp-<ifindex>-<mode>       one XDP link per interface (bpf_link)
//!   links/underlay-<ifindex>-<mode>  the underlay program's link (Geneve)
//! ```
//! A map's pin name carries its layout: the semantic version from
//! `ovnest_common::layout` (bumped when the meaning of its bytes changes) and a hash of
//! its shape (type, key and value size, entries, flags). A build whose map has the same
//! name shares it with the running program; one whose layout differs gets a new, empty
//! map beside the old one, fills it, and only then moves the links to its program
//! (`bpf_link_update`); the old version's pins go once no link uses them.

use std::{
    ffi::CString,
    io,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use crate::fastpath::AttachMode;

/// The default root; a chassis's directory is `<root>/<chassis>`.
pub const DEFAULT_ROOT: &str = "/sys/fs/bpf/ovnest";

/// `statfs(2)` magic of a bpffs mount.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// A chassis's pin directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinDir {
    dir: PathBuf,
}

/// A map's layout, as its pin name records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapLayout {
    pub version: u32,
    pub shape: u32,
}

impl MapLayout {
    /// The layout of a map with this definition: FNV-1a over its shape.
    pub fn of(version: u32, map_type: u32, key: u32, value: u32, entries: u32, flags: u32) -> Self {
        let mut hash: u32 = 0x811c_9dc5;
        for word in [map_type, key, value, entries, flags] {
            for byte in word.to_le_bytes() {
                hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
            }
        }
        MapLayout {
            version,
            shape: hash,
        }
    }
}

/// A pinned XDP link found in the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkPin {
    pub path: PathBuf,
    /// The interface the pin's name says; the link's own info is what counts.
    pub ifindex: u32,
    pub mode: AttachMode,
}

impl PinDir {
    /// `<root>/<chassis>`.
    pub fn for_chassis(root: &Path, chassis: &str) -> PinDir {
        PinDir {
            dir: root.join(chassis),
        }
    }

    /// Exactly `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> PinDir {
        PinDir { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn maps(&self) -> PathBuf {
        self.dir.join("maps")
    }

    fn links(&self) -> PathBuf {
        self.dir.join("links")
    }

    /// Makes sure the directory exists on a bpffs, mounting one on `/sys/fs/bpf` when
    /// nothing is mounted there yet (as the distributions' systemd does at boot).
    pub fn prepare(&self) -> io::Result<()> {
        let mount = Path::new("/sys/fs/bpf");
        if self.dir.starts_with(mount) && !is_bpffs(mount)? {
            mount_bpffs(mount)?;
        }
        std::fs::create_dir_all(self.maps())?;
        std::fs::create_dir_all(self.links())?;
        let probe = self.dir.clone();
        if !is_bpffs(&probe)? {
            return Err(io::Error::other(format!(
                "{} is not on a bpffs (mount -t bpf bpf <dir>): pins elsewhere do not \
                 outlive ovnest",
                self.dir.display()
            )));
        }
        Ok(())
    }

    /// The pin path of map `name` with `layout`.
    pub fn map_path(&self, name: &str, layout: MapLayout) -> PathBuf {
        self.maps()
            // bpffs refuses names with a dot.
            .join(format!("{name}-v{}-{:08x}", layout.version, layout.shape))
    }

    /// Map pins in the directory whose name is not in `keep`.
    pub fn stale_maps(&self, keep: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
        Ok(list(&self.maps())?
            .into_iter()
            .filter(|p| !keep.contains(p))
            .collect())
    }

    /// The pin path for a link on `ifindex`.
    pub fn link_path(&self, ifindex: u32, mode: AttachMode) -> PathBuf {
        let mode = match mode {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        };
        self.links().join(format!("xdp-{ifindex}-{mode}"))
    }

    /// The link pins in the directory.
    pub fn link_pins(&self) -> io::Result<Vec<LinkPin>> {
        self.pins_named("xdp-")
    }

    /// The pin path for the underlay program's link on `ifindex` (beside the VIFs', under
    /// a prefix of its own so neither is taken for the other).
    pub fn underlay_link_path(&self, ifindex: u32, mode: AttachMode) -> PathBuf {
        let vif = self.link_path(ifindex, mode);
        let name = vif.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.as_deref().and_then(|n| n.strip_prefix("xdp-"));
        self.links()
            .join(format!("underlay-{}", name.unwrap_or_default()))
    }

    /// The underlay program's link pins in the directory.
    pub fn underlay_link_pins(&self) -> io::Result<Vec<LinkPin>> {
        self.pins_named("underlay-")
    }

    fn pins_named(&self, prefix: &str) -> io::Result<Vec<LinkPin>> {
        let mut pins = Vec::new();
        for path in list(&self.links())? {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let parsed = name.as_deref().and_then(|n| {
                let rest = n.strip_prefix(prefix)?;
                let (ifindex, mode) = rest.split_once('-')?;
                let mode = match mode {
                    "native" => AttachMode::Native,
                    "generic" => AttachMode::Generic,
                    _ => return None,
                };
                Some((ifindex.parse().ok()?, mode))
            });
            if let Some((ifindex, mode)) = parsed {
                pins.push(LinkPin {
                    path,
                    ifindex,
                    mode,
                });
            }
        }
        Ok(pins)
    }

    /// Removes every pin and the directory: the links detach, the maps go with the last
    /// program using them.
    pub fn remove(&self) -> io::Result<()> {
        for dir in [self.links(), self.maps()] {
            for pin in list(&dir)? {
                std::fs::remove_file(&pin)?;
            }
            remove_dir(&dir)?;
        }
        remove_dir(&self.dir)
    }
}

fn remove_dir(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The entries of `dir` (none when it does not exist), sorted.
fn list(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut paths = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<Vec<_>>>()?;
    paths.sort();
    Ok(paths)
}

fn is_bpffs(path: &Path) -> io::Result<bool> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: statfs writes into the zeroed struct it is given; `c` is NUL-terminated.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statfs(c.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat.f_type == BPF_FS_MAGIC)
}

fn mount_bpffs(at: &Path) -> io::Result<()> {
    let target = CString::new(at.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let fstype = CString::new("bpf").expect("no NUL");
    // SAFETY: every pointer is a NUL-terminated string alive for the call; no data.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_pin_name_changes_with_its_layout_only() {
        let pins = PinDir::for_chassis(Path::new("/sys/fs/bpf/ovnest"), "hv1");
        let a = MapLayout::of(1, 2, 8, 40, 1024, 0);
        let path = pins.map_path("MACS", a);
        assert_eq!(
            path.parent(),
            Some(Path::new("/sys/fs/bpf/ovnest/hv1/maps"))
        );
        assert_eq!(
            pins.map_path("MACS", MapLayout::of(1, 2, 8, 40, 1024, 0)),
            path
        );
        assert_ne!(
            pins.map_path("MACS", MapLayout::of(2, 2, 8, 40, 1024, 0)),
            path
        );
        assert_ne!(
            pins.map_path("MACS", MapLayout::of(1, 2, 8, 44, 1024, 0)),
            path
        );
        assert_ne!(
            pins.map_path("MACS", MapLayout::of(1, 2, 8, 40, 2048, 0)),
            path
        );
    }

    #[test]
    fn link_pin_names_carry_the_interface_and_the_mode() {
        let pins = PinDir::at("/x");
        assert_eq!(
            pins.link_path(7, AttachMode::Generic),
            Path::new("/x/links/xdp-7-generic")
        );
        assert_eq!(
            pins.underlay_link_path(7, AttachMode::Native),
            Path::new("/x/links/underlay-7-native")
        );
    }
}
