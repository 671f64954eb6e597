//! The program's tables in the kernel and the writes that make them hold a
//! [`KernelTables`].
//!
//! Order keeps every intermediate state safe for traffic: first the redirect targets
//! (devices), then destinations (L2, ARP), then the entry points (VIF and child tables);
//! removals go the other way round, devices last. Within a flat table, entries are
//! replaced, never rewritten in place ([`super::flat`]); a round that replaces entries
//! waits for a grace period ([`grace_period`]) before it retires the old ones.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::fd::AsFd as _;

use aya::{
    Ebpf,
    maps::{Array, DevMapHash, HashMap, Map, MapData, MapError, XskMap},
};
use ovnest_common::{
    ArpKey, ArpTarget, ChildKey, EgressPort, FlatKey, FlatSlot, IngressPort, MacKey, XskSlot,
    flat::{slots, spill},
};

use super::batch;
use super::flat::{self, Bound, FlatTable, SlotStore, SyncError};
use super::layout::KernelTables;
use super::{FastPathError, handle::map_mut};

/// One flat table: its array, its spill map, and the mirror of both.
pub(super) struct KernelTable<K: aya::Pod, V: aya::Pod>
where
    FlatSlot<K, V>: aya::Pod,
{
    name: &'static str,
    array: Array<MapData, FlatSlot<K, V>>,
    spill: HashMap<MapData, K, u32>,
    pub(super) mirror: FlatTable<K, V>,
}

struct Store<'a, K: aya::Pod, V: aya::Pod>
where
    FlatSlot<K, V>: aya::Pod,
{
    array: &'a mut Array<MapData, FlatSlot<K, V>>,
    spill: &'a mut HashMap<MapData, K, u32>,
}

impl<K: aya::Pod, V: aya::Pod> SlotStore<K, V> for Store<'_, K, V>
where
    FlatSlot<K, V>: aya::Pod,
{
    fn write(&mut self, index: u32, slot: &FlatSlot<K, V>) -> Result<(), MapError> {
        self.array.set(index, slot, 0)
    }

    fn set_spill(&mut self, key: &K, base: u32) -> Result<(), MapError> {
        self.spill.insert(key, &base, 0)
    }

    fn remove_spill(&mut self, key: &K) -> Result<(), MapError> {
        self.spill.remove(key)
    }
}

fn take<T: TryFrom<Map, Error = MapError>>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<T, FastPathError> {
    let map = ebpf
        .take_map(name)
        .ok_or(FastPathError::MissingMap { map: name })?;
    T::try_from(map).map_err(|source| FastPathError::Map { map: name, source })
}

impl<K, V> KernelTable<K, V>
where
    K: FlatKey + aya::Pod + std::hash::Hash + Eq + Ord + std::fmt::Debug,
    V: aya::Pod + PartialEq + std::fmt::Debug,
    FlatSlot<K, V>: aya::Pod,
{
    /// Takes the table's maps out of `ebpf`; for maps another ovnest filled (`adopted`),
    /// reads back what they hold.
    fn open(
        ebpf: &mut Ebpf,
        adopted: &dyn Fn(&str) -> bool,
        name: &'static str,
        spill_name: &'static str,
        window: u32,
        pairs: u32,
    ) -> Result<Self, FastPathError> {
        let err = |map, source| FastPathError::Map { map, source };
        let map = ebpf
            .take_map(name)
            .ok_or(FastPathError::MissingMap { map: name })?;
        let mut slots = Vec::new();
        if adopted(name)
            && let Map::Array(data) = &map
        {
            let len = data.info().map_err(|e| err(name, e))?.max_entries();
            let all = batch::read_array::<FlatSlot<K, V>>(data.fd().as_fd(), len)
                .map_err(|e| err(name, MapError::IoError(e)))?;
            for (index, slot) in all.into_iter().enumerate() {
                // Never-used slots are all zero: nothing to remember about them.
                if bytes_of(&slot).iter().any(|b| *b != 0) {
                    slots.push((index as u32, slot));
                }
            }
        }
        let array: Array<MapData, FlatSlot<K, V>> =
            Array::try_from(map).map_err(|e| err(name, e))?;
        let spill: HashMap<MapData, K, u32> = take(ebpf, spill_name)?;
        let spilled = if adopted(spill_name) {
            spill
                .iter()
                .collect::<Result<Vec<(K, u32)>, _>>()
                .map_err(|e| err(spill_name, e))?
        } else {
            Vec::new()
        };
        Ok(KernelTable {
            name,
            mirror: FlatTable::adopt(window, pairs, slots, spilled),
            array,
            spill,
        })
    }

    /// The table bound to `desired`, for one [`flat::sync`].
    fn bound<'a>(&'a mut self, desired: &'a BTreeMap<K, V>) -> Bound<'a, K, V, Store<'a, K, V>> {
        Bound {
            name: self.name,
            table: &mut self.mirror,
            desired,
            store: Store {
                array: &mut self.array,
                spill: &mut self.spill,
            },
        }
    }
}

