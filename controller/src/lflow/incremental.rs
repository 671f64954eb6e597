//! The logical pipeline kept current from the Southbound's change sets (ovn-controller's
//! incremental processing of lflow): the rows each update touched are converted and
//! patched into the pipeline's [`Database`] ([`patch`]), become [`TouchedRows`], and
//! [`Changes::from_rows`] finds what to recompile, all in time proportional to them
//! rather than rebuilding the database and comparing two whole ones.
//!
//! Fail safe: whenever the change sets received do not provably cover exactly the
//! updates between the database compiled last and the one compiled now (a resync, a
//! lagged or new subscription, a generation missing, a row not where its change says,
//! a Logical_DP_Group changed under unchanged flows), the databases are compared whole
//! ([`Changes::between`]) instead, the database rebuilt from the snapshot.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use ovnest_logical::{
    db::{Database, Uuid as LUuid},
    pipeline::{Changes, Pipeline, Residency, TouchedRows},
};
use tokio::sync::broadcast::{self, error::TryRecvError};

use crate::ovsdb::Uuid;
use crate::sb::{
    AddressSet, ChangeSet, DatapathBinding, DhcpOptions, Dhcpv6Options, Fdb, LoadBalancer,
    LogicalDpGroup, LogicalFlow, MacBinding, MulticastGroup, PortBinding, PortGroup, RowChange,
    Snapshot, StaticMacBinding,
};

pub use patch::patch;

use super::{database, luuid};

/// How a pass found what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Compiled whole (the first pipeline).
    Compiled,
    /// From the change sets ([`Changes::from_rows`]).
    Rows,
    /// By comparing the databases whole ([`Changes::between`]): the fallback.
    Between,
}

/// One pass's result.
#[derive(Debug, Clone)]
pub struct Update {
    pub pipeline: Arc<Pipeline>,
    pub path: Path,
    /// Nothing changed: `pipeline` is the previous one.
    pub unchanged: bool,
    /// Tables rebuilt by an update (none for a full compile).
    pub rebuilt: Option<usize>,
}

/// The compiled pipeline, the input it came from, and the change sets since.
#[derive(Default)]
pub struct Incremental {
    changes: Option<broadcast::Receiver<Arc<ChangeSet>>>,
    /// Change sets received and not yet compiled, by generation.
    pending: VecDeque<Arc<ChangeSet>>,
    /// The receiver lost change sets since the last pass.
    lagged: bool,
    /// The generation of the current replica that `last`'s database was built from,
    /// when the change sets after it are known to be received.
    base: Option<u64>,
    last: Option<(Database, Residency, Arc<Pipeline>)>,
}

impl Incremental {
    /// Follows a (new) Southbound's change sets; subscribe before its first snapshot is
    /// read. The next pass compares databases whole (generations restart).
    pub fn subscribe(&mut self, changes: broadcast::Receiver<Arc<ChangeSet>>) {
        self.changes = Some(changes);
        self.pending.clear();
        self.lagged = false;
        self.base = None;
    }

    /// The pipeline compiled last.
    pub fn pipeline(&self) -> Option<&Arc<Pipeline>> {
        self.last.as_ref().map(|(_, _, p)| p)
    }

