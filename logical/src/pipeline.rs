//! The compiled logical pipeline: for every datapath, pipeline and table, the logical
//! flows as a [`Classifier`]; plus the ports, multicast groups, MAC bindings and FDB
//! entries the actions consult.
//!
//! Compilation follows ovn-trace's `read_db`: a flow whose match or actions do not
//! parse, or whose match is too large to index, is left out and reported
//! ([`Pipeline::errors`]) with its UUID, never skipped silently.
//!
//! When the Southbound changes ([`Changes::from_rows`] from the rows an update touched,
//! or [`Changes::between`] two databases), [`Pipeline::update`] touches only the tables
//! a changed row, or a changed name their matches refer to, is in (ovn-controller's
//! incremental processing of lflows): the others are shared with the previous
//! pipeline. A table whose rows changed is edited in place (the old rows' rules taken
//! out of its classifier, the new ones put in, ties placed by the IDL order kept in
//! [`IdlOrder`]); one whose flows refer to a changed name is rebuilt, the flows that
//! did not change keeping their compiled rules.

use std::sync::{Arc, OnceLock};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::actions::{self, Action, OptionTable, ParseParams, Pipeline as Dir};
use crate::classifier::Classifier;
use crate::db::{Database, LogicalFlow, LportAddresses, Uuid};
use crate::expr::{self, Annotator, Conj, Match, Sets};
use crate::flow::{WORDS, WordSet};
use crate::idl_order::IdlOrder;
use crate::lex::{self, JsonStr, Token};
use crate::symtab::symtab;

mod classes;
mod plan;

/// Index of a datapath in the pipeline's datapaths.
pub type DpId = u32;
/// Index of a port in the pipeline's ports.
pub type PortId = u32;

/// Where a compiled flow lives: its datapath, pipeline and table, and its index there.
/// Tables are compiled (and shared between pipeline versions) one by one, so a flow is
/// named by its table rather than by a pipeline-wide number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowId {
    pub dp: DpId,
    pub egress: bool,
    pub table: u8,
    pub idx: u32,
}

/// Disjuncts one logical flow may expand to before it is refused.
pub const MAX_CONJS_PER_FLOW: usize = 100_000;

/// Which chassis `is_chassis_resident()` is evaluated for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Residency {
    /// As ovn-trace: every port that exists is resident.
    #[default]
    Everywhere,
    /// As ovn-controller on one chassis: only these ports (shared, so that a pipeline
    /// keeps its caller's set without copying it and compares it in O(1) while the
    /// caller passes the same one).
    Ports(Arc<std::collections::HashSet<String>>),
}

#[derive(Debug, Clone)]
pub struct DatapathInfo {
    pub uuid: Uuid,
    pub key: u32,
    pub name: String,
    pub name2: Option<String>,
    pub nb_uuid: Uuid,
    pub friendly: String,
    pub is_router: bool,
    pub has_local_l3gateway: bool,
    ports_by_key: PortKeys,
    mcgroups: Vec<McGroupInfo>,
    /// (port key, IP as IPv6 or IPv4-mapped) → MAC.
    mac_bindings: FxHashMap<(u32, u128), u64>,
    /// MAC → port key.
    fdb: FxHashMap<u64, u32>,
}

/// A datapath's ports by tunnel key. northd allots port keys from 1 up (at most
/// 32,767 in a switch), so an array indexed by key; a key beyond [`PortKeys::DENSE`]
/// (an odd Southbound row) in a map. A walk looks a port up by key at every output
/// and port-security check.
#[derive(Debug, Clone, Default)]
struct PortKeys {
    dense: Vec<PortId>,
    sparse: FxHashMap<u32, PortId>,
}

impl PortKeys {
    /// Keys below this are in the array.
    const DENSE: u32 = 1 << 15;
    const NONE: PortId = PortId::MAX;

    #[inline]
    fn get(&self, key: u32) -> Option<PortId> {
        match self.dense.get(key as usize) {
            Some(&id) if id != Self::NONE => Some(id),
            Some(_) => None,
            None if key < Self::DENSE => None,
            None => self.sparse.get(&key).copied(),
        }
    }

    /// Adds `key` unless a port has it already (the first port read keeps it).
    fn insert(&mut self, key: u32, id: PortId) {
        if key >= Self::DENSE {
            self.sparse.entry(key).or_insert(id);
            return;
        }
        let k = key as usize;
        if self.dense.len() <= k {
            self.dense.resize(k + 1, Self::NONE);
        }
        if self.dense[k] == Self::NONE {
            self.dense[k] = id;
        }
    }
}

#[derive(Debug, Clone)]
pub struct McGroupInfo {
    pub name: String,
    pub key: u32,
    /// Members, sorted by name as ovn-trace sorts them.
    pub ports: Vec<PortId>,
}

#[derive(Debug, Clone)]
pub struct PortInfo {
    pub uuid: Uuid,
    pub name: String,
    pub name2: Option<String>,
    pub friendly: String,
    pub dp: DpId,
    pub key: u32,
    pub ty: String,
    pub peer: Option<PortId>,
    pub distributed_port: Option<PortId>,
    pub port_security: Vec<LportAddresses>,
}

/// Datapaths, ports, multicast groups, MAC bindings and FDB: what the actions consult,
/// read again as a whole when any of it changes (it is small next to the flows).
#[derive(Debug, Clone, Default)]
struct Topology {
    datapaths: Vec<DatapathInfo>,
    ports: Vec<PortInfo>,
    ports_by_name: FxHashMap<String, PortId>,
    /// By `external_ids:name` (none: two ports have it). Actions name multicast groups
    /// per packet, and a group is looked for only after the ports' names.
    ports_by_name2: FxHashMap<String, Option<PortId>>,
    dp_by_key: FxHashMap<u32, DpId>,
    dp_by_uuid: FxHashMap<Uuid, DpId>,
    /// Some port has a friendly name other than its name (matches are then rewritten).
    any_friendly: bool,
    lb_vips: LbVips,
}

/// The load-balancer VIPs, indexed by address: the hairpin actions look one up for
/// every IP packet of a switch with load balancers.
#[derive(Debug, Clone, Default)]
pub struct LbVips {
    vips: Vec<LbVip>,
    /// VIP address (IPv4-mapped for IPv4) → its entries in `vips`, in row order.
    by_addr: FxHashMap<u128, Vec<usize>>,
    /// Every VIP's `hairpin_snat` address (IPv4-mapped for IPv4).
    hairpin_sources: FxHashSet<u128>,
}

impl LbVips {
    fn push(&mut self, vip: LbVip) {
        self.by_addr
            .entry(mapped(vip.addr))
            .or_default()
            .push(self.vips.len());
        self.hairpin_sources.insert(mapped(vip.hairpin_snat));
        self.vips.push(vip);
    }

    /// The VIPs at `addr` (IPv4-mapped for IPv4), in the Southbound's row order.
    pub fn at(&self, addr: u128) -> impl Iterator<Item = &LbVip> {
        self.by_addr
            .get(&addr)
            .into_iter()
            .flatten()
            .map(|&i| &self.vips[i])
    }

    /// Whether a hairpinned session's source can be `addr` (a VIP, or its
    /// `hairpin_snat_ip`).
    pub fn is_hairpin_source(&self, addr: u128) -> bool {
        self.hairpin_sources.contains(&addr)
    }
}

/// An address as a `u128`, IPv4 as IPv4-mapped IPv6.
fn mapped(a: actions::Addr) -> u128 {
    match a {
        actions::Addr::V4(v) => v4_mapped(v),
        actions::Addr::V6(v) => v,
    }
}

/// A load-balancer VIP, for the hairpin actions (`chk_lb_hairpin`, `ct_snat_to_vip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbVip {
    pub addr: actions::Addr,
    /// 0 when the VIP has no port.
    pub port: u16,
    /// The `vips` key, `IP[:PORT]`.
    pub key: String,
    /// What a hairpinned session's source becomes: `hairpin_snat_ip` of the VIP's
    /// family, else the VIP.
    pub hairpin_snat: actions::Addr,
}

/// The class of a walk that uses none (one that tracks wildcards).
pub const NO_CLASS: usize = classes::N;

/// Set in a classifier rule's id when its flow is omitted ([`CompiledFlow::omit`]), so
/// a lookup skips such a stage without reading the flow.
const OMIT: u32 = 1 << 31;

/// One constrained word of a classifier rule: (word, mask, value).
type Term = (u8, u64, u64);
/// Starts a conjunction in a flow's term list: (`CONJ`, number of terms, 0).
const CONJ: u8 = u8::MAX;
/// A flow and its classifier terms.
type Resolved = (CompiledFlow, Arc<[Term]>);
/// A flow that did not compile for a table, with its match.
type Failed = (FlowError, Arc<str>);

/// Flow slots per chunk of a table ([`Table::slots`]).
const CHUNK: usize = 64;

/// The tie order of a table's `n`-th flow when it is built is `n * GAP`: an update puts
/// a flow between two others without renumbering them.
const GAP: u32 = 1 << 10;

/// One flow of a table.
#[derive(Debug, Clone)]
struct Slot {
    flow: CompiledFlow,
    /// Its conjunctions, so an update edits or rebuilds the classifier without
    /// compiling the flows that did not change.
    terms: Arc<[Term]>,
    /// Its rules' tie order in the classifier (increasing in lookup order).
    order: u32,
    /// The packet classes its match can match, and matches whole.
    classes: classes::FlowClasses,
}

/// One (datapath, pipeline, table): its classifier and the flows it points at. Shared
/// between pipeline versions until a flow in it, or a name it refers to, changes.
#[derive(Debug, Clone, Default)]
struct Table {
    classifier: Classifier,
    /// Per packet class, the flow every frame of the class gets, if one does.
    classes: classes::Outcomes,
    stage_name: Option<Arc<str>>,
    /// The flows by rule id, in chunks of [`CHUNK`] shared between versions of the
    /// table (an update copies only the chunks it writes). A removed flow's slot keeps
    /// it, unreferenced, until the table is rebuilt.
    slots: Vec<Arc<Vec<Slot>>>,
    /// The live slots in lookup order (descending priority, then the IDL's order).
    order: Vec<u32>,
    /// Flows of this table that did not compile here, with the match they had.
    failed: Vec<(FlowError, Arc<str>)>,
    /// Hashes of the names (ports, groups, sets) the matches refer to, sorted (shared
    /// between versions of the table until a flow brings a new one).
    refs: Arc<Vec<u64>>,
}

/// One logical flow compiled for one datapath.
#[derive(Debug, Clone)]
pub struct CompiledFlow {
    pub uuid: Uuid,
    pub egress: bool,
    pub table: u8,
    pub priority: u16,
    pub stage_name: Option<Arc<str>>,
    pub source: Option<Arc<str>>,
    /// The match as the SB has it, port names made friendly (ovn-trace's `match_s`).
    pub match_s: Arc<str>,
    pub actions: Arc<[Action]>,
    /// Match always true and the only action `next;` to the following table: the
    /// stage is left out of traces (ovn-trace's `may_omit_stage`).
    pub omit: bool,
    /// The match as the SB has it.
    match_raw: Arc<str>,
}

