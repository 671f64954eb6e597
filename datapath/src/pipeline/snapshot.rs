//! The userspace datapath's tables: an immutable [`Snapshot`] built from the same
//! [`LogicalPort`] list as the XDP maps (through [`TableSet::build`], so both paths agree
//! on every conflict), laid out for the hot loop, plus the flood groups XDP does not need.
//!
//! The controller builds a new snapshot on every change and publishes it through a
//! [`SnapshotCell`]; poll threads load it once per batch (an `arc-swap` load: no lock, no
//! reference-count contention on the fast path).

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, Ordering::SeqCst},
    },
};

use arc_swap::ArcSwap;
use ovnest_common::{
    PortKey,
    maps::{MAX_PORT_MACS, PORT_SECURITY},
};

use super::lookup::FlatMap;
use crate::tables::{Conflict, LogicalPort, TableSet};

/// "No port" in the dense per-VID child table.
pub(crate) const NO_PORT: u32 = u32::MAX;
/// `PortInfo::device` of a port not reachable on this chassis.
pub const NO_DEVICE: u16 = u16::MAX;
/// Number of VLAN ids, the size of a parent's child table.
const VIDS: usize = 4096;

/// One logical port, as the hot loop needs it. Indexed by a dense port index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortInfo {
    pub key: PortKey,
    /// Stable per-port counter slot (`LogicalPort::stats_slot`).
    pub stats_slot: u32,
    /// Dense index of the port's logical switch (see [`Snapshot::datapath_key`]).
    pub datapath: u16,
    /// Dense index of the interface frames to this port leave by, or [`NO_DEVICE`].
    pub device: u16,
    /// 802.1Q tag on that interface; 0 for a VIF.
    pub tag: u16,
    pub port_security: bool,
    /// With port security: the allowed source MACs packed by [`mac_bits`]; unused
    /// entries never match (bit 63 set, impossible for a 48-bit MAC).
    pub allowed: [u64; MAX_PORT_MACS],
}

/// A MAC as the low 48 bits of a `u64` (little-endian byte order, as loaded from a frame):
/// the packing the XDP program uses too.
pub use ovnest_common::maps::mac48 as mac_bits;

/// `PortInfo::allowed` entry that matches nothing.
const NO_MAC: u64 = 1 << 63;

impl PortInfo {
    pub fn is_local(&self) -> bool {
        self.device != NO_DEVICE
    }

    /// Same rule as `PortEntry::allows_source`, on a packed MAC: four compares, no loop
    /// bound to check.
    #[inline(always)]
    pub fn allows_source(&self, mac: u64) -> bool {
        let [a, b, c, d] = self.allowed;
        !self.port_security | (a == mac) | (b == mac) | (c == mac) | (d == mac)
    }
}

/// An interface ovnest forwards on: a bound VIF, a container parent, or both.
#[derive(Clone, Debug)]
pub struct Device {
    pub ifindex: u32,
    /// Port index of the VIF bound to it, or `NO_PORT`.
    pub(crate) vif: u32,
    /// VID → port index (`NO_PORT` where no container has that tag); only for parents.
    pub(crate) children: Option<Box<[u32; VIDS]>>,
}

impl Device {
    /// The port of an untagged frame arriving here.
    #[inline(always)]
    pub fn vif(&self) -> Option<u32> {
        (self.vif != NO_PORT).then_some(self.vif)
    }

    /// The container behind this interface using `vid`.
    #[inline(always)]
    pub fn child(&self, vid: u16) -> Option<u32> {
        let port = *self.children.as_ref()?.get(vid as usize)?;
        (port != NO_PORT).then_some(port)
    }
}

/// A local port of a logical switch, as a flood copy reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloodMember {
    pub port: u32,
    pub device: u16,
    pub tag: u16,
    pub stats_slot: u32,
}

/// Where broadcast, multicast and unknown unicast of one logical switch go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FloodGroup {
    /// Every local port of the switch, by ascending key.
    pub all: Vec<FloodMember>,
    /// The local ports with the `unknown` address: receivers of unknown unicast.
    pub unknown: Vec<FloodMember>,
}

/// What the ARP responder answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpAnswer {
    /// Port index of the address's owner (not answered when it asks itself).
    pub owner: u32,
    pub mac: [u8; 6],
}

