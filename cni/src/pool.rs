//! The VM's container ports in the Northbound: which are ovnest's (marked in
//! `external_ids`), which are free in the pool and which belong to a container, the tag
//! a new port gets, and the OVSDB operations that create, claim, return and delete them.
//! The NB is the only state: a plugin restart, a lost process or a rebooted VM rebuilds
//! everything from these marks, so a port or a tag is never leaked.
//!
//! A new port is inserted *pending*: with its parent and its tag reserved in
//! `external_ids`, but no `tag` column, so no hypervisor binds it yet (a nested port
//! without a tag cannot be bound). Once ovn-northd has allocated its addresses, one
//! update [completes](complete_op) it: `tag`, the allocated `MAC IP` as static
//! `addresses` and as `port_security`. The hypervisor then binds it with its final
//! addresses, and `up` means what it says. Pinning the allocation also keeps a running
//! container's address if the switch's subnet settings change later.
//!
//! Tags are chosen here, not by ovn-northd (`tag_request=0`), because:
//! - the insert carries a `wait` guard that no sibling holds the tag, so the choice is
//!   atomic in the NB itself (two VMs' plugins, or a racing runtime, cannot both win);
//! - it is synchronous: the tag is known when the transaction commits, with no wait for
//!   northd, and a batch of pool ports is one transaction;
//! - it stays in 1..=4094: northd hands out 1..=4095, and 4095 is reserved by 802.1Q
//!   (the hypervisor agent refuses it); when all 4094 are taken the caller gets a clear
//!   error at once instead of a port that never gets a tag (northd only logs it).

use std::collections::{BTreeMap, BTreeSet};

use ovnest_common::tagger::MAX_VID;
use ovnest_ovsdb::{
    Clause, Datum, Function, Mutation, Mutator, Operation, RowData, Uuid, WaitUntil,
};

use crate::nb::{Lsp, eq, includes_pair};

/// `free` (in the pool) or `used` (a container has it).
pub const STATE: &str = "ovnest-cni:state";
pub const CONTAINER: &str = "ovnest-cni:container";
pub const IFNAME: &str = "ovnest-cni:ifname";
/// The logical switch the pool port is on (pools are per VM and switch).
pub const SWITCH: &str = "ovnest-cni:switch";
/// Unix milliseconds of the last change (GC leaves young attachments alone).
pub const SINCE: &str = "ovnest-cni:since";
/// The tag a pending port will get (reserved: no sibling may take it meanwhile).
pub const TAG: &str = "ovnest-cni:tag";
/// How the container holding the port got it: `pool` or `new`.
pub const ORIGIN: &str = "ovnest-cni:origin";
/// `ovn` (OVN allocated them: the port can serve another container) or `given` (the
/// runtime asked for them: the port is deleted with its container).
pub const ADDRESSES: &str = "ovnest-cni:addresses";

pub const FREE: &str = "free";
pub const USED: &str = "used";

/// What ovnest-cni knows a port as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned<'a> {
    Free,
    Used { container: &'a str, ifname: &'a str },
}

/// Ours, and in which state; `None` for ports someone else made (their tags still count).
pub fn owned(lsp: &Lsp) -> Option<Owned<'_>> {
    match lsp.external_ids.get(STATE)?.as_str() {
        FREE => Some(Owned::Free),
        USED => Some(Owned::Used {
            container: lsp.external_ids.get(CONTAINER)?.as_str(),
            ifname: lsp.external_ids.get(IFNAME)?.as_str(),
        }),
        _ => None,
    }
}

pub fn since_ms(lsp: &Lsp) -> u64 {
    lsp.external_ids
        .get(SINCE)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The port a container holds, if any.
pub fn attachment<'a>(children: &'a [Lsp], container: &str, ifname: &str) -> Option<&'a Lsp> {
    children
        .iter()
        .find(|p| owned(p) == Some(Owned::Used { container, ifname }))
}

fn on_switch(p: &Lsp, switch: &str) -> bool {
    p.external_ids.get(SWITCH).map(String::as_str) == Some(switch)
}

/// Free pool ports on `switch` that a container can take now (complete), best first:
/// up already.
pub fn free_ports<'a>(children: &'a [Lsp], switch: &str) -> Vec<&'a Lsp> {
    let mut free: Vec<&Lsp> = children
        .iter()
        .filter(|p| owned(p) == Some(Owned::Free) && on_switch(p, switch))
        .filter(|p| p.tag.is_some_and(|t| t <= MAX_VID))
        .collect();
    free.sort_by_key(|p| (p.up != Some(true), p.tag));
    free
}

