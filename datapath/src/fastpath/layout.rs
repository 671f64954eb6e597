//! The kernel's layout of a [`TableSet`]: denormalised so the XDP program needs one hash
//! lookup to classify a frame and one to forward it. A port's entry is copied into every
//! key that leads to it, so a change to one port rewrites those keys, and the diff is
//! taken on this layout, not on the logical tables.

use std::collections::{BTreeMap, BTreeSet};

use ovnest_common::{ArpKey, ArpTarget, ChildKey, EgressPort, IngressPort, MacKey};

use crate::tables::{MapDiff, TableSet};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelTables {
    pub vifs: BTreeMap<u32, IngressPort>,
    pub children: BTreeMap<ChildKey, IngressPort>,
    pub macs: BTreeMap<MacKey, EgressPort>,
    pub arp_targets: BTreeMap<ArpKey, ArpTarget>,
    pub devices: BTreeSet<u32>,
}

impl KernelTables {
    pub fn of(tables: &TableSet) -> KernelTables {
        let ingress = |key| {
            tables.ports.get(key).map(|port| IngressPort {
                key: *key,
                port: *port,
            })
        };
        KernelTables {
            vifs: tables
                .vifs
                .iter()
                .filter_map(|(i, key)| Some((*i, ingress(key)?)))
                .collect(),
            children: tables
                .children
                .iter()
                .filter_map(|(c, key)| Some((*c, ingress(key)?)))
                .collect(),
            macs: tables
                .macs
                .iter()
                .filter_map(|(m, key)| Some((*m, EgressPort::of(*key, tables.ports.get(key)?))))
                .collect(),
            arp_targets: tables.arp_targets.clone(),
            devices: tables.devices.clone(),
        }
    }

    pub fn diff(&self, next: &KernelTables) -> KernelDiff {
        KernelDiff {
            vifs: MapDiff::between(&self.vifs, &next.vifs),
            children: MapDiff::between(&self.children, &next.children),
            macs: MapDiff::between(&self.macs, &next.macs),
            arp_targets: MapDiff::between(&self.arp_targets, &next.arp_targets),
            devices_added: next.devices.difference(&self.devices).copied().collect(),
            devices_removed: self.devices.difference(&next.devices).copied().collect(),
        }
    }
}

/// Map operations that turn one [`KernelTables`] into another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelDiff {
    pub vifs: MapDiff<u32, IngressPort>,
    pub children: MapDiff<ChildKey, IngressPort>,
    pub macs: MapDiff<MacKey, EgressPort>,
    pub arp_targets: MapDiff<ArpKey, ArpTarget>,
    pub devices_added: Vec<u32>,
    pub devices_removed: Vec<u32>,
}

impl KernelDiff {
    pub fn len(&self) -> usize {
        self.vifs.len()
            + self.children.len()
            + self.macs.len()
            + self.arp_targets.len()
            + self.devices_added.len()
            + self.devices_removed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use ovnest_common::PortKey;

    use super::*;
    use crate::tables::{Attachment, LogicalPort};

    fn child(tag: u16, mac_last: u8) -> LogicalPort {
        let mac = [2, 0, 0, 0, 0, mac_last];
        LogicalPort {
            name: "c".into(),
            key: PortKey {
                datapath: 1,
                port: 5,
            },
            stats_slot: 5,
            addresses: vec![(mac, vec![])],
            port_security: Some(vec![mac]),
            unknown: false,
            attachment: Attachment::Child {
                parent_ifindex: 7,
                tag,
            },
        }
    }

    #[test]
    fn a_port_change_rewrites_every_key_that_embeds_it() {
        let old = KernelTables::of(&TableSet::build(&[child(51, 1)]).0);
        let new = KernelTables::of(&TableSet::build(&[child(52, 1)]).0);
        let diff = old.diff(&new);
        assert_eq!(diff.children.remove, vec![ChildKey::new(7, 51)]);
        assert_eq!(diff.children.upsert.len(), 1);
        // The L2 entry carries the tag to push, so it is rewritten too.
        assert_eq!(diff.macs.upsert.len(), 1);
        assert_eq!(diff.macs.upsert[0].1.tag, 52);
        assert!(old.diff(&old).is_empty());
    }
}