impl CompiledFlow {
    /// Hashes of the names the flow refers to: in its match (see [`names_in`]) and the
    /// port names its actions load (see [`resolve_loads`]).
    fn names(&self) -> impl Iterator<Item = u64> + '_ {
        names_in(&self.match_raw).chain(name_loads(&self.actions).map(|(n, _)| name_hash(n)))
    }

    /// Its only action is `next;` to the following table.
    fn next_only(&self) -> bool {
        let dir = if self.egress {
            Dir::Egress
        } else {
            Dir::Ingress
        };
        matches!(&*self.actions, [Action::Next { pipeline, table, .. }]
            if *pipeline == dir && *table == self.table + 1)
    }
}

/// A flow the pipeline could not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowError {
    pub uuid: Uuid,
    pub datapath: Option<Uuid>,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
struct DpTables {
    tables: [Vec<Arc<Table>>; 2],
    /// Per table, the first table from it on that is not trivial (its only flow
    /// matches everything and says `next;`): the interpreter jumps there without
    /// lookups.
    skip: [Vec<u8>; 2],
    /// The walks that record nothing: per packet class and table entered, the first
    /// table from it on they must look at (`skip` without the tables whose flows the
    /// class can reach all say only `next;`, see `classes`) and what they find there.
    /// Built by the first such walk (a pipeline no frame crosses on this chassis never
    /// pays for it, and an update that changes many datapaths' tables does not wait
    /// for it) and shared by the versions of the pipeline its tables are in.
    plan: [Arc<OnceLock<plan::Plan>>; 2],
}

impl DpTables {
    /// The plan of pipeline `e` (0: ingress), built on first use.
    #[inline]
    fn plan(&self, e: usize) -> &plan::Plan {
        self.plan[e].get_or_init(|| plan::Plan::new(&self.tables[e], &self.skip[e]))
    }
}

/// One pipeline of one datapath, for walks that record nothing (no trace, no
/// wildcards): its plan and its tables.
#[derive(Clone, Copy)]
pub(crate) struct Stages<'a> {
    dp: DpId,
    egress: bool,
    plan: &'a plan::Plan,
    tables: &'a [Arc<Table>],
}

impl<'a> Stages<'a> {
    /// [`Pipeline::stage_flow`] for a frame of `class` (one of [`classes::N`]): the
    /// class's plan, whose skips include the trivial stages.
    #[inline(always)]
    pub(crate) fn find(
        &self,
        table: u8,
        class: usize,
        flow: &crate::flow::Flow,
    ) -> (u8, Option<(FlowId, &'a [Action])>) {
        let (plan, tables) = (self.plan, self.tables);
        let found = |table: u8, idx: u32, actions: &'a [Action]| {
            let fid = FlowId {
                dp: self.dp,
                egress: self.egress,
                table,
                idx,
            };
            (table, Some((fid, actions)))
        };
        let mut table = table;
        loop {
            let step = plan.step(class, table);
            let hit = plan.found(step, flow, || {
                tables[usize::from(step.table)]
                    .classifier
                    .lookup(flow, None)
            });
            match hit {
                Some(plan::Hit::Act(a)) if !a.pass => {
                    return found(step.table, a.id, &a.actions[..]);
                }
                Some(plan::Hit::Rule(id)) if id & OMIT == 0 => {
                    let t = &tables[usize::from(step.table)];
                    return found(step.table, id, &t.slot(id).flow.actions[..]);
                }
                // A flow passed over: on to the next stage, as on entry.
                Some(_) => table = step.table + 1,
                None => return (step.table, None),
            }
        }
    }
}

/// A compiled logical pipeline.
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    topo: Arc<Topology>,
    tables: Vec<DpTables>,
    /// Flows not compiled: those whose actions do not parse (for every datapath), then
    /// table by table those whose match does not.
    pub errors: Vec<FlowError>,
    pub(crate) sets: Arc<Sets>,
    /// Flow rows whose actions did not parse, by UUID order.
    row_errors: Arc<Vec<FlowError>>,
    /// The IDL's iteration order of the Logical_Flow rows (ties between equal
    /// priorities), each row with its [`place`].
    order: IdlOrder,
    residency: Residency,
    n_flows: usize,
    options: Arc<Options>,
}

/// The rows one Southbound update touched (inserted, modified or deleted), as an OVSDB
/// monitor update names them: what [`Changes::from_rows`] reads instead of comparing
/// two whole databases. A row listed that did not change costs nothing but a compare.
#[derive(Debug, Clone, Default)]
pub struct TouchedRows {
    /// Logical_Flow rows: (index in the old database's `flows`, index in the new
    /// one's), none where the row is absent. Each row once.
    pub flows: Vec<(Option<usize>, Option<usize>)>,
    /// Port_Binding rows, the same in `ports`.
    pub ports: Vec<(Option<usize>, Option<usize>)>,
    /// Port_Group rows, by name.
    pub port_groups: Vec<String>,
    /// Address_Set rows, by name.
    pub address_sets: Vec<String>,
    /// Some Datapath_Binding row changed.
    pub datapaths: bool,
    /// Some Multicast_Group row changed.
    pub mcgroups: bool,
    /// Some MAC_Binding row changed.
    pub mac_bindings: bool,
    /// Some FDB row changed.
    pub fdbs: bool,
    /// Some DHCP_Options or DHCPv6_Options row changed.
    pub dhcp_options: bool,
    /// Some Load_Balancer row changed.
    pub load_balancers: bool,
}

impl TouchedRows {
    /// Adds Logical_Flow row `uuid`, found by a scan of both databases (for tests and
    /// fixtures: an OVSDB client knows where it put the rows).
    pub fn flow(&mut self, old: &Database, new: &Database, uuid: Uuid) {
        let at = |db: &Database| db.flows.iter().position(|f| f.uuid == uuid);
        self.flows.push((at(old), at(new)));
    }

    /// Adds Port_Binding row `uuid`, found by a scan of both databases.
    pub fn port(&mut self, old: &Database, new: &Database, uuid: Uuid) {
        let at = |db: &Database| db.ports.iter().position(|p| p.uuid == uuid);
        self.ports.push((at(old), at(new)));
    }
}

/// What changed between two databases, as far as the compiled pipeline cares
/// ([`Changes::between`]); [`Pipeline::update`] recompiles only what it names.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// Something only a full compile handles (datapaths, DHCP option definitions, the
    /// kind of residency).
    pub full: bool,
    /// Ports, multicast groups, MAC bindings, FDB or load balancers differ.
    pub topology: bool,
    /// Address sets or port groups differ.
    pub sets: bool,
    /// Flow rows were added or removed (not only modified): the IDL order moves.
    pub flow_set: bool,
    /// Rows removed or modified (their old version leaves the pipeline).
    pub gone: FxHashSet<Uuid>,
    /// Indices in the new database's flows of rows added or modified.
    pub added: Vec<usize>,
    /// (datapath, egress, table) holding a row that changed.
    pub tables: FxHashSet<(Uuid, bool, u8)>,
    /// Names whose meaning in a match changed: ports (existence, datapath, key,
    /// friendly name, residency), port groups, address sets, multicast groups.
    pub names: FxHashSet<String>,
}

impl Changes {
    /// True when the pipeline compiled from `old` serves `new` as it is.
    pub fn is_empty(&self) -> bool {
        !self.full
            && !self.topology
            && !self.sets
            && !self.flow_set
            && self.gone.is_empty()
            && self.added.is_empty()
            && self.names.is_empty()
    }

    /// The differences between `old` compiled for `old_res` and `new` for `new_res`,
    /// found by comparing the two databases whole (O(rows): the oracle of
    /// [`Changes::from_rows`], which an OVSDB client's change list drives).
    pub fn between(
        old: &Database,
        new: &Database,
        old_res: &Residency,
        new_res: &Residency,
    ) -> Changes {
        let mut c = Changes::residency(old_res, new_res);
        c.full |= old.datapaths != new.datapaths
            || old.dhcp_options != new.dhcp_options
            || old.dhcpv6_options != new.dhcpv6_options;
        if c.full {
            return c;
        }
        c.diff_flows(old, new);
        if old.ports != new.ports {
            c.topology = true;
            let by_name = |db: &Database| -> FxHashMap<String, (Uuid, u32, Option<String>)> {
                db.ports
                    .iter()
                    .map(|p| (p.name.clone(), (p.datapath, p.tunnel_key, p.name2.clone())))
                    .collect()
            };
            let (a, b) = (by_name(old), by_name(new));
            let mut ports: FxHashSet<String> = FxHashSet::default();
            for (name, v) in &a {
                if b.get(name) != Some(v) {
                    ports.insert(name.clone());
                }
            }
            for name in b.keys() {
                if !a.contains_key(name) {
                    ports.insert(name.clone());
                }
            }
            c.add_ports(old, new, ports);
        }
        c.diff_mcgroups(old, new);
        c.topology |= old.mac_bindings != new.mac_bindings
            || old.fdbs != new.fdbs
            || old.load_balancers != new.load_balancers;
        for (a, b) in [
            (&old.address_sets, &new.address_sets),
            (&old.port_groups, &new.port_groups),
        ] {
            if a != b {
                c.sets = true;
                let a: FxHashMap<&str, &Vec<String>> =
                    a.iter().map(|(n, v)| (n.as_str(), v)).collect();
                let b: FxHashMap<&str, &Vec<String>> =
                    b.iter().map(|(n, v)| (n.as_str(), v)).collect();
                for (n, v) in &a {
                    if b.get(n) != Some(v) {
                        c.add_set_name(n);
                    }
                }
                for n in b.keys() {
                    if !a.contains_key(n) {
                        c.add_set_name(n);
                    }
                }
            }
        }
        c
    }

