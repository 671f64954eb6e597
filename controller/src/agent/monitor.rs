//! What the SB monitor asks for (ovn-controller's update_sb_monitors with
//! `ovn-monitor-all=false`): rows of the local datapaths only, recomputed as bindings
//! change and sent as one `monitor_cond_change` (no reconnect, no full resync).
//!
//! - Port_Binding: every patch, chassisredirect and external port (they link datapaths
//!   and say which gateways exist), the ports bound to or requested for this chassis,
//!   the local interfaces' ports and their containers, gateway ports pinned here, and
//!   every port of a local datapath.
//! - Logical_Flow: the flows of local datapaths, and every flow with a datapath group.
//!   Groups are immutable (northd makes a new one when members change), so a condition on
//!   group UUIDs would drop a flow and bring it back on every such change: a window with
//!   a flow (an ACL's drop, say) missing. ovn-controller asks for all of them; so do we.
//! - MAC_Binding, Multicast_Group: those of local datapaths.
//! - Chassis_Private: this chassis's row (every row until the chassis is registered).
//! - Everything else in full (Datapath_Binding, Chassis, Logical_DP_Group, ...).
//!
//! `ovn-monitor-all=true` in the local Open_vSwitch DB (or `--monitor-all`) asks for
//! every row of every table.

use std::collections::BTreeSet;

use crate::{
    ovsdb::{Clause, Datum, Error, Function, MonitorCondition, Uuid},
    sb::{
        ChassisPrivate, LogicalFlow, MacBinding, MulticastGroup, PortBinding, SbRow, Snapshot,
        Southbound,
    },
};

use super::local_datapaths::local_datapaths;

/// Everything the conditions depend on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MonitorPlan {
    pub monitor_all: bool,
    /// This chassis's name, and its row once registered.
    pub chassis: String,
    pub chassis_uuid: Option<Uuid>,
    /// iface-ids of the local interfaces.
    pub local_ports: BTreeSet<String>,
    pub local_datapaths: BTreeSet<Uuid>,
}

impl MonitorPlan {
    /// The plan for the current snapshot (before the first one: no chassis row, no local
    /// datapath yet, only the local ports).
    pub fn compute(
        snapshot: &Snapshot,
        chassis: &str,
        local_ports: BTreeSet<String>,
        monitor_all: bool,
    ) -> MonitorPlan {
        let chassis_uuid = snapshot.chassis(chassis).map(|c| c.uuid);
        let local_datapaths = if monitor_all {
            BTreeSet::new()
        } else {
            local_datapaths(snapshot, chassis_uuid.map(|u| (u, chassis)), &local_ports)
        };
        MonitorPlan {
            monitor_all,
            chassis: chassis.to_owned(),
            chassis_uuid,
            local_ports,
            local_datapaths,
        }
    }

    /// The condition of every conditionally monitored table (the others are monitored
    /// in full from the start).
    pub fn conditions(&self) -> Vec<(&'static str, MonitorCondition)> {
        let tables = [
            PortBinding::TABLE,
            LogicalFlow::TABLE,
            MacBinding::TABLE,
            MulticastGroup::TABLE,
            ChassisPrivate::TABLE,
        ];
        if self.monitor_all {
            return tables.map(|t| (t, MonitorCondition::All)).to_vec();
        }
        let uuid = |u: Uuid| Datum::atom(u);
        let by_datapath = |column: &str| {
            self.local_datapaths
                .iter()
                .map(|d| Clause::eq(column, uuid(*d)))
                .collect::<Vec<_>>()
        };

        let mut pb: Vec<Clause> = ["patch", "chassisredirect", "external"]
            .iter()
            .map(|t| Clause::eq("type", Datum::atom(*t)))
            .collect();
        match self.chassis_uuid {
            Some(c) => {
                pb.push(Clause::eq("chassis", uuid(c)));
                pb.push(Clause::eq("requested_chassis", uuid(c)));
                for key in ["l2gateway-chassis", "l3gateway-chassis"] {
                    pb.push(Clause::new(
                        "options",
                        Function::Includes,
                        Datum::map([(key, self.chassis.as_str())]),
                    ));
                }
            }
            // Until the chassis row exists, gateway ports that may be ours.
            None => pb.extend(
                ["l2gateway", "l3gateway"]
                    .iter()
                    .map(|t| Clause::eq("type", Datum::atom(*t))),
            ),
        }
        for port in &self.local_ports {
            pb.push(Clause::eq("logical_port", Datum::atom(port.as_str())));
            pb.push(Clause::eq("parent_port", Datum::atom(port.as_str())));
        }
        pb.extend(by_datapath("datapath"));

        let mut lf = by_datapath("logical_datapath");
        if !self.local_datapaths.is_empty() {
            lf.push(Clause::new(
                "logical_dp_group",
                Function::Ne,
                Datum::set(Vec::new()),
            ));
        }
        let chassis_private = match self.chassis_uuid {
            Some(_) => {
                MonitorCondition::Any(vec![Clause::eq("name", Datum::atom(self.chassis.as_str()))])
            }
            None => MonitorCondition::All,
        };
        vec![
            (PortBinding::TABLE, MonitorCondition::Any(pb)),
            (LogicalFlow::TABLE, MonitorCondition::Any(lf)),
            (
                MacBinding::TABLE,
                MonitorCondition::Any(by_datapath("datapath")),
            ),
            (
                MulticastGroup::TABLE,
                MonitorCondition::Any(by_datapath("datapath")),
            ),
            (ChassisPrivate::TABLE, chassis_private),
        ]
    }
}

/// Keeps a running monitor's conditions equal to the latest plan.
#[derive(Debug, Default)]
pub struct Conditions {
    /// The plan the server has applied.
    applied: Option<MonitorPlan>,
}

impl Conditions {
    /// Starts from the plan the monitor was started with.
    pub fn started_with(plan: MonitorPlan) -> Conditions {
        Conditions {
            applied: Some(plan),
        }
    }

    pub fn applied(&self) -> Option<&MonitorPlan> {
        self.applied.as_ref()
    }

    /// Sends `plan`'s conditions if they differ from what the server has; returns
    /// whether it did. When this returns, the replica holds the rows they select.
    pub async fn update(&mut self, sb: &Southbound, plan: MonitorPlan) -> Result<bool, Error> {
        let old = self.applied.as_ref().map(MonitorPlan::conditions);
        let new = plan.conditions();
        if old.as_ref() == Some(&new) {
            self.applied = Some(plan);
            return Ok(false);
        }
        sb.set_conditions(&new).await?;
        self.applied = Some(plan);
        Ok(true)
    }
}