/// The userspace datapath's tables at one moment. Immutable once built.
#[derive(Clone, Debug)]
pub struct Snapshot {
    generation: u64,
    ports: Vec<PortInfo>,
    port_index: FlatMap,
    devices: Vec<Device>,
    device_index: FlatMap,
    datapaths: Vec<u32>,
    macs: FlatMap,
    arp: FlatMap,
    arp_answers: Vec<ArpAnswer>,
    flood: Vec<FloodGroup>,
    conflicts: Vec<Conflict>,
    logical: Option<Arc<super::LogicalView>>,
    /// Tunnels to other chassis, and the underlay's device index.
    tunnels: Option<(Arc<super::TunnelTable>, u16)>,
}

#[inline(always)]
fn port_key(key: PortKey) -> u64 {
    (key.datapath as u64) << 32 | key.port as u64
}

/// L2 table key: the packed MAC with the datapath index in the top 16 bits.
#[inline(always)]
pub(crate) fn mac_key(datapath: u16, mac: u64) -> u64 {
    (datapath as u64) << 48 | mac
}

/// The port-security MACs of `entry`, packed.
fn allowed_sources(entry: &ovnest_common::PortEntry) -> [u64; MAX_PORT_MACS] {
    let mut allowed = [NO_MAC; MAX_PORT_MACS];
    for (slot, mac) in allowed
        .iter_mut()
        .zip(entry.macs.iter())
        .take(entry.n_macs as usize)
    {
        *slot = mac_bits(mac);
    }
    allowed
}

#[inline(always)]
pub(crate) fn arp_key(datapath: u16, ipv4: [u8; 4]) -> u64 {
    (datapath as u64) << 32 | u32::from_be_bytes(ipv4) as u64
}

impl Snapshot {
    /// The tables for `ports`, tagged with `generation` (the controller's counter, shown
    /// in status output). Conflicts are resolved exactly as [`TableSet::build`] does.
    pub fn build(generation: u64, ports: &[LogicalPort]) -> Snapshot {
        let (tables, conflicts) = TableSet::build(ports);
        let unknown: BTreeMap<PortKey, bool> = ports.iter().map(|p| (p.key, p.unknown)).collect();

        let devices_by_ifindex: BTreeMap<u32, u16> = tables
            .devices
            .iter()
            .enumerate()
            .map(|(i, ifindex)| (*ifindex, i as u16))
            .collect();
        let mut datapath_ids: BTreeMap<u32, u16> = BTreeMap::new();
        for key in tables.ports.keys() {
            let next = datapath_ids.len() as u16;
            datapath_ids.entry(key.datapath).or_insert(next);
        }

        let mut port_ids: BTreeMap<PortKey, u32> = BTreeMap::new();
        let mut infos = Vec::with_capacity(tables.ports.len());
        for (key, entry) in &tables.ports {
            port_ids.insert(*key, infos.len() as u32);
            let device = if entry.is_local() {
                devices_by_ifindex
                    .get(&entry.egress_ifindex)
                    .copied()
                    .unwrap_or(NO_DEVICE)
            } else {
                NO_DEVICE
            };
            infos.push(PortInfo {
                key: *key,
                stats_slot: entry.stats_slot,
                datapath: datapath_ids[&key.datapath],
                device,
                tag: entry.tag,
                port_security: entry.flags & PORT_SECURITY != 0,
                allowed: allowed_sources(entry),
            });
        }

        let mut devices: Vec<Device> = tables
            .devices
            .iter()
            .map(|ifindex| Device {
                ifindex: *ifindex,
                vif: NO_PORT,
                children: None,
            })
            .collect();
        for (ifindex, key) in &tables.vifs {
            if let (Some(d), Some(p)) = (devices_by_ifindex.get(ifindex), port_ids.get(key)) {
                devices[*d as usize].vif = *p;
            }
        }
        for (child, key) in &tables.children {
            if let (Some(d), Some(p)) = (
                devices_by_ifindex.get(&child.parent_ifindex),
                port_ids.get(key),
            ) {
                let table = devices[*d as usize]
                    .children
                    .get_or_insert_with(|| Box::new([NO_PORT; VIDS]));
                if let Some(slot) = table.get_mut(child.vid as usize) {
                    *slot = *p;
                }
            }
        }

        let macs = FlatMap::build(tables.macs.iter().filter_map(|(k, port)| {
            Some((
                mac_key(*datapath_ids.get(&k.datapath)?, mac_bits(&k.mac)),
                *port_ids.get(port)?,
            ))
        }));
        let mut arp_answers = Vec::with_capacity(tables.arp_targets.len());
        let arp = FlatMap::build(
            tables
                .arp_targets
                .iter()
                .filter_map(|(k, target)| {
                    let answer = ArpAnswer {
                        owner: *port_ids.get(&target.owner)?,
                        mac: target.mac,
                    };
                    Some((arp_key(*datapath_ids.get(&k.datapath)?, k.ipv4), answer))
                })
                .map(|(key, answer)| {
                    arp_answers.push(answer);
                    (key, arp_answers.len() as u32 - 1)
                })
                .collect::<Vec<_>>(),
        );

        let mut flood = vec![FloodGroup::default(); datapath_ids.len()];
        for (index, info) in infos.iter().enumerate() {
            if !info.is_local() {
                continue;
            }
            let member = FloodMember {
                port: index as u32,
                device: info.device,
                tag: info.tag,
                stats_slot: info.stats_slot,
            };
            let group = &mut flood[info.datapath as usize];
            group.all.push(member);
            if unknown.get(&info.key).copied().unwrap_or(false) {
                group.unknown.push(member);
            }
        }

        let mut datapaths = vec![0; datapath_ids.len()];
        for (key, index) in &datapath_ids {
            datapaths[*index as usize] = *key;
        }
        Snapshot {
            generation,
            port_index: FlatMap::build(port_ids.iter().map(|(k, i)| (port_key(*k), *i))),
            ports: infos,
            device_index: FlatMap::build(
                devices
                    .iter()
                    .enumerate()
                    .map(|(i, d)| (d.ifindex as u64, i as u32)),
            ),
            devices,
            datapaths,
            macs,
            arp,
            arp_answers,
            flood,
            conflicts,
            logical: None,
            tunnels: None,
        }
    }

