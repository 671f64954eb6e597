//! This host's Chassis, Encap and Chassis_Private rows: what they should hold, and the
//! operations that make the Southbound DB agree.

use std::collections::BTreeMap;

use crate::{
    ovsdb::{Clause, Datum, Operation, RowData, Uuid},
    sb::Snapshot,
};

/// `other_config` feature flags ovn-controller 23.03 advertises. ovn-northd compares them
/// across chassis: one chassis without them makes it downgrade every chassis's logical
/// flows. `port-up-notif` makes NB `up` follow SB `Port_Binding.up`, which ovnest sets
/// only once a port's datapath is programmed.
pub const FEATURE_FLAGS: [(&str, &str); 5] = [
    ("ct-no-masked-label", "true"),
    ("mac-binding-timestamp", "true"),
    ("ovn-ct-lb-related", "true"),
    ("port-up-notif", "true"),
    ("is-interconn", "false"),
];

/// What this chassis registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChassisSpec {
    pub name: String,
    pub hostname: String,
    pub encap_type: String,
    pub encap_ip: String,
    /// `transport_zones`: a zone of its own while the chassis terminates no tunnels
    /// ([`super::encaps::Tunnels::transport_zones`]), so no other chassis tunnels to it.
    pub transport_zones: Vec<String>,
}

impl ChassisSpec {
    pub fn other_config(&self) -> BTreeMap<String, String> {
        let mut config: BTreeMap<String, String> = FEATURE_FLAGS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        config.insert("ovn-monitor-all".into(), "false".into());
        config.insert("datapath-type".into(), "ovnest-xdp".into());
        config
    }
}

fn by_name(name: &str) -> Vec<Clause> {
    vec![Clause::eq("name", Datum::atom(name))]
}

fn by_uuid(uuid: Uuid) -> Vec<Clause> {
    vec![Clause::eq("_uuid", Datum::atom(uuid))]
}

fn string_map(map: &BTreeMap<String, String>) -> Datum {
    Datum::map(map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn string_set(values: &[String]) -> Datum {
    Datum::set(values.iter().map(|v| v.as_str().into()))
}

fn encap_row(spec: &ChassisSpec) -> RowData {
    RowData::from([
        ("type".into(), Datum::atom(spec.encap_type.as_str())),
        ("ip".into(), Datum::atom(spec.encap_ip.as_str())),
        ("chassis_name".into(), Datum::atom(spec.name.as_str())),
        ("options".into(), Datum::map([("csum", "true")])),
    ])
}

/// Operations that make the SB hold `spec`'s rows; empty when it already does.
pub fn register(snapshot: &Snapshot, spec: &ChassisSpec) -> Vec<Operation> {
    let mut ops = Vec::new();
    let other_config = spec.other_config();
    let chassis_ref = match snapshot.chassis(&spec.name) {
        None => {
            ops.push(Operation::Insert {
                table: "Encap".into(),
                row: encap_row(spec),
                uuid_name: Some("encap".into()),
            });
            ops.push(Operation::Insert {
                table: "Chassis".into(),
                row: RowData::from([
                    ("name".into(), Datum::atom(spec.name.as_str())),
                    ("hostname".into(), Datum::atom(spec.hostname.as_str())),
                    ("encaps".into(), Datum::named_uuid("encap")),
                    ("other_config".into(), string_map(&other_config)),
                    ("transport_zones".into(), string_set(&spec.transport_zones)),
                ]),
                uuid_name: Some("chassis".into()),
            });
            Datum::named_uuid("chassis")
        }
        Some(chassis) => {
            let encap_ok = chassis.encaps.len() == 1
                && snapshot
                    .encap(&chassis.encaps[0])
                    .is_some_and(|e| e.encap_type == spec.encap_type && e.ip == spec.encap_ip);
            let mut row = RowData::new();
            if !encap_ok {
                // The old Encap is not a root row: it goes away once unreferenced.
                ops.push(Operation::Insert {
                    table: "Encap".into(),
                    row: encap_row(spec),
                    uuid_name: Some("encap".into()),
                });
                row.insert("encaps".into(), Datum::named_uuid("encap"));
            }
            if chassis.hostname != spec.hostname {
                row.insert("hostname".into(), Datum::atom(spec.hostname.as_str()));
            }
            if chassis.other_config != other_config {
                row.insert("other_config".into(), string_map(&other_config));
            }
            if chassis.transport_zones != spec.transport_zones {
                row.insert("transport_zones".into(), string_set(&spec.transport_zones));
            }
            if !row.is_empty() {
                ops.push(Operation::Update {
                    table: "Chassis".into(),
                    conditions: by_uuid(chassis.uuid),
                    row,
                });
            }
            Datum::atom(chassis.uuid)
        }
    };
    match snapshot.chassis_private(&spec.name) {
        None => ops.push(Operation::Insert {
            table: "Chassis_Private".into(),
            row: RowData::from([
                ("name".into(), Datum::atom(spec.name.as_str())),
                ("chassis".into(), chassis_ref),
            ]),
            uuid_name: None,
        }),
        Some(private) => {
            let linked = snapshot
                .chassis(&spec.name)
                .is_some_and(|c| private.chassis == Some(c.uuid));
            if !linked {
                ops.push(Operation::Update {
                    table: "Chassis_Private".into(),
                    conditions: by_uuid(private.uuid),
                    row: RowData::from([("chassis".into(), chassis_ref)]),
                });
            }
        }
    }
    ops
}

/// Operations that remove this chassis from the SB on a clean exit, as
/// `ovn-controller --cleanup` does: Chassis_Private, Chassis (its Encaps follow).
pub fn unregister(name: &str) -> Vec<Operation> {
    vec![
        Operation::Delete {
            table: "Chassis_Private".into(),
            conditions: by_name(name),
        },
        Operation::Delete {
            table: "Chassis".into(),
            conditions: by_name(name),
        },
    ]
}

/// Records that this chassis has caught up with `nb_cfg` (what `ovn-nbctl --wait=hv`
/// waits for).
pub fn ack_nb_cfg(private: Uuid, nb_cfg: i64, now_ms: i64) -> Operation {
    Operation::Update {
        table: "Chassis_Private".into(),
        conditions: by_uuid(private),
        row: RowData::from([
            ("nb_cfg".into(), Datum::atom(nb_cfg)),
            ("nb_cfg_timestamp".into(), Datum::atom(now_ms)),
        ]),
    }
}