    /// The same as [`Changes::between`]`(old, new, old_res, new_res)` when `rows` names
    /// every row the update from `old` to `new` touched (as an OVSDB monitor update
    /// names them), in time proportional to those rows rather than to the databases
    /// (a port whose name or key changed also walks the port groups).
    pub fn from_rows(
        old: &Database,
        new: &Database,
        rows: &TouchedRows,
        old_res: &Residency,
        new_res: &Residency,
    ) -> Changes {
        let mut c = Changes::residency(old_res, new_res);
        c.full |= rows.datapaths && old.datapaths != new.datapaths
            || rows.dhcp_options
                && (old.dhcp_options != new.dhcp_options
                    || old.dhcpv6_options != new.dhcpv6_options);
        if c.full {
            return c;
        }
        for &(o, n) in &rows.flows {
            let x = o.and_then(|i| old.flows.get(i));
            let y = n.and_then(|i| new.flows.get(i));
            match (x, y) {
                (Some(x), Some(y)) => {
                    if x != y {
                        c.gone.insert(x.uuid);
                        c.added.extend(n);
                        c.touch(x);
                        c.touch(y);
                    }
                }
                (Some(x), None) => {
                    c.gone.insert(x.uuid);
                    c.flow_set = true;
                    c.touch(x);
                }
                (None, Some(y)) => {
                    c.added.extend(n);
                    c.flow_set = true;
                    c.touch(y);
                }
                (None, None) => {}
            }
        }
        let mut ports: FxHashSet<String> = FxHashSet::default();
        for &(o, n) in &rows.ports {
            let x = o.and_then(|i| old.ports.get(i));
            let y = n.and_then(|i| new.ports.get(i));
            if x == y {
                continue;
            }
            c.topology = true;
            let key = |p: &crate::db::Port| (p.datapath, p.tunnel_key, p.name2.clone());
            match (x, y) {
                (Some(x), Some(y)) if x.name == y.name => {
                    if key(x) != key(y) {
                        ports.insert(x.name.clone());
                    }
                }
                _ => ports.extend(x.into_iter().chain(y).map(|p| p.name.clone())),
            }
        }
        if !ports.is_empty() {
            c.add_ports(old, new, ports);
        }
        if rows.mcgroups {
            c.diff_mcgroups(old, new);
        }
        c.topology |= rows.mac_bindings && old.mac_bindings != new.mac_bindings
            || rows.fdbs && old.fdbs != new.fdbs
            || rows.load_balancers && old.load_balancers != new.load_balancers;
        for (names, a, b) in [
            (&rows.address_sets, &old.address_sets, &new.address_sets),
            (&rows.port_groups, &old.port_groups, &new.port_groups),
        ] {
            for name in names {
                let find = |v: &Vec<(String, Vec<String>)>| {
                    v.iter().find(|(n, _)| n == name).map(|(_, m)| m.clone())
                };
                if find(a) != find(b) {
                    c.sets = true;
                    c.add_set_name(name);
                }
            }
        }
        c
    }

    /// What a change of residency alone changes.
    fn residency(old_res: &Residency, new_res: &Residency) -> Changes {
        let mut c = Changes::default();
        match (old_res, new_res) {
            (Residency::Everywhere, Residency::Everywhere) => {}
            (Residency::Ports(a), Residency::Ports(b)) => {
                if a != b {
                    c.names.extend(a.symmetric_difference(b).cloned());
                }
            }
            _ => c.full = true,
        }
        c
    }

    /// Ports whose existence, datapath, key or friendly name changed: their names, and
    /// the groups holding them (a port in `@pg` is resolved through the group).
    fn add_ports(&mut self, old: &Database, new: &Database, ports: FxHashSet<String>) {
        for db in [old, new] {
            for (pg, members) in &db.port_groups {
                if members.iter().any(|m| ports.contains(m.as_str())) {
                    self.add_set_name(pg);
                }
            }
        }
        self.names.extend(ports);
    }

    fn diff_mcgroups(&mut self, old: &Database, new: &Database) {
        if old.mcgroups != new.mcgroups {
            self.topology = true;
            let keys = |db: &Database| -> FxHashSet<(Uuid, String, u32)> {
                db.mcgroups
                    .iter()
                    .map(|m| (m.datapath, m.name.clone(), m.tunnel_key))
                    .collect()
            };
            let (a, b) = (keys(old), keys(new));
            self.names
                .extend(a.symmetric_difference(&b).map(|(_, n, _)| n.clone()));
        }
    }

    /// The tables `f` is in.
    fn touch(&mut self, f: &LogicalFlow) {
        for dp in &f.datapaths {
            self.tables.insert((*dp, f.egress, f.table_id));
        }
    }

    /// A set's name, and for a port group also the name `@pg` has in a match (the SB
    /// names a datapath's share of group `pg` `<key>_pg`).
    fn add_set_name(&mut self, name: &str) {
        if let Some((key, rest)) = name.split_once('_')
            && !key.is_empty()
            && key.bytes().all(|b| b.is_ascii_digit())
        {
            self.names.insert(rest.to_owned());
        }
        self.names.insert(name.to_owned());
    }

    fn diff_flows(&mut self, old: &Database, new: &Database) {
        let order = |db: &Database| -> Vec<usize> {
            let mut idx: Vec<usize> = (0..db.flows.len()).collect();
            if !db.flows.is_sorted_by_key(|f| f.uuid) {
                idx.sort_by_key(|&i| db.flows[i].uuid);
            }
            idx
        };
        let (a, b) = (order(old), order(new));
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let fa = a.get(i).map(|&k| &old.flows[k]);
            let fb = b.get(j).map(|&k| &new.flows[k]);
            match (fa, fb) {
                (Some(x), Some(y)) if x.uuid == y.uuid => {
                    if x != y {
                        self.gone.insert(x.uuid);
                        self.added.push(b[j]);
                        self.touch(x);
                        self.touch(y);
                    }
                    i += 1;
                    j += 1;
                }
                (Some(x), y) if y.is_none_or(|y| x.uuid < y.uuid) => {
                    self.gone.insert(x.uuid);
                    self.flow_set = true;
                    self.touch(x);
                    i += 1;
                }
                (_, Some(y)) => {
                    self.added.push(b[j]);
                    self.flow_set = true;
                    self.touch(y);
                    j += 1;
                }
                _ => unreachable!("one side has a row"),
            }
        }
    }
}

/// A row's parts that do not depend on the datapath.
struct RowParts {
    actions: Arc<[Action]>,
    prereqs: Match,
    stage_name: Option<Arc<str>>,
    source: Option<Arc<str>>,
    match_s: Arc<str>,
    match_raw: Arc<str>,
}

/// The option tables actions are parsed against. They change only with the
/// DHCP_Options rows, which an update does not follow (it compiles anew), so a pipeline
/// keeps them for its updates.
#[derive(Debug, Default)]
struct Options {
    dhcp: OptionTable,
    dhcp6: OptionTable,
    nd_ra: OptionTable,
    events: OptionTable,
}

impl Options {
    fn read(db: &Database) -> Options {
        let mut dhcp = OptionTable::default();
        for o in &db.dhcp_options {
            dhcp.add(&o.name, o.code, &o.ty);
        }
        let mut dhcp6 = OptionTable::default();
        for o in &db.dhcpv6_options {
            dhcp6.add(&o.name, o.code, &o.ty);
        }
        Options {
            dhcp,
            dhcp6,
            nd_ra: OptionTable::nd_ra(),
            events: OptionTable::lb_event(),
        }
    }
}

/// What compiles rows: the option tables, the sets, caches shared across rows.
struct Compiler<'a> {
    topo: &'a Topology,
    sets: &'a Sets,
    residency: &'a Residency,
    options: &'a Options,
    annotator: Annotator,
    /// Annotated matches by (match text, datapath key when `@pg` makes it matter).
    match_cache: FxHashMap<(Arc<str>, u32), Result<Match, String>>,
    prereq_cache: FxHashMap<Vec<String>, Result<Match, String>>,
}

/// A flow compiled for one table but not yet resolved into classifier rules.
enum Pending {
    Compiled(CompiledFlow, Match),
    Reused(CompiledFlow, Arc<[Term]>),
}

impl Pending {
    fn flow(&self) -> &CompiledFlow {
        match self {
            Pending::Compiled(f, _) | Pending::Reused(f, _) => f,
        }
    }
}

/// Flows bound for one table, and the flows that failed there.
#[derive(Default)]
struct Bucket {
    pending: Vec<Pending>,
    failed: Vec<(FlowError, Arc<str>)>,
    /// Names the reused flows refer to.
    refs: Vec<u64>,
}

type TableKey = (DpId, bool, u8);

impl<'a> Compiler<'a> {
    fn new(
        options: &'a Options,
        topo: &'a Topology,
        sets: &'a Sets,
        residency: &'a Residency,
    ) -> Self {
        Compiler {
            topo,
            sets,
            residency,
            options,
            annotator: Annotator::default(),
            match_cache: FxHashMap::default(),
            prereq_cache: FxHashMap::default(),
        }
    }

    /// Parses a row's actions and prerequisites; `Err` is a row error.
    fn row(&mut self, lf: &LogicalFlow) -> Result<RowParts, FlowError> {
        let dir = if lf.egress { Dir::Egress } else { Dir::Ingress };
        let pp = ParseParams {
            dhcp_opts: &self.options.dhcp,
            dhcpv6_opts: &self.options.dhcp6,
            nd_ra_opts: &self.options.nd_ra,
            event_opts: &self.options.events,
            pipeline: dir,
            table: lf.table_id,
            n_tables: actions::LOG_PIPELINE_LEN,
        };
        let parsed = actions::parse(&lf.actions, &pp).map_err(|e| FlowError {
            uuid: lf.uuid,
            datapath: None,
            reason: format!("{}: parsing actions failed ({e})", lf.actions),
        })?;
        let annotator = &mut self.annotator;
        let prereqs = self
            .prereq_cache
            .entry(parsed.prereqs.clone())
            .or_insert_with(|| {
                let mut m = Match::Bool(true);
                for p in &parsed.prereqs {
                    let e = expr::parse(p, symtab(), &expr::NoSets, 0)?;
                    m = m.and(annotator.annotate(symtab(), &e)?);
                }
                Ok(m)
            })
            .clone()
            .map_err(|e| FlowError {
                uuid: lf.uuid,
                datapath: None,
                reason: format!("match annotation failed ({e})"),
            })?;
        let friendly = self.topo.make_names_friendly(&lf.match_);
        Ok(RowParts {
            actions: parsed.actions.into(),
            prereqs,
            // The row's strings, not copies.
            stage_name: lf.stage_name.clone(),
            source: lf.source.clone(),
            // One string when no port name was made friendly.
            match_s: if *friendly == *lf.match_ {
                lf.match_.clone()
            } else {
                friendly.into()
            },
            match_raw: lf.match_.clone(),
        })
    }

