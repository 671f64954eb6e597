//! The datapaths local to this chassis (ovn-controller's local_data.c): those of the ports
//! it binds or is asked to bind, and every datapath reachable from them through patch
//! ports (the routers behind a switch, the switches behind those routers). The SB monitor
//! asks for Port_Binding, Logical_Flow, MAC_Binding and Multicast_Group rows of these
//! only (see `monitor`).

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    ovsdb::Uuid,
    sb::{HaChassis, HaChassisGroup, PortBinding, Snapshot},
};

/// ovn-controller gives up following patch ports this deep.
const MAX_DEPTH: usize = 100;

/// The local datapaths, by UUID. `local_ports` are the iface-ids of local interfaces;
/// `chassis` is this chassis's row, once registered.
pub fn local_datapaths(
    snapshot: &Snapshot,
    chassis: Option<(Uuid, &str)>,
    local_ports: &BTreeSet<String>,
) -> BTreeSet<Uuid> {
    let ours = |u: Option<Uuid>| chassis.is_some_and(|(c, _)| Some(c) == u);
    // Ports that make their datapath local: local VIFs (unless requested elsewhere) and
    // their containers, ports bound to or requested for this chassis, and gateway ports
    // pinned here.
    let seeds = snapshot.port_bindings().filter(|pb| {
        let vif = local_ports.contains(&pb.logical_port)
            && (pb.requested_chassis.is_none() || ours(pb.requested_chassis));
        let child = pb
            .parent_port
            .as_ref()
            .is_some_and(|p| local_ports.contains(p));
        let gateway = pb.port_type == "l3gateway" && ours(pb.chassis);
        vif || child || ours(pb.chassis) || ours(pb.requested_chassis) || gateway
    });
    let mut local: BTreeSet<Uuid> = BTreeSet::new();
    let mut frontier: Vec<(Uuid, usize)> = seeds.map(|pb| (pb.datapath, 0)).collect();

    // Patch (and l3gateway) ports by datapath, to walk the graph.
    let mut patches: BTreeMap<Uuid, Vec<&PortBinding>> = BTreeMap::new();
    for pb in snapshot.port_bindings() {
        if matches!(pb.port_type.as_str(), "patch" | "l3gateway") {
            patches.entry(pb.datapath).or_default().push(pb);
        }
    }
    while let Some((dp, depth)) = frontier.pop() {
        if !local.insert(dp) || depth >= MAX_DEPTH {
            continue;
        }
        for pb in patches.get(&dp).into_iter().flatten() {
            let Some(peer) = pb.peer().and_then(|p| snapshot.port_binding(p)) else {
                continue;
            };
            if peer_is_local(snapshot, pb, chassis) && !local.contains(&peer.datapath) {
                frontier.push((peer.datapath, depth + 1));
            }
        }
    }
    local
}

/// Whether the datapath behind patch port `pb` is local too (ovn-controller's
/// need_add_peer_to_local): yes for a plain patch port (fully distributed) and for a
/// gateway router's port bound here; for a distributed gateway port only when its
/// chassis-redirect port is not `always-redirect`, or is hosted by this chassis.
fn peer_is_local(snapshot: &Snapshot, pb: &PortBinding, chassis: Option<(Uuid, &str)>) -> bool {
    if pb.port_type == "l3gateway" {
        return chassis.is_some_and(|(c, _)| pb.chassis == Some(c));
    }
    let Some(crp) = pb.options.get("chassis-redirect-port") else {
        return true;
    };
    let Some(crp) = snapshot.port_binding(crp) else {
        return false;
    };
    if crp.options.get("always-redirect").map(String::as_str) != Some("true") {
        return true;
    }
    let (Some(group), Some((chassis, _))) = (crp.ha_chassis_group, chassis) else {
        return false;
    };
    snapshot
        .table::<HaChassisGroup>()
        .by_uuid(&group)
        .is_some_and(|g| {
            g.ha_chassis.iter().any(|h| {
                snapshot
                    .table::<HaChassis>()
                    .by_uuid(h)
                    .and_then(|h| h.chassis)
                    == Some(chassis)
            })
        })
}