    /// The pipeline for `snap` and `residency`. `current` says `snap` came from the
    /// subscribed Southbound (not one kept from a previous connection).
    pub fn update(&mut self, snap: &Snapshot, current: bool, residency: Residency) -> Update {
        self.drain();
        let generation = snap.generation();
        let base = self.base.filter(|_| current && !self.lagged);
        // Taken: a panic below leaves the next pass a full compile.
        let (db, update) = match self.last.take() {
            None => {
                let db = database(snap);
                let update = Update {
                    pipeline: Arc::new(Pipeline::compile(&db, &residency)),
                    path: Path::Compiled,
                    unchanged: false,
                    rebuilt: None,
                };
                (db, update)
            }
            Some((mut db, old_res, old)) => {
                let patched = base.and_then(|base| {
                    let sets = self.pending.iter().map(|s| &**s);
                    patch(&mut db, sets, base, snap, &old_res, &residency)
                });
                let (changes, path) = match patched {
                    Some(changes) => (changes, Path::Rows),
                    None => {
                        let new = database(snap);
                        let changes = Changes::between(&db, &new, &old_res, &residency);
                        db = new;
                        (changes, Path::Between)
                    }
                };
                let update = if changes.is_empty() && old_res == residency {
                    Update {
                        pipeline: old,
                        path,
                        unchanged: true,
                        rebuilt: Some(0),
                    }
                } else {
                    let new = old.update(&db, &residency, &changes);
                    Update {
                        rebuilt: Some(new.tables_rebuilt_since(&old)),
                        pipeline: Arc::new(new),
                        path,
                        unchanged: false,
                    }
                };
                (db, update)
            }
        };
        if update.path != Path::Rows {
            // A full compile or comparison frees as much as it keeps.
            super::release_freed_memory();
        }
        self.lagged = false;
        self.pending.retain(|s| s.generation > generation);
        self.base = current.then_some(generation);
        self.last = Some((db, residency, update.pipeline.clone()));
        update
    }

    /// The database the pipeline was compiled (or updated) from last: what
    /// [`database`] builds from the snapshot of that pass.
    pub fn database(&self) -> Option<&Database> {
        self.last.as_ref().map(|(db, _, _)| db)
    }

    /// Takes every change set waiting in the receiver.
    fn drain(&mut self) {
        let Some(rx) = self.changes.as_mut() else {
            self.lagged = true;
            return;
        };
        loop {
            match rx.try_recv() {
                Ok(set) => self.pending.push_back(set),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(_)) => self.lagged = true,
                Err(TryRecvError::Closed) => {
                    self.lagged = true;
                    self.changes = None;
                    break;
                }
            }
        }
    }
}

/// What changed from `old` (built at `base`) to `new` (at `generation`) as the change
/// sets `sets` (in generation order, others ignored) say, in time proportional to the
/// rows they name; `None` when they do not provably cover exactly the updates
/// `base + 1 ..= generation` (one missing, a resync) or say something they cannot
/// express. What a pass of the agent runs instead of [`Changes::between`].
pub fn changes_from_sets<'a>(
    sets: impl IntoIterator<Item = &'a ChangeSet>,
    base: u64,
    generation: u64,
    old: &Database,
    new: &Database,
    old_res: &Residency,
    new_res: &Residency,
) -> Option<Changes> {
    let t = Touched::from_sets(sets, base, generation)?;
    let rows = rows(old, new, &t)?;
    Some(Changes::from_rows(old, new, &rows, old_res, new_res))
}

/// The rows the change sets of several updates touched, by key, with whether each
/// existed before the first and after the last.
#[derive(Default)]
struct Touched {
    /// Logical_Flow uuid → (existed before, exists after).
    flows: std::collections::BTreeMap<Uuid, (bool, bool)>,
    /// Port_Binding logical_port → (uuid before, uuid after).
    ports: std::collections::BTreeMap<String, (Option<LUuid>, Option<LUuid>)>,
    port_groups: BTreeSet<String>,
    address_sets: BTreeSet<String>,
    datapaths: bool,
    mcgroups: bool,
    mac_bindings: bool,
    fdbs: bool,
    dhcp_options: bool,
    load_balancers: bool,
}

impl Touched {
    /// Marks in `rows` the tables [`Changes::from_rows`] compares whole.
    fn flag_tables(&self, rows: &mut TouchedRows) {
        rows.datapaths = self.datapaths;
        rows.mcgroups = self.mcgroups;
        rows.mac_bindings = self.mac_bindings;
        rows.fdbs = self.fdbs;
        rows.dhcp_options = self.dhcp_options;
        rows.load_balancers = self.load_balancers;
    }

