//! Which Port_Bindings this chassis binds, from the SB snapshot and the local VIFs: the
//! claim rules, as a pure function (`plan`).
//!
//! - A VIF is ours when a local interface carries its name in `external_ids:iface-id`
//!   (unless `requested_chassis` names another chassis).
//! - A container port is ours when its `parent_port` is a VIF already claimed by this
//!   chassis in the SB: children only after their parent, released when it goes.
//! - Two containers with one tag under one parent (OVN accepts it): the lower tunnel key
//!   keeps the tag; the other is not bound at all, so neither gets the other's traffic.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use serde::{Deserialize, Serialize};

use crate::{
    ovsdb::Uuid,
    sb::{PortBinding, Snapshot},
};

/// How a bound port is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Vif { ifindex: u32 },
    Child { parent_ifindex: u32, tag: u16 },
}

#[derive(Clone, Debug)]
pub struct Bound {
    pub port: Arc<PortBinding>,
    pub role: Role,
}

/// An SB state the rules refuse, with what was done about it. Shown in status.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OddState {
    /// Two children of one parent have the same tag; `refused` is not bound.
    DuplicateTag {
        parent: String,
        tag: u16,
        kept: String,
        refused: String,
    },
    /// A child claimed by (or requested for) this chassis whose parent is not bound here.
    ParentNotLocal { port: String, parent: String },
    /// A child without a tag yet (northd allocates `tag_request=0` asynchronously).
    TagMissing { port: String },
    /// A child whose tag cannot be carried: VID 4095 is reserved by 802.1Q (OVN accepts
    /// tags up to 4095). Not bound.
    TagReserved { port: String, tag: u16 },
    /// A child whose parent is itself a child: OVN nests one level only.
    ParentIsChild { port: String, parent: String },
    /// A local interface names a container port in its iface-id.
    IfaceIdIsChild { iface_id: String },
    /// A local interface's iface-id names no Port_Binding (yet).
    NoSuchPort { iface_id: String },
    /// `requested_chassis` names another chassis.
    RequestedElsewhere { port: String },
}

/// The outcome of the claim rules.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub bound: Vec<Bound>,
    pub odd: BTreeSet<OddState>,
}

impl Plan {
    pub fn is_bound(&self, logical_port: &str) -> bool {
        self.bound
            .iter()
            .any(|b| b.port.logical_port == logical_port)
    }
}

/// Applies the rules. `vifs` maps an iface-id (logical port) to the local ifindex.
pub fn plan(snapshot: &Snapshot, chassis: Option<Uuid>, vifs: &BTreeMap<String, u32>) -> Plan {
    let mut out = Plan::default();
    let ours = |uuid: Option<Uuid>| chassis.is_some() && uuid == chassis;
    let requested_elsewhere =
        |pb: &PortBinding| pb.requested_chassis.is_some() && !ours(pb.requested_chassis);

    let mut parents: BTreeMap<&str, u32> = BTreeMap::new();
    for (iface_id, ifindex) in vifs {
        let Some(pb) = snapshot.port_binding(iface_id) else {
            out.odd.insert(OddState::NoSuchPort {
                iface_id: iface_id.clone(),
            });
            continue;
        };
        if pb.is_nested() {
            out.odd.insert(OddState::IfaceIdIsChild {
                iface_id: iface_id.clone(),
            });
            continue;
        }
        if requested_elsewhere(pb) {
            out.odd.insert(OddState::RequestedElsewhere {
                port: pb.logical_port.clone(),
            });
            continue;
        }
        out.bound.push(Bound {
            port: pb.clone(),
            role: Role::Vif { ifindex: *ifindex },
        });
        // Children follow only once the SB shows the parent claimed by us.
        if ours(pb.chassis) {
            parents.insert(pb.logical_port.as_str(), *ifindex);
        }
    }

    let mut children: Vec<&Arc<PortBinding>> = snapshot
        .port_bindings()
        .filter(|pb| pb.is_nested())
        .collect();
    children.sort_by_key(|pb| (pb.tunnel_key, pb.logical_port.clone()));
    let mut tags: BTreeMap<(&str, u16), &str> = BTreeMap::new();
    for pb in children {
        let parent = pb.parent_port.as_deref().unwrap_or_default();
        let wanted_here = ours(pb.chassis) || ours(pb.requested_chassis);
        let Some(&parent_ifindex) = parents.get(parent) else {
            if let Some(parent_pb) = snapshot.port_binding(parent).filter(|p| p.is_nested()) {
                if vifs.contains_key(parent_pb.parent_port.as_deref().unwrap_or_default())
                    || wanted_here
                {
                    out.odd.insert(OddState::ParentIsChild {
                        port: pb.logical_port.clone(),
                        parent: parent.into(),
                    });
                }
            } else if wanted_here && !vifs.contains_key(parent) {
                out.odd.insert(OddState::ParentNotLocal {
                    port: pb.logical_port.clone(),
                    parent: parent.into(),
                });
            }
            continue;
        };
        let Some(tag) = pb.tag else {
            out.odd.insert(OddState::TagMissing {
                port: pb.logical_port.clone(),
            });
            continue;
        };
        if requested_elsewhere(pb) {
            out.odd.insert(OddState::RequestedElsewhere {
                port: pb.logical_port.clone(),
            });
            continue;
        }
        if !(1..=4094).contains(&tag) {
            out.odd.insert(OddState::TagReserved {
                port: pb.logical_port.clone(),
                tag,
            });
            continue;
        }
        if let Some(kept) = tags.get(&(parent, tag)) {
            out.odd.insert(OddState::DuplicateTag {
                parent: parent.into(),
                tag,
                kept: (*kept).into(),
                refused: pb.logical_port.clone(),
            });
            continue;
        }
        tags.insert((parent, tag), pb.logical_port.as_str());
        out.bound.push(Bound {
            port: pb.clone(),
            role: Role::Child {
                parent_ifindex,
                tag,
            },
        });
    }
    out
}

/// SB writes that follow a plan: claim (`chassis`), then `up=true` once the port's
/// datapath is programmed (`programmed`), and release ports this chassis holds but no
/// longer binds.
pub fn port_binding_updates(
    snapshot: &Snapshot,
    chassis: Uuid,
    plan: &Plan,
    programmed: &BTreeSet<String>,
) -> Vec<crate::ovsdb::Operation> {
    use crate::ovsdb::{Clause, Datum, Operation, RowData};
    let update = |pb: &PortBinding, row: RowData| Operation::Update {
        table: "Port_Binding".into(),
        conditions: vec![Clause::eq("_uuid", Datum::atom(pb.uuid))],
        row,
    };
    let mut ops = Vec::new();
    for bound in &plan.bound {
        let pb = &bound.port;
        if pb.chassis != Some(chassis) {
            ops.push(update(
                pb,
                RowData::from([("chassis".into(), Datum::atom(chassis))]),
            ));
        } else if pb.up != Some(true) && programmed.contains(&pb.logical_port) {
            ops.push(update(
                pb,
                RowData::from([("up".into(), Datum::atom(true))]),
            ));
        }
    }
    for pb in snapshot.port_bindings() {
        if pb.chassis == Some(chassis) && !plan.is_bound(&pb.logical_port) {
            ops.push(update(
                pb,
                RowData::from([
                    ("chassis".into(), Datum::set([])),
                    ("up".into(), Datum::atom(false)),
                ]),
            ));
        }
    }
    ops
}
