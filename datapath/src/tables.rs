//! The fast path's tables as a value.
//!
//! The controller describes each logical port relevant to this chassis as a
//! [`LogicalPort`]; [`TableSet::build`] turns that list into exactly the BPF map content
//! the XDP program needs, and [`TableSet::diff`] gives the minimal change from what is
//! installed. All of it is pure, so it is tested without root.

use std::collections::{BTreeMap, BTreeSet};

use ovnest_common::{
    ArpKey, ArpTarget, ChildKey, MacKey, PortEntry, PortKey,
    maps::{MAX_PORT_MACS, PORT_LOCAL, PORT_SECURITY},
};

/// How frames of a logical port reach this chassis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attachment {
    /// A VIF plugged here: its frames arrive untagged on `ifindex`.
    Vif { ifindex: u32 },
    /// A container behind a local VIF: frames arrive on `parent_ifindex` tagged `tag`.
    Child { parent_ifindex: u32, tag: u16 },
    /// Not reachable here (bound elsewhere, or a router port): known for ARP answers only.
    Remote,
}

/// A logical port as the datapath needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogicalPort {
    /// Name in OVN (`Port_Binding.logical_port`), for conflict reports.
    pub name: String,
    pub key: PortKey,
    /// Per-port counter slot; the caller keeps it stable for the port's lifetime.
    pub stats_slot: u32,
    /// `Port_Binding.mac` entries: a MAC and the IPv4 addresses that go with it.
    pub addresses: Vec<([u8; 6], Vec<[u8; 4]>)>,
    /// Allowed source MACs; `None` when the port has no port_security.
    pub port_security: Option<Vec<[u8; 6]>>,
    /// The port has the `unknown` address: it receives unknown unicast when flooding.
    pub unknown: bool,
    pub attachment: Attachment,
}

/// Something in the input that the tables cannot express; the loser is left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// Two containers claim the same tag on one parent VIF. The port with the lower
    /// tunnel key keeps it; the other is not forwarded at all, so neither ever receives
    /// the other's traffic.
    DuplicateTag {
        parent_ifindex: u32,
        tag: u16,
        kept: String,
        refused: String,
    },
    /// Two ports of one switch claim the same MAC: the lower tunnel key wins the L2 entry.
    DuplicateMac {
        datapath: u32,
        mac: [u8; 6],
        kept: String,
        refused: String,
    },
    /// Two ports claim one IPv4 address: the lower tunnel key answers ARP for it.
    DuplicateIp {
        datapath: u32,
        ipv4: [u8; 4],
        kept: String,
        refused: String,
    },
    /// More source MACs in port_security than the fast path holds.
    TooManyMacs { port: String, allowed: usize },
    /// A VLAN tag outside 1..=4094.
    BadTag { port: String, tag: u16 },
}

/// The complete content of the fast path's maps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableSet {
    pub vifs: BTreeMap<u32, PortKey>,
    pub children: BTreeMap<ChildKey, PortKey>,
    pub ports: BTreeMap<PortKey, PortEntry>,
    pub macs: BTreeMap<MacKey, PortKey>,
    pub arp_targets: BTreeMap<ArpKey, ArpTarget>,
    /// Interfaces frames may be redirected to.
    pub devices: BTreeSet<u32>,
}

