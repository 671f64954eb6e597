//! The pipeline's [`Database`] kept current from the replica's change sets: the rows the
//! sets name are converted from the snapshot (with the functions [`database`] uses) and
//! put in place, so a pass costs time in proportion to those rows, not to the Southbound.
//!
//! [`Changes::from_rows`] needs the database before and after side by side. The old
//! versions of the touched rows are moved out into a sparse database, `old`, which
//! holds only what `from_rows` reads of the old side: the touched Logical_Flow and
//! Port_Binding rows (by the positions [`TouchedRows`] gives), the old versions of the
//! touched Port_Group and Address_Set rows (it looks sets up by name, and walks the old
//! port groups only to find groups holding a changed port: the untouched groups are the
//! same in the new database, which it walks too), and, whole, the tables it compares
//! whole when flagged (datapaths, DHCP options, multicast groups, MAC bindings, FDB, load
//! balancers: those are rebuilt from the snapshot, in time proportional to that table).
//!
//! [`database`]: super::super::database

use std::borrow::Borrow;
use std::collections::BTreeSet;

use ovnest_logical::{
    db::{Database, Uuid as LUuid},
    pipeline::{Changes, Residency, TouchedRows},
};

use crate::sb::{
    AddressSet, ChangeSet, DhcpOptions, Dhcpv6Options, LogicalFlow, PortGroup, Snapshot,
};

use super::super::{
    Names, address_set, datapaths, dhcp_options, fdbs, flow, load_balancers, luuid, mac_bindings,
    mcgroups, port, port_group,
};
use super::Touched;

/// Patches `db`, the database of the replica at generation `base`, into the database of
/// `snap` (what [`database`](super::super::database) builds from it) from the change sets
/// `sets` (in generation order, others ignored), and returns what changed for
/// [`Pipeline::update`](ovnest_logical::Pipeline::update). `None`, and `db` untouched,
/// when the sets do not provably cover exactly the updates `base + 1 ..= snap`'s
/// generation or say something they cannot express, or a row is not where they say:
/// the caller then rebuilds the database and compares it whole.
pub fn patch<'a>(
    db: &mut Database,
    sets: impl IntoIterator<Item = &'a ChangeSet>,
    base: u64,
    snap: &Snapshot,
    old_res: &Residency,
    new_res: &Residency,
) -> Option<Changes> {
    let t = Touched::from_sets(sets, base, snap.generation())?;

    // Check everything and convert the new rows before changing anything.
    let table = snap.table::<LogicalFlow>();
    let mut flows = Vec::with_capacity(t.flows.len());
    let mut names = Names::default();
    for (uuid, &(before, after)) in &t.flows {
        let key = luuid(uuid);
        let new = table.get(uuid);
        let had = db.flows.binary_search_by_key(&key, |f| f.uuid).is_ok();
        if had != before || new.is_some() != after {
            return None;
        }
        flows.push((key, new.map(|f| flow(snap, f, &mut names))));
    }
    let mut ports = Vec::with_capacity(t.ports.len());
    for (name, &(before, after)) in &t.ports {
        let had = at(&db.ports, name.as_str(), |p| p.name.as_str()).map(|i| db.ports[i].uuid);
        let new = snap.port_binding(name);
        if had != before || new.map(|p| luuid(&p.uuid)) != after {
            return None;
        }
        ports.push((name.clone(), new.map(|p| port(p))));
    }
    let address_sets = by_name(&t.address_sets, |n| {
        snap.table::<AddressSet>().get(n).map(|a| address_set(a))
    });
    let port_groups = by_name(&t.port_groups, |n| {
        snap.table::<PortGroup>().get(n).map(|g| port_group(g))
    });

    let mut old = Database::default();
    let mut rows = TouchedRows::default();
    t.flag_tables(&mut rows);
    let present: Vec<(LUuid, bool)> = flows.iter().map(|(k, n)| (*k, n.is_some())).collect();
    let taken = edit(&mut db.flows, flows, |f| &f.uuid);
    for ((key, now), before) in present.into_iter().zip(taken) {
        let o = before.map(|f| {
            old.flows.push(f);
            old.flows.len() - 1
        });
        let n = now.then(|| at(&db.flows, &key, |f| &f.uuid)).flatten();
        rows.flows.push((o, n));
    }
    let present: Vec<(String, bool)> = ports
        .iter()
        .map(|(k, n)| (k.clone(), n.is_some()))
        .collect();
    let taken = edit(&mut db.ports, ports, |p| &p.name);
    for ((name, now), before) in present.into_iter().zip(taken) {
        let o = before.map(|p| {
            old.ports.push(p);
            old.ports.len() - 1
        });
        let n = now
            .then(|| at(&db.ports, name.as_str(), |p| p.name.as_str()))
            .flatten();
        rows.ports.push((o, n));
    }
    old.address_sets = edit(&mut db.address_sets, address_sets, |s| &s.0)
        .into_iter()
        .flatten()
        .collect();
    old.port_groups = edit(&mut db.port_groups, port_groups, |g| &g.0)
        .into_iter()
        .flatten()
        .collect();
    rows.address_sets = t.address_sets.into_iter().collect();
    rows.port_groups = t.port_groups.into_iter().collect();

    // The tables `from_rows` compares whole: the old one moved out, the new one built.
    if t.datapaths {
        old.datapaths = std::mem::replace(&mut db.datapaths, datapaths(snap));
    }
    if t.dhcp_options {
        old.dhcp_options =
            std::mem::replace(&mut db.dhcp_options, dhcp_options::<DhcpOptions>(snap));
        old.dhcpv6_options =
            std::mem::replace(&mut db.dhcpv6_options, dhcp_options::<Dhcpv6Options>(snap));
    }
    if t.mcgroups {
        old.mcgroups = std::mem::replace(&mut db.mcgroups, mcgroups(snap));
    }
    if t.mac_bindings {
        old.mac_bindings = std::mem::replace(&mut db.mac_bindings, mac_bindings(snap));
    }
    if t.fdbs {
        old.fdbs = std::mem::replace(&mut db.fdbs, fdbs(snap));
    }
    if t.load_balancers {
        old.load_balancers = std::mem::replace(&mut db.load_balancers, load_balancers(snap));
    }

    Some(Changes::from_rows(&old, db, &rows, old_res, new_res))
}