    /// This snapshot with tunnels to other chassis (before [`Snapshot::with_logical`],
    /// whose view learns the remote ports from it): the underlay interface becomes a
    /// device frames leave by.
    pub fn with_tunnels(mut self, table: super::TunnelTable) -> Snapshot {
        let device = match self.device_of(table.underlay_ifindex) {
            Some(d) => d,
            None => {
                self.devices.push(Device {
                    ifindex: table.underlay_ifindex,
                    vif: NO_PORT,
                    children: None,
                });
                self.device_index = FlatMap::build(
                    self.devices
                        .iter()
                        .enumerate()
                        .map(|(i, d)| (d.ifindex as u64, i as u32)),
                );
                (self.devices.len() - 1) as u16
            }
        };
        self.tunnels = Some((Arc::new(table), device));
        self
    }

    /// The tunnels, when this chassis has any.
    #[inline(always)]
    pub fn tunnels(&self) -> Option<&super::TunnelTable> {
        self.tunnels.as_ref().map(|(t, _)| &**t)
    }

    /// The underlay interface's device index.
    pub fn underlay_device(&self) -> Option<u16> {
        self.tunnels.as_ref().map(|(_, d)| *d)
    }

    /// This snapshot with OVN's logical flows deciding every frame.
    pub fn with_logical(mut self, pipeline: Arc<ovnest_logical::Pipeline>) -> Snapshot {
        self.logical = Some(Arc::new(super::LogicalView::new(pipeline, &self)));
        self
    }

    /// The logical pipeline, when this snapshot has one.
    #[inline(always)]
    pub fn logical(&self) -> Option<&super::LogicalView> {
        self.logical.as_deref()
    }