/// Free pool ports on `switch` still waiting for northd's addresses.
pub fn pending_free<'a>(children: &'a [Lsp], switch: &str) -> Vec<&'a Lsp> {
    children
        .iter()
        .filter(|p| owned(p) == Some(Owned::Free) && on_switch(p, switch) && p.tag.is_none())
        .collect()
}

/// The tag reserved for a pending port.
pub fn reserved_tag(lsp: &Lsp) -> Option<u16> {
    lsp.external_ids.get(TAG)?.parse().ok()
}

/// Tags in use under the parent: assigned, reserved by a pending port, or explicitly
/// requested (a non-zero `tag_request` becomes the tag once northd copies it).
pub fn tags_in_use(children: &[Lsp]) -> BTreeSet<u16> {
    children
        .iter()
        .flat_map(|p| [p.tag, reserved_tag(p), p.tag_request.filter(|t| *t != 0)])
        .flatten()
        .collect()
}

/// The `n` lowest free tags in 1..=4094 (fewer if the VM is nearly full).
pub fn free_tags(children: &[Lsp], n: usize) -> Vec<u16> {
    let used = tags_in_use(children);
    (1..=MAX_VID)
        .filter(|t| !used.contains(t))
        .take(n)
        .collect()
}

/// How many ports the next refill transaction creates: up to `min` free, counting
/// pending ones (they join the pool once northd gave them addresses), at most `batch`,
/// and never more than `min` in one refill run (`created` so far).
pub fn refill_batch(
    children: &[Lsp],
    switch: &str,
    pool: crate::config::PoolConfig,
    created: usize,
) -> usize {
    let free = free_ports(children, switch).len() + pending_free(children, switch).len();
    let min = pool.min as usize;
    min.saturating_sub(free)
        .min(pool.batch as usize)
        .min(min.saturating_sub(created))
}

/// Container ports are named after their parent and tag: unique while the tag is.
pub fn port_name(parent: &str, tag: u16) -> String {
    format!("{parent}-c{tag}")
}

/// A new port to insert.
#[derive(Debug, Clone)]
pub struct NewPort {
    pub tag: u16,
    pub name: String,
    /// `dynamic`, `MAC dynamic`, `dynamic IP` or `MAC IP`.
    pub addresses: String,
    pub external_ids: BTreeMap<String, String>,
}

fn string_map(m: &BTreeMap<String, String>) -> Datum {
    Datum::map(m.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn by_uuid(uuid: Uuid) -> Clause {
    Clause::eq("_uuid", Datum::atom(uuid))
}

/// Guards per new port, checked by [`insert_ops`]'s first operations.
pub const GUARDS: usize = 3;

fn absent(conditions: Vec<Clause>) -> Operation {
    Operation::Wait {
        table: "Logical_Switch_Port".into(),
        conditions,
        columns: vec!["name".into()],
        until: WaitUntil::Equal,
        rows: vec![],
        timeout_ms: Some(0),
    }
}

/// One transaction that inserts `ports` under `parent` on `switch`, each guarded: the
/// transaction aborts (and nothing is written) if a sibling took or reserved one of the
/// tags, or a port already has one of the names, since the caller looked. A port whose
/// addresses are all given is inserted complete; the others pending (see the module).
pub fn insert_ops(
    switch: Uuid,
    parent: &str,
    dhcp: Option<Uuid>,
    ports: &[NewPort],
) -> Vec<Operation> {
    let mut ops = Vec::with_capacity(ports.len() * (GUARDS + 1) + 1);
    for p in ports {
        let tag = p.tag.to_string();
        ops.push(absent(vec![
            eq("parent_name", parent),
            Clause::eq("tag", Datum::atom(i64::from(p.tag))),
        ]));
        ops.push(absent(vec![
            eq("parent_name", parent),
            includes_pair("external_ids", TAG, &tag),
        ]));
        ops.push(absent(vec![eq("name", &p.name)]));
    }
    for (i, p) in ports.iter().enumerate() {
        let mut ids = p.external_ids.clone();
        ids.insert(TAG.into(), p.tag.to_string());
        let mut row = RowData::from([
            ("name".into(), Datum::atom(p.name.as_str())),
            ("parent_name".into(), Datum::atom(parent)),
            ("addresses".into(), Datum::atom(p.addresses.as_str())),
        ]);
        if p.addresses.contains("dynamic") {
            ids.insert(
                ADDRESSES.into(),
                if p.addresses == "dynamic" {
                    "ovn"
                } else {
                    "given"
                }
                .into(),
            );
        } else {
            ids.insert(ADDRESSES.into(), "given".into());
            row.insert("tag".into(), Datum::atom(i64::from(p.tag)));
            row.insert("port_security".into(), Datum::atom(p.addresses.as_str()));
        }
        row.insert("external_ids".into(), string_map(&ids));
        if let Some(d) = dhcp {
            row.insert("dhcpv4_options".into(), Datum::atom(d));
        }
        ops.push(Operation::Insert {
            table: "Logical_Switch_Port".into(),
            row,
            uuid_name: Some(format!("p{i}")),
        });
    }
    ops.push(Operation::Mutate {
        table: "Logical_Switch".into(),
        conditions: vec![by_uuid(switch)],
        mutations: vec![Mutation::new(
            "ports",
            Mutator::Insert,
            Datum::set((0..ports.len()).map(|i| ovnest_ovsdb::Atom::NamedUuid(format!("p{i}")))),
        )],
    });
    ops
}

/// The marks of a port a container holds.
pub fn used_ids(
    switch: &str,
    container: &str,
    ifname: &str,
    now_ms: u64,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (STATE.to_owned(), USED.to_owned()),
        (CONTAINER.to_owned(), container.to_owned()),
        (IFNAME.to_owned(), ifname.to_owned()),
        (SWITCH.to_owned(), switch.to_owned()),
        (SINCE.to_owned(), now_ms.to_string()),
    ])
}