    /// Compiles `lf` for datapath `dp` into `bucket`.
    fn for_datapath(&mut self, lf: &LogicalFlow, parts: &RowParts, dp: DpId, bucket: &mut Bucket) {
        let dp_info = &self.topo.datapaths[dp as usize];
        let dp_key = dp_info.key;
        let uses_pg = lf.match_.contains('@');
        let cache_key = (parts.match_raw.clone(), if uses_pg { dp_key } else { 0 });
        let (sets, annotator) = (self.sets, &mut self.annotator);
        let m = self
            .match_cache
            .entry(cache_key)
            .or_insert_with(|| {
                let e = expr::parse(&lf.match_, symtab(), sets, dp_key)?;
                annotator.annotate(symtab(), &e)
            })
            .clone();
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                bucket.failed.push((
                    FlowError {
                        uuid: lf.uuid,
                        datapath: Some(dp_info.uuid),
                        reason: format!("{}: parsing expression failed ({e})", lf.match_),
                    },
                    parts.match_raw.clone(),
                ));
                return;
            }
        };
        let topo = self.topo;
        let resident = |name: &str| match self.residency {
            Residency::Everywhere => name.is_empty() || topo.ports_by_name.contains_key(name),
            Residency::Ports(set) => name.is_empty() || set.contains(name),
        };
        let m = fold(
            m.and(parts.prereqs.clone())
                .simplify()
                .resolve_conditions(&resident),
        );
        let dir = if lf.egress { Dir::Egress } else { Dir::Ingress };
        let omit = m.is_true()
            && matches!(&*parts.actions, [Action::Next { pipeline, table, .. }]
                if *pipeline == dir && *table == lf.table_id + 1);
        bucket.pending.push(Pending::Compiled(
            CompiledFlow {
                uuid: lf.uuid,
                egress: lf.egress,
                table: lf.table_id,
                priority: lf.priority,
                stage_name: parts.stage_name.clone(),
                source: parts.source.clone(),
                match_s: parts.match_s.clone(),
                actions: resolve_loads(&parts.actions, |n| topo.port_key_by_name(dp_info, n)),
                omit,
                match_raw: parts.match_raw.clone(),
            },
            m,
        ));
    }

    /// Compiles row `lf` into the buckets of its datapaths; a row error goes to
    /// `row_errors`.
    fn add_row(
        &mut self,
        lf: &LogicalFlow,
        only: Option<DpId>,
        buckets: &mut FxHashMap<TableKey, Bucket>,
        row_errors: &mut Vec<FlowError>,
    ) {
        let parts = match self.row(lf) {
            Ok(p) => p,
            Err(e) => {
                row_errors.push(e);
                return;
            }
        };
        for dp_uuid in &lf.datapaths {
            let Some(&dp) = self.topo.dp_by_uuid.get(dp_uuid) else {
                continue;
            };
            if only.is_some_and(|o| o != dp) {
                continue;
            }
            let bucket = buckets.entry((dp, lf.egress, lf.table_id)).or_default();
            self.for_datapath(lf, &parts, dp, bucket);
        }
    }

    /// Resolves a flow compiled for datapath `d` into its classifier terms.
    fn resolve_one(&self, d: &DatapathInfo, f: CompiledFlow, m: Match) -> Result<Resolved, Failed> {
        let lookup = |name: &str| self.topo.lookup_port_in(d, name);
        let m = m.resolve_ports(&lookup).simplify();
        match expr::to_conjs(&m, MAX_CONJS_PER_FLOW) {
            Ok(c) => Ok((f, to_terms(&c))),
            Err(e) => Err((
                FlowError {
                    uuid: f.uuid,
                    datapath: Some(d.uuid),
                    reason: e.to_string(),
                },
                f.match_raw,
            )),
        }
    }

    /// The flows of `bucket` resolved for datapath `dp`, those that failed, and the
    /// names they refer to.
    fn resolve(&self, dp: DpId, bucket: Bucket) -> (Vec<Resolved>, Vec<Failed>, Vec<u64>) {
        let d = &self.topo.datapaths[dp as usize];
        let mut refs: Vec<u64> = bucket.refs;
        refs.extend(bucket.failed.iter().flat_map(|(_, m)| names_in(m)));
        let mut failed = bucket.failed;
        let mut added = Vec::new();
        for p in bucket.pending {
            match p {
                Pending::Reused(f, terms) => added.push((f, terms)),
                Pending::Compiled(f, m) => {
                    refs.extend(f.names());
                    match self.resolve_one(d, f, m) {
                        Ok(x) => added.push(x),
                        Err(x) => failed.push(x),
                    }
                }
            }
        }
        (added, failed, refs)
    }

    /// Builds one table from its flows.
    fn table(&self, dp: DpId, mut bucket: Bucket, order: &IdlOrder) -> Table {
        // ovn-trace sorts by pipeline, table and descending priority with a stable
        // sort, so flows of equal priority keep the order its IDL iterates rows in
        // (`idl_order`). northd does emit overlapping flows of equal priority
        // (ls_out_pre_lb's `eth.mcast` and `ip && outport == ROUTER_PORT`); ordering
        // ties the same way makes the first one win here as it does there. (OVS's own
        // classifier leaves such ties undefined, so the datapath loses nothing by
        // following ovn-trace.)
        bucket.pending.sort_by_cached_key(|p| {
            let f = p.flow();
            (std::cmp::Reverse(f.priority), order.key(f.uuid))
        });
        let d = &self.topo.datapaths[dp as usize];
        // The names the reused flows refer to are among the old table's (a superset
        // only costs an update a needless recompile of a flow).
        let mut refs = bucket.refs;
        refs.extend(bucket.failed.iter().flat_map(|(_, m)| names_in(m)));
        let mut t = Table {
            failed: bucket.failed,
            ..Default::default()
        };
        for p in bucket.pending {
            let (flow, terms) = match p {
                Pending::Reused(f, terms) => (f, terms),
                Pending::Compiled(f, m) => {
                    refs.extend(f.names());
                    match self.resolve_one(d, f, m) {
                        Ok(x) => x,
                        Err(x) => {
                            t.failed.push(x);
                            continue;
                        }
                    }
                }
            };
            t.push(flow, terms);
        }
        refs.sort_unstable();
        refs.dedup();
        t.refs = Arc::new(refs);
        t.finish();
        t.failed.sort_by_key(|(e, _)| e.uuid);
        t
    }
}

impl Table {
    /// Lays out the classifier and finds what each packet class gets.
    fn finish(&mut self) {
        self.classifier.finish();
        self.classes = classes::Outcomes::new(
            self.live().map(|(i, s)| {
                let id = i | if s.flow.omit { OMIT } else { 0 };
                (id, s.classes, s.flow.next_only(), &s.terms[..])
            }),
            OMIT,
        );
    }

    #[inline]
    fn slot(&self, i: u32) -> &Slot {
        &self.slots[i as usize / CHUNK][i as usize % CHUNK]
    }

    fn n_slots(&self) -> usize {
        self.slots
            .last()
            .map_or(0, |c| (self.slots.len() - 1) * CHUNK + c.len())
    }

    /// The live flows in lookup order, with their slots.
    fn live(&self) -> impl Iterator<Item = (u32, &Slot)> {
        self.order.iter().map(|&i| (i, self.slot(i)))
    }

    fn n_flows(&self) -> usize {
        self.order.len()
    }

    /// Stores `slot`; returns its number (its flow's rule id, without the omit bit).
    fn add_slot(&mut self, slot: Slot) -> u32 {
        let i = self.n_slots() as u32;
        if self.slots.last().is_none_or(|c| c.len() == CHUNK) {
            self.slots.push(Arc::new(Vec::with_capacity(CHUNK)));
        }
        if let Some(c) = self.slots.last_mut() {
            Arc::make_mut(c).push(slot);
        }
        i
    }

    /// Appends a flow in lookup order (a table being built).
    fn push(&mut self, flow: CompiledFlow, terms: Arc<[Term]>) {
        let order = (self.order.len() as u32 + 1).saturating_mul(GAP);
        if self.stage_name.is_none() {
            self.stage_name = flow.stage_name.clone();
        }
        let (priority, omit) = (u32::from(flow.priority), flow.omit);
        let i = self.add_slot(Slot {
            flow,
            classes: classes::FlowClasses::of_terms(&terms),
            terms: terms.clone(),
            order,
        });
        let id = i | if omit { OMIT } else { 0 };
        for_conjs(&terms, |c| {
            self.classifier.insert_ordered(c, priority, order, id)
        });
        self.order.push(i);
    }

    /// This table with the flows of rows in `gone` taken out and `added` put in, its
    /// classifier changed in place; none when it is better built anew (no room left in
    /// the tie order, or many slots dead). Its ties must be in `order`'s order.
    fn edit(
        &self,
        gone: &FxHashSet<Uuid>,
        added: &[Resolved],
        failed: &[Failed],
        refs: &[u64],
        order: &IdlOrder,
    ) -> Option<Table> {
        let mut t = self.clone();
        if !gone.is_empty() {
            t.failed.retain(|(e, _)| !gone.contains(&e.uuid));
            let removed: Vec<u32> = t
                .live()
                .filter(|(_, s)| gone.contains(&s.flow.uuid))
                .map(|(i, _)| i)
                .collect();
            if !removed.is_empty() {
                let set: FxHashSet<u32> = removed.iter().copied().collect();
                t.order.retain(|i| !set.contains(i));
                for i in removed {
                    let s = self.slot(i);
                    let id = i | if s.flow.omit { OMIT } else { 0 };
                    let mut shadowed = Vec::new();
                    for_conjs(&s.terms, |c| {
                        if t.classifier.remove(c, id) {
                            shadowed.push(*c);
                        }
                    });
                    // The rules it shadowed with the same match take its place.
                    if !shadowed.is_empty() {
                        let mut back = Vec::new();
                        for (j, o) in t.live() {
                            let oid = j | if o.flow.omit { OMIT } else { 0 };
                            for_conjs(&o.terms, |c| {
                                if shadowed.contains(c) {
                                    back.push((*c, u32::from(o.flow.priority), o.order, oid));
                                }
                            });
                        }
                        for (c, p, o, id) in back {
                            t.classifier.reinstate(&c, p, o, id);
                        }
                    }
                }
            }
        }
        if t.n_slots() - t.order.len() > t.order.len() / 2 + CHUNK {
            return None;
        }
        let mut rules = Vec::new();
        for (flow, terms) in added {
            // Its place among the flows of its priority, found first, by its IDL order
            // (which costs more to read than a priority).
            let p = std::cmp::Reverse(flow.priority);
            let prio = |i: u32| std::cmp::Reverse(t.slot(i).flow.priority);
            let (lo, hi) = (
                t.order.partition_point(|&i| prio(i) < p),
                t.order.partition_point(|&i| prio(i) <= p),
            );
            let k = order.key(flow.uuid);
            let pos = lo + t.order[lo..hi].partition_point(|&i| order.key(t.slot(i).flow.uuid) < k);
            let prev = pos.checked_sub(1).map(|p| t.slot(t.order[p]).order);
            let next = t.order.get(pos).map(|&i| t.slot(i).order);
            let o = match (prev, next) {
                (None, None) => GAP,
                (Some(p), None) => p.checked_add(GAP)?,
                (None, Some(n)) => {
                    if n < 2 {
                        return None;
                    }
                    n / 2
                }
                (Some(p), Some(n)) => {
                    if n - p < 2 {
                        return None;
                    }
                    p + (n - p) / 2
                }
            };
            let i = t.add_slot(Slot {
                flow: flow.clone(),
                classes: classes::FlowClasses::of_terms(terms),
                terms: terms.clone(),
                order: o,
            });
            let id = i | if flow.omit { OMIT } else { 0 };
            let priority = u32::from(flow.priority);
            for_conjs(terms, |c| rules.push((*c, priority, o, id)));
            t.order.insert(pos, i);
        }
        t.classifier.insert_all(&rules);
        // As a build names it: after the first flow (in lookup order) that names it.
        let stage_name = t.live().find_map(|(_, s)| s.flow.stage_name.clone());
        t.stage_name = stage_name;
        if !failed.is_empty() {
            t.failed.extend(failed.iter().cloned());
            t.failed.sort_by_key(|(e, _)| e.uuid);
        }
        let mut new_refs: Vec<u64> = refs
            .iter()
            .copied()
            .filter(|h| t.refs.binary_search(h).is_err())
            .collect();
        if !new_refs.is_empty() {
            new_refs.sort_unstable();
            new_refs.dedup();
            t.refs = Arc::new(merged(&t.refs, &new_refs));
        }
        t.finish();
        Some(t)
    }

