//! The datapath's desired tables from the binding plan: every bound port with how it is
//! reached, plus the other ports of the same logical switches (bound elsewhere, or router
//! ports) so the ARP responder answers for them as OVN's ls_in_arp_rsp does.

use std::collections::{BTreeMap, BTreeSet};

use ovnest_common::PortKey;
use ovnest_datapath::{Attachment, LogicalPort};

use super::bindings::{Plan, Role};
use crate::{
    ovsdb::Uuid,
    sb::{PortAddresses, PortBinding, Snapshot},
};

/// Per-port counter slots, stable for as long as a port stays bound. Slot 0 is shared by
/// ports that are not local (their counters never move).
#[derive(Debug, Default)]
pub struct StatsSlots {
    by_port: BTreeMap<String, u32>,
    free: Vec<u32>,
    next: u32,
}

impl StatsSlots {
    pub fn slot(&self, port: &str) -> Option<u32> {
        self.by_port.get(port).copied()
    }

    /// Puts `port` on `slot` (the one an adopted datapath counted it on), unless the slot
    /// is taken.
    pub fn keep(&mut self, port: &str, slot: u32) {
        if slot == 0 || self.by_port.values().any(|s| *s == slot) {
            return;
        }
        self.by_port.insert(port.to_owned(), slot);
        self.free.retain(|s| *s != slot);
        if slot > self.next {
            // Slots skipped on the way are free.
            self.free.extend(self.next + 1..slot);
            self.next = slot;
        }
    }

    /// Keeps slots of `ports`, frees the others, assigns new ones.
    fn retain_and_assign<'a>(&mut self, ports: impl Iterator<Item = &'a str>) {
        let wanted: BTreeSet<&str> = ports.collect();
        let gone: Vec<String> = self
            .by_port
            .keys()
            .filter(|p| !wanted.contains(p.as_str()))
            .cloned()
            .collect();
        for port in gone {
            if let Some(slot) = self.by_port.remove(&port) {
                self.free.push(slot);
            }
        }
        for port in wanted {
            if !self.by_port.contains_key(port) {
                let slot = self.free.pop().unwrap_or_else(|| {
                    self.next += 1;
                    self.next
                });
                self.by_port.insert(port.to_owned(), slot);
            }
        }
    }
}

fn ipv4s(addrs: &PortAddresses) -> Vec<[u8; 4]> {
    match addrs {
        PortAddresses::Static { ips, .. } => ips
            .iter()
            .filter_map(|ip| match ip.addr {
                std::net::IpAddr::V4(v4) => Some(v4.octets()),
                std::net::IpAddr::V6(_) => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `mac` column entries as (MAC, IPv4s); `router` resolves through the patch peer.
fn addresses(snapshot: &Snapshot, pb: &PortBinding) -> Vec<([u8; 6], Vec<[u8; 4]>)> {
    let mut out = Vec::new();
    for entry in &pb.mac {
        match entry {
            PortAddresses::Static { mac, .. } => out.push((mac.0, ipv4s(entry))),
            PortAddresses::Router => {
                let peer = pb
                    .options
                    .get("peer")
                    .and_then(|p| snapshot.port_binding(p));
                for peer_entry in peer.iter().flat_map(|p| p.mac.iter()) {
                    if let Some(mac) = peer_entry.mac() {
                        out.push((mac.0, ipv4s(peer_entry)));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The datapath's view of every port relevant to the bound ones.
pub fn logical_ports(snapshot: &Snapshot, plan: &Plan, slots: &mut StatsSlots) -> Vec<LogicalPort> {
    slots.retain_and_assign(plan.bound.iter().map(|b| b.port.logical_port.as_str()));
    let bound: BTreeMap<&str, Role> = plan
        .bound
        .iter()
        .map(|b| (b.port.logical_port.as_str(), b.role))
        .collect();
    let datapaths: BTreeSet<Uuid> = plan.bound.iter().map(|b| b.port.datapath).collect();

    let mut ports = Vec::new();
    for pb in snapshot
        .port_bindings()
        .filter(|pb| datapaths.contains(&pb.datapath))
    {
        let Some(datapath) = snapshot.datapath(&pb.datapath) else {
            continue;
        };
        let attachment = match bound.get(pb.logical_port.as_str()) {
            Some(Role::Vif { ifindex }) => Attachment::Vif { ifindex: *ifindex },
            Some(Role::Child {
                parent_ifindex,
                tag,
            }) => Attachment::Child {
                parent_ifindex: *parent_ifindex,
                tag: *tag,
            },
            None => Attachment::Remote,
        };
        let macs: Vec<[u8; 6]> = pb
            .port_security
            .iter()
            .filter_map(|a| a.mac())
            .map(|m| m.0)
            .collect();
        ports.push(LogicalPort {
            name: pb.logical_port.clone(),
            key: PortKey {
                datapath: datapath.tunnel_key,
                port: pb.tunnel_key,
            },
            stats_slot: slots.slot(&pb.logical_port).unwrap_or(0),
            addresses: addresses(snapshot, pb),
            port_security: (!macs.is_empty()).then_some(macs),
            unknown: pb.mac.iter().any(|a| matches!(a, PortAddresses::Unknown)),
            attachment,
        });
    }
    ports
}