pub fn free_ids(switch: &str, now_ms: u64) -> BTreeMap<String, String> {
    BTreeMap::from([
        (STATE.to_owned(), FREE.to_owned()),
        (SWITCH.to_owned(), switch.to_owned()),
        (SINCE.to_owned(), now_ms.to_string()),
    ])
}

/// Gives a free pool port to a container. Matches nothing (count 0) if another run
/// claimed it first.
pub fn claim_op(lsp: &Lsp, ids: &BTreeMap<String, String>) -> Operation {
    let mut all = lsp.external_ids.clone();
    all.remove(CONTAINER);
    all.remove(IFNAME);
    all.extend(ids.iter().map(|(k, v)| (k.clone(), v.clone())));
    Operation::Update {
        table: "Logical_Switch_Port".into(),
        conditions: vec![
            by_uuid(lsp.uuid),
            includes_pair("external_ids", STATE, FREE),
        ],
        row: RowData::from([("external_ids".into(), string_map(&all))]),
    }
}

/// Returns a container's port to the pool, if it still belongs to that container.
pub fn recycle_op(lsp: &Lsp, switch: &str, container: &str, now_ms: u64) -> Operation {
    let mut all = lsp.external_ids.clone();
    all.remove(CONTAINER);
    all.remove(IFNAME);
    all.extend(free_ids(switch, now_ms));
    Operation::Update {
        table: "Logical_Switch_Port".into(),
        conditions: vec![
            by_uuid(lsp.uuid),
            includes_pair("external_ids", CONTAINER, container),
        ],
        row: RowData::from([("external_ids".into(), string_map(&all))]),
    }
}

/// Deletes ports: off every switch that lists them, then the rows.
pub fn delete_ops(ports: &[&Lsp]) -> Vec<Operation> {
    let mut ops = Vec::with_capacity(ports.len() * 2);
    for p in ports {
        ops.push(Operation::Mutate {
            table: "Logical_Switch".into(),
            conditions: vec![Clause::new(
                "ports",
                Function::Includes,
                Datum::set([ovnest_ovsdb::Atom::Uuid(p.uuid)]),
            )],
            mutations: vec![Mutation::new(
                "ports",
                Mutator::Delete,
                Datum::set([ovnest_ovsdb::Atom::Uuid(p.uuid)]),
            )],
        });
        ops.push(Operation::Delete {
            table: "Logical_Switch_Port".into(),
            conditions: vec![by_uuid(p.uuid)],
        });
    }
    ops
}