impl TableSet {
    /// Tables for `ports`. Deterministic whatever the input order: ports are taken by
    /// ascending key, so on any conflict the lower key wins.
    pub fn build(ports: &[LogicalPort]) -> (TableSet, Vec<Conflict>) {
        let mut sorted: Vec<&LogicalPort> = ports.iter().collect();
        sorted.sort_by_key(|p| p.key);
        let mut tables = TableSet::default();
        let mut conflicts = Vec::new();
        let mut names: BTreeMap<PortKey, &str> = BTreeMap::new();

        for port in sorted {
            let (egress_ifindex, tag) = match port.attachment {
                Attachment::Vif { ifindex } => (ifindex, 0),
                Attachment::Child {
                    parent_ifindex,
                    tag,
                } => {
                    if !(1..=4094).contains(&tag) {
                        conflicts.push(Conflict::BadTag {
                            port: port.name.clone(),
                            tag,
                        });
                        continue;
                    }
                    let child = ChildKey::new(parent_ifindex, tag);
                    if let Some(kept) = tables.children.get(&child) {
                        conflicts.push(Conflict::DuplicateTag {
                            parent_ifindex,
                            tag,
                            kept: names[kept].to_string(),
                            refused: port.name.clone(),
                        });
                        continue;
                    }
                    (parent_ifindex, tag)
                }
                Attachment::Remote => (0, 0),
            };
            let mut entry = PortEntry {
                stats_slot: port.stats_slot,
                egress_ifindex,
                tag,
                ..Default::default()
            };
            if port.attachment != Attachment::Remote {
                entry.flags |= PORT_LOCAL;
            }
            if let Some(allowed) = &port.port_security {
                if allowed.len() > MAX_PORT_MACS {
                    conflicts.push(Conflict::TooManyMacs {
                        port: port.name.clone(),
                        allowed: allowed.len(),
                    });
                    continue;
                }
                entry.flags |= PORT_SECURITY;
                entry.n_macs = allowed.len() as u8;
                for (slot, mac) in entry.macs.iter_mut().zip(allowed) {
                    *slot = *mac;
                }
            }

            names.insert(port.key, &port.name);
            tables.ports.insert(port.key, entry);
            match port.attachment {
                Attachment::Vif { ifindex } => {
                    tables.vifs.insert(ifindex, port.key);
                    tables.devices.insert(ifindex);
                }
                Attachment::Child {
                    parent_ifindex,
                    tag,
                } => {
                    tables
                        .children
                        .insert(ChildKey::new(parent_ifindex, tag), port.key);
                    tables.devices.insert(parent_ifindex);
                }
                Attachment::Remote => {}
            }
            for (mac, ips) in &port.addresses {
                let datapath = port.key.datapath;
                // Remote ports stay out of the L2 table: their frames go to userspace.
                if port.attachment != Attachment::Remote {
                    let mac_key = MacKey::new(datapath, *mac);
                    match tables.macs.get(&mac_key) {
                        Some(kept) => conflicts.push(Conflict::DuplicateMac {
                            datapath,
                            mac: *mac,
                            kept: names[kept].to_string(),
                            refused: port.name.clone(),
                        }),
                        None => {
                            tables.macs.insert(mac_key, port.key);
                        }
                    }
                }
                for ip in ips {
                    let arp_key = ArpKey::new(datapath, *ip);
                    match tables.arp_targets.get(&arp_key) {
                        Some(kept) => conflicts.push(Conflict::DuplicateIp {
                            datapath,
                            ipv4: *ip,
                            kept: names[&kept.owner].to_string(),
                            refused: port.name.clone(),
                        }),
                        None => {
                            tables.arp_targets.insert(
                                arp_key,
                                ArpTarget {
                                    owner: port.key,
                                    mac: *mac,
                                    _pad: [0; 2],
                                },
                            );
                        }
                    }
                }
            }
        }
        (tables, conflicts)
    }

    /// What to change to turn `self` (installed) into `next` (desired).
    pub fn diff(&self, next: &TableSet) -> TableDiff {
        TableDiff {
            vifs: MapDiff::between(&self.vifs, &next.vifs),
            children: MapDiff::between(&self.children, &next.children),
            ports: MapDiff::between(&self.ports, &next.ports),
            macs: MapDiff::between(&self.macs, &next.macs),
            arp_targets: MapDiff::between(&self.arp_targets, &next.arp_targets),
            devices_added: next.devices.difference(&self.devices).copied().collect(),
            devices_removed: self.devices.difference(&next.devices).copied().collect(),
        }
    }
}

/// Entries to write and keys to delete in one map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDiff<K, V> {
    pub upsert: Vec<(K, V)>,
    pub remove: Vec<K>,
}

impl<K: Ord + Copy, V: PartialEq + Copy> MapDiff<K, V> {
    pub fn between(old: &BTreeMap<K, V>, new: &BTreeMap<K, V>) -> Self {
        let upsert = new
            .iter()
            .filter(|(k, v)| old.get(k) != Some(v))
            .map(|(k, v)| (*k, *v))
            .collect();
        let remove = old
            .keys()
            .filter(|k| !new.contains_key(k))
            .copied()
            .collect();
        MapDiff { upsert, remove }
    }

    pub fn is_empty(&self) -> bool {
        self.upsert.is_empty() && self.remove.is_empty()
    }

    pub fn len(&self) -> usize {
        self.upsert.len() + self.remove.len()
    }
}

/// The change between two [`TableSet`]s, map by map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableDiff {
    pub vifs: MapDiff<u32, PortKey>,
    pub children: MapDiff<ChildKey, PortKey>,
    pub ports: MapDiff<PortKey, PortEntry>,
    pub macs: MapDiff<MacKey, PortKey>,
    pub arp_targets: MapDiff<ArpKey, ArpTarget>,
    pub devices_added: Vec<u32>,
    pub devices_removed: Vec<u32>,
}