    fn refers_to_any(&self, names: &[u64]) -> bool {
        names.iter().any(|h| self.refs.binary_search(h).is_ok())
    }

    /// True when the flows are no longer in the order `order` gives ties.
    fn out_of_order(&self, order: &IdlOrder) -> bool {
        self.order.windows(2).any(|w| {
            let (a, b) = (&self.slot(w[0]).flow, &self.slot(w[1]).flow);
            a.priority == b.priority && order.key(a.uuid) > order.key(b.uuid)
        })
    }

    /// True when row `uuid` of priority `priority`, whose key alone changed from `old`
    /// to `new`, is no longer in its place among its ties. The flows are in `old`'s
    /// order, so the row is found by a binary search, and only its neighbours can now
    /// be out of order with it.
    fn misplaced(&self, uuid: Uuid, priority: u16, old: &IdlOrder, new: &IdlOrder) -> bool {
        let want = (std::cmp::Reverse(priority), old.key(uuid));
        let Ok(i) = self.order.binary_search_by(|&s| {
            let f = &self.slot(s).flow;
            (std::cmp::Reverse(f.priority), old.key(f.uuid)).cmp(&want)
        }) else {
            return false;
        };
        let key = new.key(uuid);
        let tie = |j: usize| {
            self.order
                .get(j)
                .map(|&s| &self.slot(s).flow)
                .filter(|f| f.priority == priority)
        };
        i.checked_sub(1)
            .and_then(tie)
            .is_some_and(|f| new.key(f.uuid) > key)
            || tie(i + 1).is_some_and(|f| new.key(f.uuid) < key)
    }
}

/// Two sorted lists, without duplicates, as one.
fn merged(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Calls `f` with each conjunction of `terms`.
fn for_conjs(terms: &[Term], mut f: impl FnMut(&Conj)) {
    let mut i = 0;
    while i < terms.len() {
        let n = terms[i].1 as usize;
        let mut c = Conj::ANY;
        for &(w, m, v) in &terms[i + 1..i + 1 + n] {
            c.mask[w as usize] = m;
            c.value[w as usize] = v;
        }
        f(&c);
        i += 1 + n;
    }
}

fn to_terms(conjs: &[Conj]) -> Arc<[Term]> {
    let mut out = Vec::new();
    for c in conjs {
        let start = out.len();
        out.push((CONJ, 0, 0));
        for w in 0..WORDS {
            if c.mask[w] != 0 {
                out.push((w as u8, c.mask[w], c.value[w]));
            }
        }
        out[start].1 = (out.len() - start - 1) as u64;
    }
    out.into()
}

fn name_hash(s: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<rustc_hash::FxHasher>::default().hash_one(s)
}

/// `actions` with each top-level load of a port's name (`outport = "vm3";`) resolved
/// by `key` to the port's key as one word's bits: a walk then writes them as it writes
/// a number, without looking the name up. The names are among those the flow refers
/// to ([`CompiledFlow::names`]), so an update that changes what one means compiles
/// the flow again. `actions` itself when no load has a name `key` resolves.
fn resolve_loads(actions: &Arc<[Action]>, key: impl Fn(&str) -> Option<u32>) -> Arc<[Action]> {
    let resolve = |a: &Action| -> Option<Action> {
        let Action::Load {
            dst,
            value: expr::Const::Str(name),
            set: None,
        } = a
        else {
            return None;
        };
        let sf = dst.resolve();
        if sf.ofs != 0 || sf.n_bits != sf.field.width() {
            return None;
        }
        let k = key(name)?;
        let set = WordSet::new(sf.field, 0, sf.n_bits, u128::from(k), sf.field.prereq())?;
        Some(Action::Load {
            dst: *dst,
            value: expr::Const::Str(name.clone()),
            set: Some(set),
        })
    };
    if name_loads(actions).next().is_none() {
        return actions.clone();
    }
    actions
        .iter()
        .map(|a| resolve(a).unwrap_or_else(|| a.clone()))
        .collect()
}

/// The names `actions` load at top level, each with its bits when compiled (see
/// [`resolve_loads`]).
fn name_loads(actions: &[Action]) -> impl Iterator<Item = (&str, Option<WordSet>)> + '_ {
    actions.iter().filter_map(|a| match a {
        Action::Load {
            value: expr::Const::Str(name),
            set,
            ..
        } => Some((name.as_str(), *set)),
        _ => None,
    })
}

/// Hashes of the names a match refers to: quoted strings (ports, multicast groups,
/// `is_chassis_resident()`), `$address_set`, `@port_group`. A superset is harmless:
/// it only makes an update recompile a flow that did not need it.
fn names_in(m: &str) -> impl Iterator<Item = u64> + '_ {
    let b = m.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < b.len() {
            match b[i] {
                b'"' => {
                    let start = i + 1;
                    let mut j = start;
                    while j < b.len() && b[j] != b'"' {
                        j += if b[j] == b'\\' { 2 } else { 1 };
                    }
                    let end = j.min(b.len());
                    i = j + 1;
                    return Some(name_hash(&m[start..end]));
                }
                b'$' | b'@' => {
                    let start = i + 1;
                    let mut j = start;
                    while j < b.len()
                        && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'.')
                    {
                        j += 1;
                    }
                    i = j;
                    return Some(name_hash(&m[start..j]));
                }
                _ => i += 1,
            }
        }
        None
    })
}

impl Topology {
    fn read(db: &Database) -> Topology {
        let mut t = Topology::default();
        t.read_datapaths(db);
        t.read_ports(db);
        t.read_mcgroups(db);
        t.read_mac_bindings(db);
        t.read_fdbs(db);
        for lb in &db.load_balancers {
            let snat: Vec<actions::Addr> = lb
                .hairpin_snat_ip
                .iter()
                .filter_map(|a| actions::parse_ip_port(a).map(|(a, _)| a))
                .collect();
            for vip in &lb.vips {
                if let Some((addr, port)) = actions::parse_ip_port(vip) {
                    let v4 = matches!(addr, actions::Addr::V4(_));
                    let hairpin_snat = snat
                        .iter()
                        .copied()
                        .find(|a| matches!(a, actions::Addr::V4(_)) == v4)
                        .unwrap_or(addr);
                    t.lb_vips.push(LbVip {
                        addr,
                        port,
                        key: vip.clone(),
                        hairpin_snat,
                    });
                }
            }
        }
        t.any_friendly = t.ports.iter().any(|p| p.friendly != p.name);
        t
    }

    fn read_datapaths(&mut self, db: &Database) {
        for d in &db.datapaths {
            let nb_uuid = d.nb_uuid.unwrap_or(d.uuid);
            let name = d.name.clone().unwrap_or_else(|| nb_uuid.to_string());
            let friendly = shorten_uuid(d.name2.as_deref().unwrap_or(&name));
            let id = self.datapaths.len() as DpId;
            self.dp_by_uuid.insert(d.uuid, id);
            self.dp_by_key.insert(d.tunnel_key, id);
            self.datapaths.push(DatapathInfo {
                uuid: d.uuid,
                key: d.tunnel_key,
                name,
                name2: d.name2.clone(),
                nb_uuid,
                friendly,
                is_router: d.is_router,
                has_local_l3gateway: false,
                ports_by_key: PortKeys::default(),
                mcgroups: Vec::new(),
                mac_bindings: FxHashMap::default(),
                fdb: FxHashMap::default(),
            });
        }
    }
    fn read_ports(&mut self, db: &Database) {
        for pb in &db.ports {
            let Some(&dp) = self.dp_by_uuid.get(&pb.datapath) else {
                continue;
            };
            if self.ports_by_name.contains_key(&pb.name) {
                continue;
            }
            let id = self.ports.len() as PortId;
            self.ports_by_name.insert(pb.name.clone(), id);
            if let Some(n) = &pb.name2 {
                self.ports_by_name2
                    .entry(n.clone())
                    .and_modify(|p| *p = None)
                    .or_insert(Some(id));
            }
            self.datapaths[dp as usize]
                .ports_by_key
                .insert(pb.tunnel_key, id);
            if pb.ty == "l3gateway" {
                self.datapaths[dp as usize].has_local_l3gateway = true;
            }
            self.ports.push(PortInfo {
                uuid: pb.uuid,
                name: pb.name.clone(),
                name2: pb.name2.clone(),
                friendly: shorten_uuid(pb.name2.as_deref().unwrap_or(&pb.name)),
                dp,
                key: pb.tunnel_key,
                ty: pb.ty.clone(),
                peer: None,
                distributed_port: None,
                port_security: pb
                    .port_security
                    .iter()
                    .filter_map(|s| LportAddresses::parse(s))
                    .collect(),
            });
        }
        for pb in &db.ports {
            let Some(&id) = self.ports_by_name.get(&pb.name) else {
                continue;
            };
            if pb.ty == "patch" || pb.ty == "l3gateway" {
                if let Some(peer) = pb.peer.as_ref().and_then(|n| self.ports_by_name.get(n)) {
                    let peer = *peer;
                    self.ports[id as usize].peer = Some(peer);
                    self.ports[peer as usize].peer = Some(id);
                }
            } else if pb.ty == "chassisredirect"
                && let Some(&d) = pb
                    .distributed_port
                    .as_ref()
                    .and_then(|n| self.ports_by_name.get(n))
                && self.ports[d as usize].dp == self.ports[id as usize].dp
            {
                self.ports[id as usize].distributed_port = Some(d);
            }
        }
    }

