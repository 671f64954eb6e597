//! Writes a [`TableDiff`] into the program's maps.
//!
//! Order keeps every intermediate state safe for traffic: first the redirect targets
//! (devices), then destinations (L2, ARP), then the entry points (VIF and child tables);
//! removals go the other way round, devices last. Each flat table is written after its
//! hash map on upsert and before it on removal (see [`super::flat`]).

use aya::{
    Ebpf,
    maps::{Array, DevMapHash, HashMap, MapData, XskMap},
};
use ovnest_common::{
    ArpKey, ArpTarget, ChildKey, EgressPort, FlatKey, FlatSlot, IngressPort, MacKey, XskSlot,
};

use super::flat::{FlatPlacement, FlatTables};
use super::layout::KernelDiff;
use super::{FastPathError, handle::map_mut};
use crate::tables::MapDiff;

/// Mirrors `diff`'s upserts (`upsert: true`) or removals into the flat table `map`.
fn mirror<K, V>(
    ebpf: &mut Ebpf,
    map: &'static str,
    placement: &mut FlatPlacement<K>,
    diff: &MapDiff<K, V>,
    upsert: bool,
) -> Result<(), FastPathError>
where
    K: FlatKey + aya::Pod + std::hash::Hash + Eq,
    V: aya::Pod,
    FlatSlot<K, V>: aya::Pod,
{
    if diff.upsert.is_empty() && diff.remove.is_empty() {
        return Ok(());
    }
    let mut array: Array<&mut MapData, FlatSlot<K, V>> = map_mut(ebpf, map)?;
    let result = if upsert {
        diff.upsert
            .iter()
            .try_for_each(|(key, value)| placement.upsert(&mut array, key, value))
    } else {
        diff.remove
            .iter()
            .try_for_each(|key| placement.remove(&mut array, key))
    };
    result.map_err(|source| FastPathError::Map { map, source })
}

fn hash_map<'a, K: aya::Pod, V: aya::Pod>(
    ebpf: &'a mut Ebpf,
    map: &'static str,
) -> Result<HashMap<&'a mut MapData, K, V>, FastPathError> {
    map_mut(ebpf, map)
}

fn upsert<K: aya::Pod + Copy, V: aya::Pod + Copy>(
    ebpf: &mut Ebpf,
    map: &'static str,
    diff: &MapDiff<K, V>,
) -> Result<(), FastPathError> {
    let mut table = hash_map::<K, V>(ebpf, map)?;
    for (key, value) in &diff.upsert {
        table
            .insert(key, value, 0)
            .map_err(|source| FastPathError::Map { map, source })?;
    }
    Ok(())
}

fn remove<K: aya::Pod + Copy, V: aya::Pod + Copy>(
    ebpf: &mut Ebpf,
    map: &'static str,
    diff: &MapDiff<K, V>,
) -> Result<(), FastPathError> {
    let mut table = hash_map::<K, V>(ebpf, map)?;
    for key in &diff.remove {
        match table.remove(key) {
            // Already gone is what we wanted.
            Err(aya::maps::MapError::KeyNotFound) | Ok(()) => {}
            Err(source) => return Err(FastPathError::Map { map, source }),
        }
    }
    Ok(())
}

fn devices(ebpf: &mut Ebpf) -> Result<DevMapHash<&mut MapData>, FastPathError> {
    map_mut(ebpf, "DEVICES")
}

pub(super) fn apply(
    ebpf: &mut Ebpf,
    diff: &KernelDiff,
    flat: &mut FlatTables,
) -> Result<(), FastPathError> {
    {
        let mut devmap = devices(ebpf)?;
        for ifindex in &diff.devices_added {
            devmap
                .insert(*ifindex, *ifindex, None, 0)
                .map_err(|source| FastPathError::Device {
                    ifindex: *ifindex,
                    source,
                })?;
        }
    }
    upsert::<MacKey, EgressPort>(ebpf, "MACS", &diff.macs)?;
    let on = flat.enabled;
    if on {
        mirror(ebpf, "MAC_FLAT", &mut flat.macs, &diff.macs, true)?;
    }
    upsert::<ArpKey, ArpTarget>(ebpf, "ARP_TARGETS", &diff.arp_targets)?;
    upsert::<u32, IngressPort>(ebpf, "VIFS", &diff.vifs)?;
    if on {
        mirror(ebpf, "VIF_FLAT", &mut flat.vifs, &diff.vifs, true)?;
    }
    upsert::<ChildKey, IngressPort>(ebpf, "CHILDREN", &diff.children)?;
    if on {
        mirror(ebpf, "CHILD_FLAT", &mut flat.children, &diff.children, true)?;
    }

    if on {
        mirror(ebpf, "VIF_FLAT", &mut flat.vifs, &diff.vifs, false)?;
    }
    remove::<u32, IngressPort>(ebpf, "VIFS", &diff.vifs)?;
    if on {
        mirror(
            ebpf,
            "CHILD_FLAT",
            &mut flat.children,
            &diff.children,
            false,
        )?;
    }
    remove::<ChildKey, IngressPort>(ebpf, "CHILDREN", &diff.children)?;
    if on {
        mirror(ebpf, "MAC_FLAT", &mut flat.macs, &diff.macs, false)?;
    }
    remove::<MacKey, EgressPort>(ebpf, "MACS", &diff.macs)?;
    remove::<ArpKey, ArpTarget>(ebpf, "ARP_TARGETS", &diff.arp_targets)?;
    let mut devmap = devices(ebpf)?;
    for ifindex in &diff.devices_removed {
        match devmap.remove(*ifindex) {
            Err(aya::maps::MapError::KeyNotFound) | Ok(()) => {}
            Err(source) => {
                return Err(FastPathError::Map {
                    map: "DEVICES",
                    source,
                });
            }
        }
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
    let mut slots = hash_map::<u32, XskSlot>(ebpf, "XSK_SLOTS")?;
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

/// Writes `value` at `index` of the array map `map`.
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