impl TableDiff {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of map operations the diff takes.
    pub fn len(&self) -> usize {
        self.vifs.len()
            + self.children.len()
            + self.ports.len()
            + self.macs.len()
            + self.arp_targets.len()
            + self.devices_added.len()
            + self.devices_removed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VM5: u32 = 7;
    const C51_MAC: [u8; 6] = [2, 0xac, 0x10, 0xff, 1, 0x33];

    fn port(name: &str, key: u32, mac_last: u8, attachment: Attachment) -> LogicalPort {
        let mac = [2, 0xac, 0x10, 0xff, 1, mac_last];
        LogicalPort {
            name: name.into(),
            key: PortKey {
                datapath: 1,
                port: key,
            },
            stats_slot: key,
            addresses: vec![(mac, vec![[172, 16, 255, mac_last + 100]])],
            port_security: Some(vec![mac]),
            unknown: false,
            attachment,
        }
    }

    #[test]
    fn child_is_reached_through_its_parent_with_its_tag() {
        let c51 = port(
            "dmz-c51",
            5,
            0x33,
            Attachment::Child {
                parent_ifindex: VM5,
                tag: 51,
            },
        );
        let (tables, conflicts) = TableSet::build(&[c51]);
        assert!(conflicts.is_empty());
        let key = PortKey {
            datapath: 1,
            port: 5,
        };
        assert_eq!(tables.children[&ChildKey::new(VM5, 51)], key);
        let entry = tables.ports[&key];
        assert_eq!((entry.egress_ifindex, entry.tag), (VM5, 51));
        assert!(entry.is_local());
        assert!(entry.allows_source(&C51_MAC));
        assert!(!entry.allows_source(&[2, 0, 0, 0, 0, 1]));
        assert_eq!(tables.macs[&MacKey::new(1, C51_MAC)], key);
        assert!(tables.devices.contains(&VM5));
    }

    #[test]
    fn duplicate_tag_keeps_the_lower_key_whatever_the_order() {
        let a = port(
            "dmz-c51",
            5,
            0x33,
            Attachment::Child {
                parent_ifindex: VM5,
                tag: 51,
            },
        );
        let b = port(
            "dmz-c99",
            9,
            0x99,
            Attachment::Child {
                parent_ifindex: VM5,
                tag: 51,
            },
        );
        for input in [vec![a.clone(), b.clone()], vec![b.clone(), a.clone()]] {
            let (tables, conflicts) = TableSet::build(&input);
            assert_eq!(tables.children[&ChildKey::new(VM5, 51)].port, 5);
            assert!(
                !tables.ports.contains_key(&b.key),
                "refused child must not be forwarded to"
            );
            assert!(!tables.macs.values().any(|k| *k == b.key));
            assert_eq!(
                conflicts,
                vec![Conflict::DuplicateTag {
                    parent_ifindex: VM5,
                    tag: 51,
                    kept: "dmz-c51".into(),
                    refused: "dmz-c99".into()
                }]
            );
        }
    }

    #[test]
    fn bad_tags_are_refused() {
        for tag in [0, 4095, 5000] {
            let c = port(
                "c",
                5,
                0x33,
                Attachment::Child {
                    parent_ifindex: VM5,
                    tag,
                },
            );
            let (tables, conflicts) = TableSet::build(&[c]);
            assert!(tables.ports.is_empty());
            assert_eq!(
                conflicts,
                vec![Conflict::BadTag {
                    port: "c".into(),
                    tag
                }]
            );
        }
    }

    #[test]
    fn remote_ports_answer_arp_but_are_not_in_the_l2_table() {
        let router = port("dmz-lr0", 1, 0x29, Attachment::Remote);
        let (tables, _) = TableSet::build(&[router]);
        assert!(tables.macs.is_empty());
        assert!(
            !tables.ports[&PortKey {
                datapath: 1,
                port: 1
            }]
                .is_local()
        );
        assert_eq!(
            tables.arp_targets[&ArpKey::new(1, [172, 16, 255, 141])].mac[5],
            0x29
        );
    }

    #[test]
    fn diff_of_a_tag_change_touches_only_that_child() {
        let vm5 = port("dmz-vm5", 4, 0x32, Attachment::Vif { ifindex: VM5 });
        let c52 = port(
            "dmz-c52",
            6,
            0x34,
            Attachment::Child {
                parent_ifindex: VM5,
                tag: 52,
            },
        );
        let mut c53 = c52.clone();
        c53.attachment = Attachment::Child {
            parent_ifindex: VM5,
            tag: 53,
        };
        let (old, _) = TableSet::build(&[vm5.clone(), c52]);
        let (new, _) = TableSet::build(&[vm5, c53]);
        let diff = old.diff(&new);
        assert_eq!(diff.children.remove, vec![ChildKey::new(VM5, 52)]);
        assert_eq!(
            diff.children.upsert,
            vec![(
                ChildKey::new(VM5, 53),
                PortKey {
                    datapath: 1,
                    port: 6
                }
            )]
        );
        assert_eq!(diff.ports.upsert.len(), 1);
        assert_eq!(diff.ports.upsert[0].1.tag, 53);
        assert_eq!(diff.len(), 3);
        assert!(old.diff(&old).is_empty());
    }
}