    fn read_mcgroups(&mut self, db: &Database) {
        let by_uuid: FxHashMap<Uuid, PortId> = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| (p.uuid, i as PortId))
            .collect();
        for mg in &db.mcgroups {
            let Some(&dp) = self.dp_by_uuid.get(&mg.datapath) else {
                continue;
            };
            let mut ports: Vec<PortId> = mg
                .ports
                .iter()
                .filter_map(|u| by_uuid.get(u).copied())
                .filter(|&p| self.ports[p as usize].dp == dp)
                .collect();
            ports.sort_by(|a, b| {
                self.ports[*a as usize]
                    .name
                    .cmp(&self.ports[*b as usize].name)
            });
            self.datapaths[dp as usize].mcgroups.push(McGroupInfo {
                name: mg.name.clone(),
                key: mg.tunnel_key,
                ports,
            });
        }
    }

    fn read_mac_bindings(&mut self, db: &Database) {
        for mb in &db.mac_bindings {
            let Some(&pid) = self.ports_by_name.get(&mb.logical_port) else {
                continue;
            };
            let port = &self.ports[pid as usize];
            if self.datapaths[port.dp as usize].uuid != mb.datapath {
                continue;
            }
            let ip = match parse_ip_any(&mb.ip) {
                Some(ip) => ip,
                None => continue,
            };
            let Some(mac) = crate::value::parse_mac(&mb.mac) else {
                continue;
            };
            let key = port.key;
            self.datapaths[port.dp as usize]
                .mac_bindings
                .insert((key, ip), mac);
        }
    }

    fn read_fdbs(&mut self, db: &Database) {
        for f in &db.fdbs {
            let (Some(mac), Some(&dp)) = (
                crate::value::parse_mac(&f.mac),
                self.dp_by_key.get(&f.dp_key),
            ) else {
                continue;
            };
            self.datapaths[dp as usize].fdb.insert(mac, f.port_key);
        }
    }

    /// Replaces quoted port names by their friendly names (ovn-trace's
    /// `ovntrace_make_names_friendly`).
    fn make_names_friendly(&self, s: &str) -> String {
        if !self.any_friendly {
            return s.to_owned();
        }
        let mut out = String::with_capacity(s.len());
        let mut p = 0;
        loop {
            let (tok, start, end) = lex::parse_token(s, p);
            match tok {
                Token::End => {
                    out.push_str(&s[p..]);
                    return out;
                }
                Token::Str(name) => {
                    if let Some(&id) = self.ports_by_name.get(&name) {
                        out.push_str(&s[p..start]);
                        out.push_str(&JsonStr(&self.ports[id as usize].friendly).to_string());
                    } else {
                        out.push_str(&s[p..end]);
                    }
                }
                _ => out.push_str(&s[p..end]),
            }
            p = end;
        }
    }

    /// ovn-trace's `ovntrace_lookup_port` for datapath `d`.
    fn lookup_port_in(&self, d: &DatapathInfo, name: &str) -> Option<u32> {
        if name.is_empty() || name == "none" {
            return Some(0);
        }
        if let Some(&id) = self.ports_by_name.get(name) {
            let p = &self.ports[id as usize];
            return (self.datapaths[p.dp as usize].uuid == d.uuid).then_some(p.key);
        }
        if let Some(p) = self.port_by_other_name(name) {
            return (self.datapaths[p.dp as usize].uuid == d.uuid).then_some(p.key);
        }
        d.mcgroups.iter().find(|m| m.name == name).map(|m| m.key)
    }

    /// What [`lookup_port_in`](Self::lookup_port_in) answers for `name` when `name`
    /// is a port's own name: that answer changes only with the port's existence,
    /// datapath or key, and [`Changes`] then names the port. Other names (multicast
    /// groups, friendly names, UUID prefixes) are left to the walk.
    fn port_key_by_name(&self, d: &DatapathInfo, name: &str) -> Option<u32> {
        let p = &self.ports[*self.ports_by_name.get(name)? as usize];
        Some(if self.datapaths[p.dp as usize].uuid == d.uuid {
            p.key
        } else {
            0
        })
    }

    /// A port by `external_ids:name` or UUID prefix, as ovn-trace accepts.
    fn port_by_other_name(&self, name: &str) -> Option<&PortInfo> {
        if let Some(id) = self.ports_by_name2.get(name) {
            return id.map(|id| &self.ports[id as usize]);
        }
        if name.len() < 4 || !name.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return None;
        }
        let mut found = None;
        for p in &self.ports {
            if p.uuid.to_string().starts_with(name) {
                if found.is_some() {
                    return None;
                }
                found = Some(p);
            }
        }
        found
    }
}

fn read_sets(db: &Database) -> Sets {
    let mut sets = Sets::default();
    for (name, addrs) in &db.address_sets {
        sets.add_address_set(name, addrs.iter().map(String::as_str));
    }
    for (name, ports) in &db.port_groups {
        sets.add_port_group(name, ports.iter().map(String::as_str));
    }
    sets
}

fn read_order(db: &Database, topo: &Topology) -> IdlOrder {
    IdlOrder::new(db.flows.iter().map(|f| (f.uuid, place(f, topo))))
}

/// Where row `f` is compiled, kept with it in the IDL order so that a row whose tie
/// order moved is found in its tables: priority (bits 0-15), table (16-23), egress
/// (24), its datapath + 1 when it has exactly one (32-63; 0: look in all).
fn place(f: &LogicalFlow, topo: &Topology) -> u64 {
    let dp = match f.datapaths.as_slice() {
        [d] => topo.dp_by_uuid.get(d).map_or(0, |&d| u64::from(d) + 1),
        _ => 0,
    };
    u64::from(f.priority) | u64::from(f.table_id) << 16 | u64::from(f.egress) << 24 | dp << 32
}

fn skip_of(tables: &[Arc<Table>]) -> Vec<u8> {
    let n = tables.len();
    let mut skip = vec![0u8; n];
    let mut next = n as u8;
    for i in (0..n).rev() {
        let t = &tables[i];
        let trivial = t
            .classifier
            .only_catchall()
            .is_some_and(|id| id & OMIT != 0);
        skip[i] = if trivial { next } else { i as u8 };
        next = skip[i];
    }
    skip
}

impl Pipeline {
    /// Compiles `db`, evaluating `is_chassis_resident()` as `residency` says.
    pub fn compile(db: &Database, residency: &Residency) -> Pipeline {
        let topo = Arc::new(Topology::read(db));
        let sets = Arc::new(read_sets(db));
        let order = read_order(db, &topo);
        let options = Arc::new(Options::read(db));
        let mut c = Compiler::new(&options, &topo, &sets, residency);
        let mut buckets: FxHashMap<TableKey, Bucket> = FxHashMap::default();
        let mut row_errors = Vec::new();
        for lf in &db.flows {
            c.add_row(lf, None, &mut buckets, &mut row_errors);
        }
        let empty = Arc::new(Table::default());
        let n = usize::from(actions::LOG_PIPELINE_LEN);
        let mut tables = vec![
            DpTables {
                tables: [vec![empty.clone(); n], vec![empty.clone(); n]],
                skip: Default::default(),
                plan: Default::default(),
            };
            topo.datapaths.len()
        ];
        Self::build(&c, buckets, &order, &mut tables, &mut row_errors);
        drop(c);
        Self::assemble(
            (topo, sets, options),
            order,
            residency,
            tables,
            row_errors,
            None,
        )
    }