/// What readers find in the flat table pinned at `array` / `spill`, read without loading
/// anything (a look from outside, e.g. by a test while ovnest runs).
fn inspect_table<K, V>(
    array: &std::path::Path,
    spill: &std::path::Path,
    window: u32,
    pairs: u32,
) -> Result<BTreeMap<K, V>, MapError>
where
    K: FlatKey + aya::Pod + std::hash::Hash + Eq + Ord + std::fmt::Debug,
    V: aya::Pod + PartialEq + std::fmt::Debug,
    FlatSlot<K, V>: aya::Pod,
{
    let data = MapData::from_pin(array)?;
    let len = data.info()?.max_entries();
    let all = batch::read_array::<FlatSlot<K, V>>(data.fd().as_fd(), len)?;
    let slots = all
        .into_iter()
        .enumerate()
        .filter(|(_, s)| s.live != 0)
        .map(|(i, s)| (i as u32, s));
    let spill: HashMap<MapData, K, u32> =
        HashMap::try_from(Map::from_map_data(MapData::from_pin(spill)?)?)?;
    let spilled = spill.iter().collect::<Result<Vec<(K, u32)>, _>>()?;
    Ok(FlatTable::adopt(window, pairs, slots, spilled).view())
}

/// The tables pinned at `path(name)`, as the program reads them.
pub(super) fn inspect(
    path: &dyn Fn(&'static str) -> Option<std::path::PathBuf>,
) -> Result<KernelTables, FastPathError> {
    let open = |name: &'static str| path(name).ok_or(FastPathError::MissingMap { map: name });
    let err = |map| move |source| FastPathError::Map { map, source };
    let devmap = MapData::from_pin(open("DEVICES")?).map_err(err("DEVICES"))?;
    let devmap: DevMapHash<MapData> =
        DevMapHash::try_from(Map::from_map_data(devmap).map_err(err("DEVICES"))?)
            .map_err(err("DEVICES"))?;
    Ok(KernelTables {
        vifs: inspect_table(
            &open("VIFS")?,
            &open("VIF_SPILL")?,
            slots::VIFS,
            spill::VIFS,
        )
        .map_err(err("VIFS"))?,
        children: inspect_table(
            &open("CHILDREN")?,
            &open("CHILD_SPILL")?,
            slots::CHILDREN,
            spill::CHILDREN,
        )
        .map_err(err("CHILDREN"))?,
        macs: inspect_table(
            &open("MACS")?,
            &open("MAC_SPILL")?,
            slots::MACS,
            spill::MACS,
        )
        .map_err(err("MACS"))?,
        arp_targets: inspect_table(
            &open("ARP_TARGETS")?,
            &open("ARP_SPILL")?,
            slots::ARP_TARGETS,
            spill::ARP_TARGETS,
        )
        .map_err(err("ARP_TARGETS"))?,
        devices: devmap
            .iter()
            .map(|e| e.map(|(i, _)| i))
            .collect::<Result<BTreeSet<u32>, _>>()
            .map_err(err("DEVICES"))?,
    })
}

/// The raw bytes of a plain-data value.
fn bytes_of<T: aya::Pod>(value: &T) -> &[u8] {
    // SAFETY: `T: Pod` is plain data without padding surprises (its fields are
    // explicit), so viewing its bytes is sound; the slice borrows `value`.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
}

/// The tables the fast path writes, and what it knows they hold.
pub(super) struct Tables {
    pub(super) vifs: KernelTable<u32, IngressPort>,
    pub(super) children: KernelTable<ChildKey, IngressPort>,
    pub(super) macs: KernelTable<MacKey, EgressPort>,
    pub(super) arp_targets: KernelTable<ArpKey, ArpTarget>,
    devmap: DevMapHash<MapData>,
    devices: BTreeSet<u32>,
    /// Grace periods this process has waited for (slots killed at `n` are free after
    /// `n + 1`).
    completed: u64,
}

impl Tables {
    /// Takes the tables out of `ebpf`, reading back those another ovnest left
    /// (`adopted`, by map name).
    pub(super) fn open(
        ebpf: &mut Ebpf,
        adopted: &dyn Fn(&str) -> bool,
    ) -> Result<Tables, FastPathError> {
        let devmap: DevMapHash<MapData> = take(ebpf, "DEVICES")?;
        let devices = devmap
            .iter()
            .map(|entry| entry.map(|(ifindex, _)| ifindex))
            .collect::<Result<BTreeSet<u32>, _>>()
            .map_err(|source| FastPathError::Map {
                map: "DEVICES",
                source,
            })?;
        Ok(Tables {
            vifs: KernelTable::open(ebpf, adopted, "VIFS", "VIF_SPILL", slots::VIFS, spill::VIFS)?,
            children: KernelTable::open(
                ebpf,
                adopted,
                "CHILDREN",
                "CHILD_SPILL",
                slots::CHILDREN,
                spill::CHILDREN,
            )?,
            macs: KernelTable::open(ebpf, adopted, "MACS", "MAC_SPILL", slots::MACS, spill::MACS)?,
            arp_targets: KernelTable::open(
                ebpf,
                adopted,
                "ARP_TARGETS",
                "ARP_SPILL",
                slots::ARP_TARGETS,
                spill::ARP_TARGETS,
            )?,
            devmap,
            devices,
            completed: 0,
        })
    }

    /// Every key goes to a spill pair (tests of that path).
    pub(super) fn windows_off(&mut self) {
        self.vifs.mirror.windows_on = false;
        self.children.mirror.windows_on = false;
        self.macs.mirror.windows_on = false;
        self.arp_targets.mirror.windows_on = false;
    }

    /// What the program reads, table by table.
    pub(super) fn view(&self) -> KernelTables {
        KernelTables {
            vifs: self.vifs.mirror.view(),
            children: self.children.mirror.view(),
            macs: self.macs.mirror.view(),
            arp_targets: self.arp_targets.mirror.view(),
            devices: self.devices.clone(),
        }
    }

    /// Keys found through a spill pair rather than their window.
    pub(super) fn spilled(&self) -> usize {
        self.vifs.mirror.spilled()
            + self.children.mirror.spilled()
            + self.macs.mirror.spilled()
            + self.arp_targets.mirror.spilled()
    }

    /// Makes the kernel hold `desired`. On error what was written stays written (and
    /// known), so the next call finishes the job.
    pub(super) fn sync(&mut self, desired: &KernelTables) -> Result<(), FastPathError> {
        for ifindex in desired.devices.difference(&self.devices.clone()) {
            self.devmap
                .insert(*ifindex, *ifindex, None, 0)
                .map_err(|source| FastPathError::Device {
                    ifindex: *ifindex,
                    source,
                })?;
            self.devices.insert(*ifindex);
        }
        // Destinations first, entry points last (removals go the other way round).
        let mut macs = self.macs.bound(&desired.macs);
        let mut arp_targets = self.arp_targets.bound(&desired.arp_targets);
        let mut vifs = self.vifs.bound(&desired.vifs);
        let mut children = self.children.bound(&desired.children);
        flat::sync(
            &mut [&mut macs, &mut arp_targets, &mut vifs, &mut children],
            &mut self.completed,
            &mut grace_period,
        )
        .map_err(|e| match e {
            SyncError::Map { map, source } => FastPathError::Map { map, source },
            SyncError::GracePeriod(e) => FastPathError::GracePeriod(e),
            SyncError::Full(keys) => FastPathError::Full { keys },
        })?;
        for ifindex in self.devices.clone().difference(&desired.devices) {
            match self.devmap.remove(*ifindex) {
                Err(MapError::KeyNotFound) | Ok(()) => {}
                Err(source) => {
                    return Err(FastPathError::Map {
                        map: "DEVICES",
                        source,
                    });
                }
            }
            self.devices.remove(ifindex);
        }
        Ok(())
    }
}

/// Waits until every BPF program run that started before the call has ended:
/// `MEMBARRIER_CMD_GLOBAL` is `synchronize_rcu()`, and XDP (native, generic, and
/// BPF_PROG_TEST_RUN) runs inside an RCU read-side section.
pub(super) fn grace_period() -> io::Result<()> {
    const MEMBARRIER_CMD_GLOBAL: libc::c_int = 1;
    // SAFETY: membarrier takes no pointers.
    let rc = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub(super) fn register_xsk(
    ebpf: &mut Ebpf,
    ifindex: u32,
    index: u32,
    n_queues: u32,
    queue: u32,
    fd: impl std::os::fd::AsRawFd,
) -> Result<(), FastPathError> {
    let map = "XSKS";
    let mut xsks: XskMap<&mut MapData> = map_mut(ebpf, map)?;
    xsks.set(index + queue, fd, 0)
        .map_err(|source| FastPathError::Map { map, source })?;
    let mut slots: HashMap<&mut MapData, u32, XskSlot> = map_mut(ebpf, "XSK_SLOTS")?;
    slots
        .insert(
            &ifindex,
            &XskSlot {
                base: index,
                n_queues,
            },
            0,
        )
        .map_err(|source| FastPathError::Map {
            map: "XSK_SLOTS",
            source,
        })
}

/// Writes `value` at `index` of the array map `map` (the bench kit's settings).
pub(super) fn set_array<V: aya::Pod>(
    ebpf: &mut Ebpf,
    map: &'static str,
    index: u32,
    value: &V,
) -> Result<(), FastPathError> {
    let mut array: Array<&mut MapData, V> = map_mut(ebpf, map)?;
    array
        .set(index, value, 0)
        .map_err(|source| FastPathError::Map { map, source })
}