/// An Address_Set or Port_Group as the database holds it: name, members.
type Named = (String, Vec<String>);

/// The rows named `names` now (`None`: gone), by name.
fn by_name(
    names: &BTreeSet<String>,
    row: impl Fn(&str) -> Option<Named>,
) -> Vec<(String, Option<Named>)> {
    names.iter().map(|n| (n.clone(), row(n))).collect()
}

/// The position of the row with `key` in `v`, sorted by `key_of`.
fn at<T, K: Ord + ?Sized>(v: &[T], key: &K, key_of: impl Fn(&T) -> &K) -> Option<usize> {
    v.binary_search_by(|x| key_of(x).cmp(key)).ok()
}

/// Up to this many edits are applied one by one (an insert or removal moves the rows
/// after it); more, and the vector is rebuilt in one merge.
const IN_PLACE: usize = 16;

/// Puts `edits` (sorted by key, each key once; `None` removes) into `v` (sorted by key),
/// and returns the rows they replaced or removed, in edit order.
fn edit<T, K: Ord + ?Sized, Q: Borrow<K>>(
    v: &mut Vec<T>,
    edits: Vec<(Q, Option<T>)>,
    key_of: impl Fn(&T) -> &K,
) -> Vec<Option<T>> {
    let mut taken = Vec::with_capacity(edits.len());
    if edits.len() <= IN_PLACE {
        for (key, new) in edits {
            let old = match (v.binary_search_by(|x| key_of(x).cmp(key.borrow())), new) {
                (Ok(i), Some(new)) => Some(std::mem::replace(&mut v[i], new)),
                (Ok(i), None) => Some(v.remove(i)),
                (Err(i), Some(new)) => {
                    v.insert(i, new);
                    None
                }
                (Err(_), None) => None,
            };
            taken.push(old);
        }
        return taken;
    }
    let mut rest = std::mem::take(v).into_iter().peekable();
    let mut out = Vec::with_capacity(rest.len() + edits.len());
    for (key, new) in edits {
        let key = key.borrow();
        while let Some(x) = rest.next_if(|x| key_of(x) < key) {
            out.push(x);
        }
        taken.push(rest.next_if(|x| key_of(x) == key));
        out.extend(new);
    }
    out.extend(rest);
    *v = out;
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_in_place_and_merged_agree() {
        // Every edit kind, few (in place) and many (merged).
        for n in [3, 40] {
            let v: Vec<(u32, char)> = (0..100).map(|k| (2 * k, 'a')).collect();
            let edits: Vec<(u32, Option<(u32, char)>)> = (0..n)
                .map(|i| {
                    let k = i * 5;
                    (k, (i % 3 != 0).then_some((k, 'b')))
                })
                .collect();
            let mut want = v.clone();
            let mut taken_want = Vec::new();
            for (k, new) in edits.clone() {
                let i = want.iter().position(|x| x.0 == k);
                taken_want.push(i.map(|i| want.remove(i)));
                want.extend(new);
                want.sort();
            }
            let mut got = v.clone();
            let taken = edit(&mut got, edits, |x| &x.0);
            assert_eq!(got, want, "{n} edits");
            assert_eq!(taken, taken_want, "{n} edits");
        }
    }
}