    /// The pipeline for `db`, which differs from the database this one was compiled
    /// from by `changes` ([`Changes::between`]): the tables no change touches are
    /// shared with `self`, the others rebuilt, reusing the compiled form of each of
    /// their flows that did not change. The result equals [`Pipeline::compile`]`(db,
    /// residency)`.
    pub fn update(&self, db: &Database, residency: &Residency, changes: &Changes) -> Pipeline {
        if changes.full
            || self.topo.datapaths.len() != db.datapaths.len()
            || std::mem::discriminant(residency) != std::mem::discriminant(&self.residency)
        {
            return Pipeline::compile(db, residency);
        }
        if changes.is_empty() && *residency == self.residency {
            return self.clone();
        }
        let topo = if changes.topology {
            let t = Topology::read(db);
            // Every match's friendly spelling changes with this.
            if t.any_friendly != self.topo.any_friendly {
                return Pipeline::compile(db, residency);
            }
            Arc::new(t)
        } else {
            self.topo.clone()
        };
        let sets = if changes.sets {
            Arc::new(read_sets(db))
        } else {
            self.sets.clone()
        };
        // The IDL order, kept: the rows whose tie order moved come back (none: all may
        // have).
        let (order, moved) = if changes.flow_set || !changes.added.is_empty() {
            let removed: Vec<Uuid> = changes.gone.iter().copied().collect();
            let added: Vec<(Uuid, u64)> = changes
                .added
                .iter()
                .filter_map(|&i| db.flows.get(i))
                .map(|f| (f.uuid, place(f, &topo)))
                .collect();
            self.order.update(&removed, &added)
        } else {
            (self.order.clone(), Some(Vec::new()))
        };
        let options = self.options.clone();
        let mut c = Compiler::new(&options, &topo, &sets, residency);
        let mut buckets: FxHashMap<TableKey, Bucket> = FxHashMap::default();
        let mut row_errors: Vec<FlowError> = self
            .row_errors
            .iter()
            .filter(|e| !changes.gone.contains(&e.uuid))
            .cloned()
            .collect();
        for &i in &changes.added {
            if let Some(lf) = db.flows.get(i) {
                c.add_row(lf, None, &mut buckets, &mut row_errors);
            }
        }
        let mut affected: FxHashSet<TableKey> = changes
            .tables
            .iter()
            .filter_map(|(dp, e, t)| Some((*topo.dp_by_uuid.get(dp)?, *e, *t)))
            .filter(|k| usize::from(k.2) < usize::from(actions::LOG_PIPELINE_LEN))
            .collect();
        let names: Vec<u64> = changes.names.iter().map(|n| name_hash(n)).collect();
        if !names.is_empty() {
            for (dp, d) in self.tables.iter().enumerate() {
                for (e, ts) in d.tables.iter().enumerate() {
                    for (t, table) in ts.iter().enumerate() {
                        if table.refers_to_any(&names) {
                            affected.insert((dp as DpId, e == 1, t as u8));
                        }
                    }
                }
            }
        }
        // Tables whose ties the IDL order moved: those holding a row that moved and is
        // now out of place among its ties (every table when the mask changed).
        let mut resort: FxHashSet<TableKey> = FxHashSet::default();
        match &moved {
            None => {
                for (dp, d) in self.tables.iter().enumerate() {
                    for (e, ts) in d.tables.iter().enumerate() {
                        for (t, table) in ts.iter().enumerate() {
                            if table.out_of_order(&order) {
                                resort.insert((dp as DpId, e == 1, t as u8));
                            }
                        }
                    }
                }
            }
            Some(moved) => {
                for &m in moved {
                    let Some(v) = order.value(m) else { continue };
                    let (priority, t, e) = (v as u16, (v >> 16) as u8, v >> 24 & 1 == 1);
                    let dps = match v >> 32 {
                        0 => 0..self.tables.len(),
                        d => (d - 1) as usize..d as usize,
                    };
                    for dp in dps {
                        let Some(table) =
                            self.tables[dp].tables[usize::from(e)].get(usize::from(t))
                        else {
                            continue;
                        };
                        if table.misplaced(m, priority, &self.order, &order) {
                            resort.insert((dp as DpId, e, t));
                        }
                    }
                }
            }
        }
        // Affected tables are edited in place: the flows of changed rows taken out, the
        // new ones put in. Those with a flow that refers to a changed name, or whose ties
        // moved, are rebuilt instead, keeping the compiled form of their flows that did
        // not change and recompiling those that refer to the name.
        let mut again: Vec<(Uuid, DpId)> = Vec::new();
        let mut edits: Vec<TableKey> = Vec::new();
        let hit = |m: &str| !names.is_empty() && names_in(m).any(|h| names.contains(&h));
        let hit_flow =
            |f: &CompiledFlow| !names.is_empty() && f.names().any(|h| names.contains(&h));
        for &key in &affected {
            let (dp, e, t) = key;
            let old = &self.tables[dp as usize].tables[usize::from(e)][usize::from(t)];
            let hits = !names.is_empty()
                && (old.live().any(|(_, s)| hit_flow(&s.flow))
                    || old.failed.iter().any(|(_, m)| hit(m)));
            if !hits && !resort.contains(&key) {
                edits.push(key);
                continue;
            }
            let bucket = buckets.entry(key).or_default();
            bucket.refs.extend_from_slice(&old.refs);
            for (_, s) in old.live() {
                let f = &s.flow;
                if changes.gone.contains(&f.uuid) {
                } else if hit_flow(f) {
                    again.push((f.uuid, dp));
                } else {
                    bucket
                        .pending
                        .push(Pending::Reused(f.clone(), s.terms.clone()));
                }
            }
            for (err, m) in &old.failed {
                if changes.gone.contains(&err.uuid) {
                } else if hit(m) {
                    again.push((err.uuid, dp));
                } else {
                    bucket.failed.push((err.clone(), m.clone()));
                }
            }
        }
        if !again.is_empty() {
            let sorted = db.flows.is_sorted_by_key(|f| f.uuid);
            let index: FxHashMap<Uuid, usize> = if sorted {
                FxHashMap::default()
            } else {
                db.flows
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (f.uuid, i))
                    .collect()
            };
            again.sort_unstable();
            again.dedup();
            // A row that compiled before has no row error now (those depend on the
            // row alone).
            let mut ignored = Vec::new();
            for (uuid, dp) in again {
                let i = if sorted {
                    db.flows.binary_search_by_key(&uuid, |f| f.uuid).ok()
                } else {
                    index.get(&uuid).copied()
                };
                if let Some(lf) = i.map(|i| &db.flows[i]) {
                    c.add_row(lf, Some(dp), &mut buckets, &mut ignored);
                }
            }
        }
        let mut tables = self.tables.clone();
        // Tables left alone whose ties moved are rebuilt from their flows.
        for &key in &resort {
            if affected.contains(&key) {
                continue;
            }
            let (dp, e, t) = key;
            let table = &self.tables[dp as usize].tables[usize::from(e)][usize::from(t)];
            let b = buckets.entry(key).or_default();
            b.refs.extend_from_slice(&table.refs);
            for (_, s) in table.live() {
                b.pending
                    .push(Pending::Reused(s.flow.clone(), s.terms.clone()));
            }
            b.failed.extend(table.failed.iter().cloned());
        }
        for key in edits {
            let (dp, e, t) = key;
            let old = &self.tables[dp as usize].tables[usize::from(e)][usize::from(t)];
            let bucket = buckets.remove(&key).unwrap_or_default();
            let (added, failed, refs) = c.resolve(dp, bucket);
            match old.edit(&changes.gone, &added, &failed, &refs, &order) {
                Some(table) => {
                    tables[dp as usize].tables[usize::from(e)][usize::from(t)] = Arc::new(table);
                }
                None => {
                    // No room in the tie order, or too many dead slots: built anew.
                    let b = buckets.entry(key).or_default();
                    b.refs.extend_from_slice(&old.refs);
                    b.refs.extend(refs);
                    for (_, s) in old.live() {
                        if !changes.gone.contains(&s.flow.uuid) {
                            b.pending
                                .push(Pending::Reused(s.flow.clone(), s.terms.clone()));
                        }
                    }
                    b.pending
                        .extend(added.into_iter().map(|(f, t)| Pending::Reused(f, t)));
                    b.failed.extend(
                        old.failed
                            .iter()
                            .filter(|(e, _)| !changes.gone.contains(&e.uuid))
                            .cloned(),
                    );
                    b.failed.extend(failed);
                }
            }
        }
        Self::build(&c, buckets, &order, &mut tables, &mut row_errors);
        drop(c);
        Self::assemble(
            (topo, sets, options),
            order,
            residency,
            tables,
            row_errors,
            Some(self),
        )
    }

    /// Compiles `old`'s successor from the two databases ([`Changes::between`], then
    /// [`Pipeline::update`]).
    pub fn recompile(&self, old: &Database, new: &Database, residency: &Residency) -> Pipeline {
        let changes = Changes::between(old, new, &self.residency, residency);
        self.update(new, residency, &changes)
    }

    /// Builds the tables of `buckets` into `tables`.
    fn build(
        c: &Compiler<'_>,
        buckets: FxHashMap<TableKey, Bucket>,
        order: &IdlOrder,
        tables: &mut [DpTables],
        row_errors: &mut Vec<FlowError>,
    ) {
        for ((dp, e, t), bucket) in buckets {
            let Some(slot) = tables[dp as usize].tables[usize::from(e)].get_mut(usize::from(t))
            else {
                for p in &bucket.pending {
                    row_errors.push(FlowError {
                        uuid: p.flow().uuid,
                        datapath: None,
                        reason: format!("table {t} out of range"),
                    });
                }
                continue;
            };
            *slot = Arc::new(c.table(dp, bucket, order));
        }
    }

    /// The pipeline of `tables`. Those shared with `prev` (the pipeline an update
    /// started from, whose tables `tables` began as a copy of) are not looked at again:
    /// their flows, errors and skips are `prev`'s.
    fn assemble(
        (topo, sets, options): (Arc<Topology>, Arc<Sets>, Arc<Options>),
        order: IdlOrder,
        residency: &Residency,
        mut tables: Vec<DpTables>,
        mut row_errors: Vec<FlowError>,
        prev: Option<&Pipeline>,
    ) -> Pipeline {
        row_errors.sort_by_key(|e| e.uuid);
        row_errors.dedup();
        let prev = prev.filter(|p| p.tables.len() == tables.len());
        let mut n_flows = prev.map_or(0, |p| p.n_flows);
        // The errors are `prev`'s when its row errors are and no table with errors
        // changed.
        let mut same_errors = prev.is_some_and(|p| *p.row_errors == row_errors);
        for (dp, d) in tables.iter_mut().enumerate() {
            for e in 0..2 {
                let old = prev
                    .map(|p| &p.tables[dp].tables[e])
                    .filter(|o| o.len() == d.tables[e].len());
                let Some(old) = old else {
                    if let Some(p) = prev {
                        n_flows -= p.tables[dp].tables[e]
                            .iter()
                            .map(|t| t.n_flows())
                            .sum::<usize>();
                    }
                    same_errors = false;
                    n_flows += d.tables[e].iter().map(|t| t.n_flows()).sum::<usize>();
                    d.skip[e] = skip_of(&d.tables[e]);
                    d.plan[e] = Arc::default();
                    continue;
                };
                let mut changed = false;
                for (t, o) in d.tables[e].iter().zip(old) {
                    if !Arc::ptr_eq(t, o) {
                        changed = true;
                        n_flows = n_flows - o.n_flows() + t.n_flows();
                        same_errors &= t.failed.is_empty() && o.failed.is_empty();
                    }
                }
                if changed {
                    d.skip[e] = skip_of(&d.tables[e]);
                    d.plan[e] = Arc::default();
                }
            }
        }
        let errors = match prev {
            Some(p) if same_errors => p.errors.clone(),
            _ => {
                let mut errors = row_errors.clone();
                for d in &tables {
                    for ts in &d.tables {
                        for t in ts {
                            errors.extend(t.failed.iter().map(|(e, _)| e.clone()));
                        }
                    }
                }
                errors
            }
        };
        Pipeline {
            topo,
            tables,
            errors,
            sets,
            row_errors: Arc::new(row_errors),
            order,
            residency: residency.clone(),
            n_flows,
            options,
        }
    }

    /// Replaces quoted port names by their friendly names (ovn-trace's
    /// `ovntrace_make_names_friendly`).
    pub fn make_names_friendly(&self, s: &str) -> String {
        self.topo.make_names_friendly(s)
    }

    /// A port by name, or by `external_ids:name` or UUID prefix as ovn-trace accepts.
    pub fn port_by_name(&self, name: &str) -> Option<&PortInfo> {
        if let Some(&id) = self.topo.ports_by_name.get(name) {
            return Some(&self.topo.ports[id as usize]);
        }
        self.topo.port_by_other_name(name)
    }

    pub fn port_id(&self, name: &str) -> Option<PortId> {
        self.topo.ports_by_name.get(name).copied()
    }

    pub fn lookup_port(&self, dp: DpId, name: &str) -> Option<u32> {
        self.topo
            .lookup_port_in(&self.topo.datapaths[dp as usize], name)
    }

    /// Every datapath, by [`DpId`].
    pub fn datapaths(&self) -> &[DatapathInfo] {
        &self.topo.datapaths
    }

    /// Every port, by [`PortId`].
    pub fn ports(&self) -> &[PortInfo] {
        &self.topo.ports
    }

    /// A datapath by name, `external_ids:name2`, or UUID prefix.
    pub fn datapath_by_name(&self, name: &str) -> Option<DpId> {
        let datapaths = &self.topo.datapaths;
        if let Some(i) = datapaths
            .iter()
            .position(|d| d.name == name || d.name2.as_deref() == Some(name))
        {
            return Some(i as DpId);
        }
        let mut found = None;
        for (i, d) in datapaths.iter().enumerate() {
            if name.len() >= 4
                && (d.uuid.to_string().starts_with(name) || d.nb_uuid.to_string().starts_with(name))
            {
                if found.is_some() {
                    return None;
                }
                found = Some(i as DpId);
            }
        }
        found
    }

    pub fn datapath_by_key(&self, key: u32) -> Option<DpId> {
        self.topo.dp_by_key.get(&key).copied()
    }

    /// The load-balancer VIPs.
    pub fn lb_vips(&self) -> &LbVips {
        &self.topo.lb_vips
    }

    #[inline]
    pub fn datapath(&self, dp: DpId) -> &DatapathInfo {
        &self.topo.datapaths[dp as usize]
    }

    #[inline]
    pub fn port(&self, id: PortId) -> &PortInfo {
        &self.topo.ports[id as usize]
    }

    #[inline]
    pub fn port_by_key(&self, dp: DpId, key: u32) -> Option<&PortInfo> {
        self.topo.datapaths[dp as usize]
            .ports_by_key
            .get(key)
            .map(|id| &self.topo.ports[id as usize])
    }

    #[inline]
    pub fn port_id_by_key(&self, dp: DpId, key: u32) -> Option<PortId> {
        self.topo.datapaths[dp as usize].ports_by_key.get(key)
    }

    #[inline]
    pub fn mcgroup_by_key(&self, dp: DpId, key: u32) -> Option<&McGroupInfo> {
        self.topo.datapaths[dp as usize]
            .mcgroups
            .iter()
            .find(|m| m.key == key)
    }

    /// The flow table for a lookup: the classifier and its stage name.
    #[inline]
    pub fn lookup(
        &self,
        dp: DpId,
        egress: bool,
        table: u8,
        flow: &crate::flow::Flow,
        wc: Option<&mut [u64; crate::flow::WORDS]>,
    ) -> Option<FlowId> {
        self.tables[dp as usize].tables[usize::from(egress)]
            .get(table as usize)?
            .classifier
            .lookup(flow, wc)
            .map(|id| FlowId {
                dp,
                egress,
                table,
                idx: id & !OMIT,
            })
    }

    /// The flow a packet meets from stage `table` on: stages whose one flow is `1` →
    /// `next;` are skipped without a lookup, and a lookup that finds an omitted flow
    /// (a stage's default `next;`) goes on to the following stage (past those too).
    /// Returns the stage where the walk stopped and the flow found there (none: an
    /// implicit drop). Most stages need no lookup: the frame's ethertype and IP
    /// protocol decide them (see `classes`); a `quiet` walk (one that records no
    /// trace) also passes over stages where they leave only `next;` flows, and over
    /// a `next;` flow its class's list finds.
    #[inline]
    pub fn lookup_stage(
        &self,
        dp: DpId,
        egress: bool,
        table: u8,
        quiet: bool,
        flow: &crate::flow::Flow,
        wc: Option<&mut [u64; crate::flow::WORDS]>,
    ) -> (u8, Option<FlowId>) {
        let class = if wc.is_none() {
            classes::of(flow)
        } else {
            classes::N
        };
        let (table, found) = self.stage_flow(dp, egress, table, quiet, class, flow, wc);
        (table, found.map(|(id, _)| id))
    }

    /// The class of `flow` for [`stage_flow`](Self::stage_flow): its ethertype and IP
    /// protocol, which no logical action rewrites (the interpreter finds it once per
    /// pipeline it walks).
    #[inline]
    pub fn packet_class(flow: &crate::flow::Flow) -> usize {
        classes::of(flow)
    }

    /// [`lookup_stage`](Self::lookup_stage) for a packet of `class`
    /// ([`packet_class`](Self::packet_class); [`NO_CLASS`] when `wc` tracks the
    /// wildcards, which classes do not), with the actions of the flow found
    /// ([`flow`](Self::flow) has the rest of it).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn stage_flow<'a>(
        &'a self,
        dp: DpId,
        egress: bool,
        table: u8,
        quiet: bool,
        class: usize,
        flow: &crate::flow::Flow,
        mut wc: Option<&mut [u64; crate::flow::WORDS]>,
    ) -> (u8, Option<(FlowId, &'a [Action])>) {
        let d = &self.tables[dp as usize];
        let e = usize::from(egress);
        let tables = &d.tables[e];
        let found = |table: u8, id: u32, actions: &'a [Action]| {
            let fid = FlowId {
                dp,
                egress,
                table,
                idx: id,
            };
            (table, Some((fid, actions)))
        };
        let rule = |table: u8, id: u32| {
            found(
                table,
                id,
                &tables[usize::from(table)].slot(id).flow.actions[..],
            )
        };
        if quiet && class < classes::N {
            return self.stages(dp, egress).find(table, class, flow);
        }
        let skip = &d.skip[e];
        let next = |t: u8| -> u8 { skip.get(usize::from(t)).copied().unwrap_or(t) };
        let mut table = next(table);
        loop {
            let Some(t) = tables.get(usize::from(table)) else {
                return (table, None);
            };
            let c = &t.classes;
            let id = match c.exact.get(class) {
                Some(&classes::LIST) => c.list(class, flow),
                Some(&id) if id != classes::LOOKUP => Some(id),
                _ => t.classifier.lookup(flow, wc.as_deref_mut()),
            };
            match id {
                // On to the next stage that is not trivial, as on entry.
                Some(id) if id & OMIT != 0 => table = next(table + 1),
                Some(id) => return rule(table, id),
                None => return (table, None),
            }
        }
    }

    /// Pipeline `egress` of `dp` as a walk that records nothing reads it: a walk takes
    /// this once per pipeline it enters and then [`Stages::find`] per stage.
    #[inline]
    pub(crate) fn stages(&self, dp: DpId, egress: bool) -> Stages<'_> {
        let d = &self.tables[dp as usize];
        let e = usize::from(egress);
        Stages {
            dp,
            egress,
            plan: d.plan(e),
            tables: &d.tables[e],
        }
    }

    /// The first table from `table` on that needs a lookup.
    #[inline]
    pub fn skip_trivial(&self, dp: DpId, egress: bool, table: u8) -> u8 {
        self.tables[dp as usize].skip[usize::from(egress)]
            .get(table as usize)
            .copied()
            .unwrap_or(table)
    }

    pub fn stage_name(&self, dp: DpId, egress: bool, table: u8) -> Option<&str> {
        self.tables[dp as usize].tables[usize::from(egress)]
            .get(table as usize)?
            .stage_name
            .as_deref()
    }

    #[inline]
    pub fn flow(&self, id: FlowId) -> &CompiledFlow {
        let t = &self.tables[id.dp as usize].tables[usize::from(id.egress)][usize::from(id.table)];
        let i = id.idx as usize;
        &t.slots[i / CHUNK][i % CHUNK].flow
    }

    /// Every compiled flow, table by table.
    pub fn flows(&self) -> impl Iterator<Item = (FlowId, &CompiledFlow)> {
        self.tables.iter().enumerate().flat_map(|(dp, d)| {
            d.tables.iter().enumerate().flat_map(move |(e, ts)| {
                ts.iter().enumerate().flat_map(move |(t, table)| {
                    table.live().map(move |(i, s)| {
                        (
                            FlowId {
                                dp: dp as DpId,
                                egress: e == 1,
                                table: t as u8,
                                idx: i,
                            },
                            &s.flow,
                        )
                    })
                })
            })
        })
    }

    /// Compiled flows (one per logical flow and datapath).
    pub fn n_flows(&self) -> usize {
        self.n_flows
    }

    pub fn mac_binding(&self, dp: DpId, port_key: u32, ip: u128) -> Option<u64> {
        self.topo.datapaths[dp as usize]
            .mac_bindings
            .get(&(port_key, ip))
            .copied()
    }

    pub fn fdb(&self, dp: DpId, mac: u64) -> Option<u32> {
        self.topo.datapaths[dp as usize].fdb.get(&mac).copied()
    }

    /// Rules in the classifiers, for status and benchmarks.
    pub fn n_rules(&self) -> u64 {
        self.tables
            .iter()
            .flat_map(|d| d.tables.iter().flatten())
            .map(|t| u64::from(t.classifier.len()))
            .sum()
    }

    /// Tables rebuilt since `older` (not shared with it), for benchmarks and tests.
    pub fn tables_rebuilt_since(&self, older: &Pipeline) -> usize {
        self.tables
            .iter()
            .zip(&older.tables)
            .flat_map(|(a, b)| a.tables.iter().flatten().zip(b.tables.iter().flatten()))
            .filter(|(a, b)| !Arc::ptr_eq(a, b))
            .count()
    }

    /// Every table's contents in lookup order (flows, their priorities and rules, the
    /// stage skips) and the errors: two pipelines with the same description decide
    /// every packet alike. For tests of [`Pipeline::update`].
    pub fn describe(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        for (dp, d) in self.tables.iter().enumerate() {
            let _ = writeln!(s, "datapath {}", self.topo.datapaths[dp].uuid);
            for e in 0..2 {
                let _ = writeln!(s, " pipeline {e} skip {:?}", d.skip[e]);
                let name = |t: u8, id: u32| {
                    let f = &d.tables[e][usize::from(t)].slot(id & !OMIT).flow;
                    format!("{}{}", f.uuid, if id & OMIT != 0 { "/omit" } else { "" })
                };
                let plan = d.plan(e);
                let _ = write!(s, " pipeline {e} plan\n{}", plan.describe(name));
                for (t, table) in d.tables[e].iter().enumerate() {
                    if table.order.is_empty() && table.failed.is_empty() {
                        continue;
                    }
                    let _ = writeln!(s, "  table {t} {:?}", table.stage_name);
                    for (_, slot) in table.live() {
                        let (f, terms) = (&slot.flow, &slot.terms);
                        let loads: Vec<_> = name_loads(&f.actions).collect();
                        let _ = writeln!(
                            s,
                            "   {} {} omit={} {} | {:?} | {:?}",
                            f.uuid, f.priority, f.omit, f.match_s, terms, loads
                        );
                    }
                    for (err, _) in &table.failed {
                        let _ = writeln!(s, "   failed {err:?}");
                    }
                }
            }
        }
        let _ = writeln!(s, "errors {:?}", self.errors);
        s
    }
}