/// Completes a pending port: its reserved tag, and the `MAC IP` northd allocated as its
/// static addresses and port security. The hypervisor binds it from here on.
pub fn complete_op(lsp: &Lsp, tag: u16, mac_ip: &str) -> Operation {
    Operation::Update {
        table: "Logical_Switch_Port".into(),
        conditions: vec![by_uuid(lsp.uuid)],
        row: RowData::from([
            ("tag".into(), Datum::atom(i64::from(tag))),
            ("addresses".into(), Datum::atom(mac_ip)),
            ("port_security".into(), Datum::atom(mac_ip)),
        ]),
    }
}

/// Whether a released port goes back to the pool or is deleted: back only while the pool
/// holds fewer than `max`, and only if it is complete with addresses OVN allocated (a
/// port with runtime-given addresses is not reusable by another container).
pub fn recycles(lsp: &Lsp, free_now: usize, max: u32) -> bool {
    let from_ovn = lsp.external_ids.get(ADDRESSES).map(String::as_str) == Some("ovn");
    from_ovn && lsp.tag.is_some() && (free_now as u64) < u64::from(max)
}

/// What a garbage collection does: ports to return (containers gone) and pool ports to
/// delete (beyond `max`, or broken).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GcPlan<'a> {
    pub release: Vec<&'a Lsp>,
    pub delete_free: Vec<&'a Lsp>,
}

