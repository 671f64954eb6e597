//! The in-VM tagger (`ebpf/tc`, loaded by `ovnest-cni`): a TC program on each container's
//! host-side veth pushes the container's 802.1Q tag and redirects the frame out of the
//! VM's uplink; a TC program on the uplink's ingress pops the tag of frames for a
//! container and redirects them into the container. Untagged frames stay the VM's.
//!
//! One set of maps per uplink, pinned under the plugin's bpffs directory so every plugin
//! run (a short-lived process) finds them.

use core::mem::size_of;

/// 802.1Q VIDs usable for containers: 1..=4094 (0 is "priority tag", 4095 reserved).
pub const MAX_VID: u16 = 4094;

/// Entries of [`TaggerPort`] maps and of the VID array (index = VID).
pub const VIDS: u32 = 4096;

/// A container's host-side veth, keyed by its ifindex: the tag to push and the uplink.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TaggerPort {
    pub uplink_ifindex: u32,
    pub vid: u16,
    pub _pad: u16,
}
const _: () = assert!(size_of::<TaggerPort>() == 8);

impl TaggerPort {
    pub const fn new(uplink_ifindex: u32, vid: u16) -> TaggerPort {
        TaggerPort {
            uplink_ifindex,
            vid,
            _pad: 0,
        }
    }
}

/// Index into the tagger's per-CPU counter array. Every verdict bumps exactly one.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaggerCounter {
    /// Container frame tagged and redirected out of the uplink.
    Pushed = 0,
    /// Uplink frame untagged and redirected into its container.
    Popped = 1,
    /// Untagged (or priority-tagged) uplink frame left to the VM's own stack.
    VmOwn = 2,
    /// Drop: tagged uplink frame whose VID has no container in this VM.
    DropUnknownVid = 3,
    /// Drop: frame on a veth the tagger has no entry for (container being removed).
    DropUnknownPort = 4,
    /// Drop: a container sent a frame that already carries a tag (VLAN hopping).
    DropTaggedFromContainer = 5,
    /// Drop: the kernel refused to push or pop the tag.
    DropRewrite = 6,
    /// Drop: shorter than an Ethernet header.
    DropTruncated = 7,
}

impl TaggerCounter {
    pub const COUNT: u32 = 8;

    pub const ALL: [TaggerCounter; Self::COUNT as usize] = [
        TaggerCounter::Pushed,
        TaggerCounter::Popped,
        TaggerCounter::VmOwn,
        TaggerCounter::DropUnknownVid,
        TaggerCounter::DropUnknownPort,
        TaggerCounter::DropTaggedFromContainer,
        TaggerCounter::DropRewrite,
        TaggerCounter::DropTruncated,
    ];

    /// Stable snake_case name for status output.
    pub const fn name(self) -> &'static str {
        match self {
            TaggerCounter::Pushed => "pushed",
            TaggerCounter::Popped => "popped",
            TaggerCounter::VmOwn => "vm_own",
            TaggerCounter::DropUnknownVid => "drop_unknown_vid",
            TaggerCounter::DropUnknownPort => "drop_unknown_port",
            TaggerCounter::DropTaggedFromContainer => "drop_tagged_from_container",
            TaggerCounter::DropRewrite => "drop_rewrite",
            TaggerCounter::DropTruncated => "drop_truncated",
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: #[repr(C)] plain data with an explicit padding field, no pointers and no
    // invalid bit patterns (size pinned above), so any 8 bytes are a value.
    unsafe impl aya::Pod for super::TaggerPort {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_dense_and_named_once() {
        for (i, c) in TaggerCounter::ALL.iter().enumerate() {
            assert_eq!(*c as u32, i as u32);
        }
        let mut names: [&str; TaggerCounter::COUNT as usize] =
            TaggerCounter::ALL.map(TaggerCounter::name);
        names.sort_unstable();
        assert!(names.windows(2).all(|w| w[0] != w[1]));
    }
}