/// IPv4 addresses as IPv4-mapped IPv6, as OVN keys MAC bindings.
pub fn parse_ip_any(s: &str) -> Option<u128> {
    if let Ok(v4) = s.parse::<std::net::Ipv4Addr>() {
        Some(v4_mapped(u32::from(v4)))
    } else {
        s.parse::<std::net::Ipv6Addr>().ok().map(u128::from)
    }
}

pub fn v4_mapped(a: u32) -> u128 {
    (0xffffu128 << 32) | u128::from(a)
}

/// If `s` ends with a UUID, keeps only its first 6 characters (ovn-trace's
/// `shorten_uuid`).
fn shorten_uuid(s: &str) -> String {
    if s.len() >= 36 && s[s.len() - 36..].parse::<Uuid>().is_ok() {
        s[..s.len() - 30].to_owned()
    } else {
        s.to_owned()
    }
}

/// Folds constant subexpressions (OVN's `expr_fix`).
fn fold(m: Match) -> Match {
    match m {
        Match::And(v) => {
            let mut out = Vec::new();
            for s in v {
                match fold(s) {
                    Match::Bool(true) => {}
                    Match::Bool(false) => return Match::Bool(false),
                    Match::And(w) => out.extend(w),
                    s => out.push(s),
                }
            }
            match out.len() {
                0 => Match::Bool(true),
                1 => out.pop().unwrap_or(Match::Bool(true)),
                _ => Match::And(out),
            }
        }
        Match::Or(v) => {
            let mut out = Vec::new();
            for s in v {
                match fold(s) {
                    Match::Bool(false) => {}
                    Match::Bool(true) => return Match::Bool(true),
                    Match::Or(w) => out.extend(w),
                    s => out.push(s),
                }
            }
            match out.len() {
                0 => Match::Bool(false),
                1 => out.pop().unwrap_or(Match::Bool(false)),
                _ => Match::Or(out),
            }
        }
        m => m,
    }
}

impl Match {
    fn is_true(&self) -> bool {
        matches!(self, Match::Bool(true))
    }
}