/// `alive(container, ifname)` says whether an attachment is still valid (CNI GC's list, or
/// the host-side veth still existing). Attachments changed in the last `grace_ms` are
/// left alone: an ADD may be between claiming its port and creating its interface.
pub fn gc_plan<'a>(
    children: &'a [Lsp],
    switch: &str,
    max: u32,
    now_ms: u64,
    grace_ms: u64,
    alive: impl Fn(&str, &str) -> bool,
) -> GcPlan<'a> {
    let mut plan = GcPlan::default();
    for p in children {
        if let Some(Owned::Used { container, ifname }) = owned(p)
            && now_ms.saturating_sub(since_ms(p)) >= grace_ms
            && !alive(container, ifname)
        {
            plan.release.push(p);
        }
    }
    let free = free_ports(children, switch);
    // Worst first: the pool keeps its best ports.
    let extra = free.len().saturating_sub(max as usize);
    plan.delete_free.extend(free.iter().rev().take(extra));
    // Pool ports that never got addresses (ovn-northd was away, the refill died).
    plan.delete_free.extend(
        pending_free(children, switch)
            .into_iter()
            .filter(|p| now_ms.saturating_sub(since_ms(p)) >= grace_ms),
    );
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(tag: u16, ids: &[(&str, &str)]) -> Lsp {
        Lsp {
            uuid: Uuid::ZERO,
            name: port_name("vm5", tag),
            parent_name: Some("vm5".into()),
            tag: Some(tag),
            tag_request: None,
            kind: String::new(),
            addresses: vec![format!("0a:00:00:00:00:{tag:02x} 10.0.0.{tag}")],
            dynamic_addresses: Some(format!("0a:00:00:00:00:{tag:02x} 10.0.0.{tag}")),
            port_security: vec![],
            up: Some(true),
            options: BTreeMap::new(),
            external_ids: ids
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn free(tag: u16) -> Lsp {
        child(
            tag,
            &[
                (STATE, FREE),
                (SWITCH, "dmz"),
                (SINCE, "0"),
                (ADDRESSES, "ovn"),
            ],
        )
    }

    fn used(tag: u16, c: &str) -> Lsp {
        child(
            tag,
            &[
                (STATE, USED),
                (CONTAINER, c),
                (IFNAME, "eth0"),
                (SWITCH, "dmz"),
                (SINCE, "1000"),
                (ADDRESSES, "ovn"),
            ],
        )
    }

    #[test]
    fn tags_are_the_lowest_free_in_1_to_4094() {
        let mut kids = vec![used(1, "a"), free(2), child(51, &[]), free(9)];
        kids[2].tag = None;
        kids[2].tag_request = Some(4);
        // A pending port's reserved tag counts.
        kids[3].tag = None;
        kids[3].external_ids.insert(TAG.into(), "3".into());
        assert_eq!(free_tags(&kids, 3), vec![5, 6, 7]);
        assert_eq!(pending_free(&kids, "dmz").len(), 1);
        assert_eq!(
            free_ports(&kids, "dmz").len(),
            1,
            "a pending port is not claimable"
        );
        let full: Vec<Lsp> = (1..=4094).map(|t| child(t, &[])).collect();
        assert!(free_tags(&full, 1).is_empty(), "4095 is never handed out");
        let mut almost = full;
        almost.pop();
        assert_eq!(free_tags(&almost, 5), vec![4094]);
    }

    #[test]
    fn marks_say_who_holds_a_port() {
        let kids = vec![used(1, "a"), free(2), child(3, &[])];
        assert_eq!(attachment(&kids, "a", "eth0").map(|p| p.tag), Some(Some(1)));
        assert!(attachment(&kids, "a", "eth1").is_none());
        assert_eq!(owned(&kids[2]), None, "a port made by someone else");
        let mut down = free(4);
        down.up = Some(false);
        let kids = vec![down, free(9), used(5, "b")];
        let f = free_ports(&kids, "dmz");
        assert_eq!(
            f.iter().map(|p| p.tag).collect::<Vec<_>>(),
            vec![Some(9), Some(4)]
        );
        assert!(free_ports(&kids, "other").is_empty());
    }

    #[test]
    fn refill_counts_pending_ports_and_stops_at_min() {
        let pool = crate::config::PoolConfig {
            min: 5,
            max: 8,
            batch: 2,
        };
        let mut pending = free(7);
        pending.tag = None;
        let kids = vec![free(1), pending.clone()];
        assert_eq!(
            refill_batch(&kids, "dmz", pool, 0),
            2,
            "5 - 2, capped by batch"
        );
        let kids = vec![
            free(1),
            pending.clone(),
            {
                let mut p = pending.clone();
                p.name = "x".into();
                p
            },
            free(2),
        ];
        assert_eq!(refill_batch(&kids, "dmz", pool, 0), 1);
        assert_eq!(
            refill_batch(&[], "dmz", pool, 5),
            0,
            "a run never makes more than min"
        );
        assert_eq!(refill_batch(&vec![free(1); 5], "dmz", pool, 0), 0);
    }

    #[test]
    fn recycling_respects_max_and_static_addresses() {
        let p = used(1, "a");
        assert!(recycles(&p, 0, 2));
        assert!(!recycles(&p, 2, 2));
        let mut fixed = p.clone();
        fixed.external_ids.insert(ADDRESSES.into(), "given".into());
        assert!(!recycles(&fixed, 0, 2));
        let mut pending = p.clone();
        pending.tag = None;
        assert!(!recycles(&pending, 0, 2));
    }

    #[test]
    fn gc_releases_dead_attachments_and_trims_the_pool() {
        let kids = vec![used(1, "alive"), used(2, "dead"), free(3), free(4), free(5)];
        let plan = gc_plan(&kids, "dmz", 2, 100_000, 10_000, |c, _| c == "alive");
        assert_eq!(plan.release.len(), 1);
        assert_eq!(plan.release[0].tag, Some(2));
        assert_eq!(plan.delete_free.len(), 1);
        // Young attachments are left to their ADD.
        let plan = gc_plan(&kids, "dmz", 9, 5_000, 10_000, |_, _| false);
        assert!(plan.release.is_empty());
    }

    #[test]
    fn inserts_are_guarded() {
        let ports = [NewPort {
            tag: 7,
            name: port_name("vm5", 7),
            addresses: "dynamic".into(),
            external_ids: free_ids("dmz", 1),
        }];
        let ops = insert_ops(Uuid::ZERO, "vm5", None, &ports);
        assert_eq!(ops.len(), GUARDS + 2);
        let j: Vec<_> = ops.iter().map(Operation::to_json).collect();
        assert_eq!(j[0]["op"], "wait");
        assert_eq!(j[0]["rows"], serde_json::json!([]));
        assert_eq!(
            j[1]["where"][1][2],
            serde_json::json!(["map", [[TAG, "7"]]])
        );
        assert_eq!(j[2]["where"][0][2], "vm5-c7");
        // Pending: the tag is reserved, not set, so no hypervisor binds it yet.
        assert!(j[3]["row"].get("tag").is_none());
        assert!(j[3]["row"].get("port_security").is_none());
        assert_eq!(
            j[4]["mutations"][0][2],
            serde_json::json!(["named-uuid", "p0"])
        );
        let given = [NewPort {
            addresses: "0a:00:00:00:00:07 10.0.0.7".into(),
            ..ports[0].clone()
        }];
        let j = insert_ops(Uuid::ZERO, "vm5", None, &given)[GUARDS].to_json();
        assert_eq!(j["row"]["tag"], 7);
        assert_eq!(j["row"]["port_security"], "0a:00:00:00:00:07 10.0.0.7");
    }
}