    /// The rows the sets `base + 1 ..= generation` touched (in generation order, others
    /// ignored); `None` when the sets do not provably cover exactly those updates (one
    /// missing, a resync) or say something they cannot express.
    fn from_sets<'a>(
        sets: impl IntoIterator<Item = &'a ChangeSet>,
        base: u64,
        generation: u64,
    ) -> Option<Touched> {
        if generation < base {
            return None;
        }
        let mut t = Touched::default();
        let mut next = base + 1;
        for set in sets.into_iter().filter(|s| s.generation > base) {
            if set.generation > generation {
                break;
            }
            // An update with no typed change publishes no set: a gap is not provably
            // empty, so it falls back.
            if set.generation != next || set.resync {
                return None;
            }
            next += 1;
            t.add(set)?;
        }
        (next == generation + 1).then_some(t)
    }

    /// Adds one update's changes; `None` for what the change list cannot express.
    fn add(&mut self, set: &ChangeSet) -> Option<()> {
        // A group's datapaths are those of every flow naming it, unchanged rows
        // included (and the monitor may bring a group in under an unchanged flow).
        if !set.of::<LogicalDpGroup>().is_empty() {
            return None;
        }
        for c in set.of::<LogicalFlow>() {
            let uuid = c.before().or(c.after())?.uuid;
            let e = self
                .flows
                .entry(uuid)
                .or_insert((c.before().is_some(), false));
            e.1 = c.after().is_some();
        }
        for c in set.of::<PortBinding>() {
            let name = c.before().or(c.after())?.logical_port.clone();
            let e = self
                .ports
                .entry(name)
                .or_insert((c.before().map(|p| luuid(&p.uuid)), None));
            e.1 = c.after().map(|p| luuid(&p.uuid));
        }
        self.port_groups
            .extend(names(set.of::<PortGroup>(), |g| &g.name));
        self.address_sets
            .extend(names(set.of::<AddressSet>(), |a| &a.name));
        self.datapaths |= !set.of::<DatapathBinding>().is_empty();
        self.mcgroups |= !set.of::<MulticastGroup>().is_empty();
        self.mac_bindings |=
            !set.of::<MacBinding>().is_empty() || !set.of::<StaticMacBinding>().is_empty();
        self.fdbs |= !set.of::<Fdb>().is_empty();
        self.dhcp_options |=
            !set.of::<DhcpOptions>().is_empty() || !set.of::<Dhcpv6Options>().is_empty();
        self.load_balancers |= !set.of::<LoadBalancer>().is_empty();
        Some(())
    }
}

fn names<'a, T>(
    changes: &'a [RowChange<T>],
    name: impl Fn(&T) -> &String + 'a,
) -> impl Iterator<Item = String> + 'a {
    changes
        .iter()
        .flat_map(|c| c.before().into_iter().chain(c.after()))
        .map(move |r| name(r).clone())
}

/// `t` as positions in the two databases, or `None` when a row is not where its changes
/// say (the databases are then compared whole).
fn rows(old: &Database, new: &Database, t: &Touched) -> Option<TouchedRows> {
    // `database` sorts flows by uuid; ports come in the replica's key order (by name).
    let flow_at = |db: &Database, uuid: LUuid| db.flows.binary_search_by_key(&uuid, |f| f.uuid);
    let port_at = |db: &Database, name: &str, uuid: Option<LUuid>| -> Option<Option<usize>> {
        let found = db
            .ports
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .ok();
        match (found, uuid) {
            (None, None) => Some(None),
            (Some(i), Some(u)) if db.ports[i].uuid == u => Some(Some(i)),
            _ => None,
        }
    };
    let mut rows = TouchedRows::default();
    for (uuid, &(before, after)) in &t.flows {
        let uuid = luuid(uuid);
        let (o, n) = (flow_at(old, uuid).ok(), flow_at(new, uuid).ok());
        if o.is_some() != before || n.is_some() != after {
            return None;
        }
        rows.flows.push((o, n));
    }
    for (name, &(before, after)) in &t.ports {
        rows.ports
            .push((port_at(old, name, before)?, port_at(new, name, after)?));
    }
    rows.port_groups = t.port_groups.iter().cloned().collect();
    rows.address_sets = t.address_sets.iter().cloned().collect();
    t.flag_tables(&mut rows);
    Some(rows)
}

mod patch;
#[cfg(test)]
mod tests;