    /// An empty snapshot: every frame is dropped as coming from an unknown VIF.
    pub fn empty() -> Snapshot {
        Snapshot::build(0, &[])
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// What [`TableSet::build`] refused while building this snapshot.
    pub fn conflicts(&self) -> &[Conflict] {
        &self.conflicts
    }

    /// Interfaces frames may leave by, indexed by the `device` numbers used throughout.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// Dense index of the interface `ifindex`.
    #[inline(always)]
    pub fn device_of(&self, ifindex: u32) -> Option<u16> {
        self.device_index.get(ifindex as u64).map(|d| d as u16)
    }

    #[inline(always)]
    pub fn device(&self, device: u16) -> Option<&Device> {
        self.devices.get(device as usize)
    }

    #[inline(always)]
    pub fn port(&self, index: u32) -> Option<&PortInfo> {
        self.ports.get(index as usize)
    }

    pub fn ports(&self) -> &[PortInfo] {
        &self.ports
    }

    /// Port index of `key` (used for XDP metadata, which names the ingress port).
    #[inline(always)]
    pub fn port_index(&self, key: PortKey) -> Option<u32> {
        self.port_index.get(port_key(key))
    }

    /// The `Datapath_Binding.tunnel_key` of the dense datapath index.
    pub fn datapath_key(&self, datapath: u16) -> Option<u32> {
        self.datapaths.get(datapath as usize).copied()
    }

    /// L2 lookup: the local port owning `mac` on the switch.
    #[inline(always)]
    pub fn lookup_mac(&self, datapath: u16, mac: u64) -> Option<u32> {
        self.macs.get(mac_key(datapath, mac))
    }

    /// ARP responder lookup.
    #[inline(always)]
    pub fn lookup_arp(&self, datapath: u16, ipv4: [u8; 4]) -> Option<&ArpAnswer> {
        self.arp_answers
            .get(self.arp.get(arp_key(datapath, ipv4))? as usize)
    }

    #[inline(always)]
    pub fn flood_group(&self, datapath: u16) -> Option<&FloodGroup> {
        self.flood.get(datapath as usize)
    }
}

/// The published snapshot: the controller stores, poll threads load.
/// The snapshot the poll threads use, and which generation each of them has adopted.
///
/// Coherence: the agent publishes a snapshot, then [`wait_adopted`](Self::wait_adopted)
/// before it tells the Southbound the change is in place (`nb_cfg`), so no frame is
/// decided by an older snapshot after the acknowledgement. A reader adopts by loading
/// the snapshot at the top of its loop; a reader that sleeps marks itself [`SLEEPING`]
/// (it loads again before its next batch) and clears the mark before loading.
pub struct SnapshotCell {
    current: ArcSwap<Snapshot>,
    generation: AtomicU64,
    readers: Mutex<Vec<Weak<AtomicU64>>>,
}

/// A reader's adopted generation while it sleeps: it will load before its next batch.
pub const SLEEPING: u64 = u64::MAX;

impl SnapshotCell {
    pub fn new(snapshot: Snapshot) -> Self {
        SnapshotCell {
            generation: AtomicU64::new(snapshot.generation()),
            current: ArcSwap::from_pointee(snapshot),
            readers: Mutex::new(Vec::new()),
        }
    }

    /// Makes `snapshot` the one every poll thread uses from its next batch on.
    pub fn publish(&self, snapshot: Snapshot) {
        let generation = snapshot.generation();
        self.current.store(Arc::new(snapshot));
        self.generation.store(generation, SeqCst);
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The generation published last (a cheap check before [`load`](Self::load)).
    #[inline(always)]
    pub fn generation(&self) -> u64 {
        self.generation.load(SeqCst)
    }

    /// A slot in which a poll thread reports the generation it uses.
    pub fn register_reader(&self) -> Arc<AtomicU64> {
        let slot = Arc::new(AtomicU64::new(0));
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        readers.retain(|w| w.strong_count() > 0);
        readers.push(Arc::downgrade(&slot));
        slot
    }

    /// Waits until every live reader uses `generation` or later (or sleeps), up to
    /// `timeout`. False on timeout.
    pub fn wait_adopted(&self, generation: u64, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let done = {
                let readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
                readers
                    .iter()
                    .filter_map(Weak::upgrade)
                    .all(|r| r.load(SeqCst) >= generation)
            };
            if done {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::yield_now();
        }
    }
}

impl Default for SnapshotCell {
    fn default() -> Self {
        SnapshotCell::new(Snapshot::empty())
    }
}
