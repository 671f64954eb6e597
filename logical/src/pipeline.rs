//! The compiled logical pipeline: for every datapath, pipeline and table, the logical
//! flows as a [`Classifier`]; plus the ports, multicast groups, MAC bindings and FDB
//! entries the actions consult.
//!
//! Compilation follows ovn-trace's `read_db`: a flow whose match or actions do not
//! parse, or whose match is too large to index, is left out and reported
//! ([`Pipeline::errors`]) with its UUID, never skipped silently.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::actions::{self, Action, OptionTable, ParseParams, Pipeline as Dir};
use crate::classifier::Classifier;
use crate::db::{Database, LportAddresses, Uuid};
use crate::expr::{self, Annotator, Match, Sets};
use crate::idl_order;
use crate::lex::{self, JsonStr, Token};
use crate::symtab::symtab;

/// Index of a datapath in [`Pipeline::datapaths`].
pub type DpId = u32;
/// Index of a port in [`Pipeline::ports`].
pub type PortId = u32;
/// Index of a compiled flow in [`Pipeline::flows`].
pub type FlowId = u32;

/// Disjuncts one logical flow may expand to before it is refused.
pub const MAX_CONJS_PER_FLOW: usize = 100_000;

/// Which chassis `is_chassis_resident()` is evaluated for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Residency {
    /// As ovn-trace: every port that exists is resident.
    #[default]
    Everywhere,
    /// As ovn-controller on one chassis: only these ports.
    Ports(std::collections::HashSet<String>),
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
    ports_by_key: FxHashMap<u32, PortId>,
    mcgroups: Vec<McGroupInfo>,
    tables: [Vec<Table>; 2],
    /// (port key, IP as IPv6 or IPv4-mapped) → MAC.
    mac_bindings: FxHashMap<(u32, u128), u64>,
    /// MAC → port key.
    fdb: FxHashMap<u64, u32>,
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

#[derive(Debug, Clone, Default)]
struct Table {
    classifier: Classifier,
    stage_name: Option<Arc<str>>,
    /// The first table from this one on that is not trivial (its only flow matches
    /// everything and says `next;`): the interpreter jumps there without lookups.
    skip_to: u8,
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
}

/// A flow the pipeline could not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowError {
    pub uuid: Uuid,
    pub datapath: Option<Uuid>,
    pub reason: String,
}

/// A compiled logical pipeline.
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    pub datapaths: Vec<DatapathInfo>,
    pub ports: Vec<PortInfo>,
    pub flows: Vec<CompiledFlow>,
    pub errors: Vec<FlowError>,
    /// Load-balancer VIPs as (address, port).
    pub lb_vips: Vec<(actions::Addr, u16, String)>,
    ports_by_name: FxHashMap<String, PortId>,
    pub(crate) sets: Sets,
    dp_by_key: FxHashMap<u32, DpId>,
    dp_by_uuid: FxHashMap<Uuid, DpId>,
}

impl Pipeline {
    /// Compiles `db`, evaluating `is_chassis_resident()` as `residency` says.
    pub fn compile(db: &Database, residency: &Residency) -> Pipeline {
        let mut p = Pipeline::default();
        p.read_datapaths(db);
        p.read_ports(db);
        p.read_mcgroups(db);
        p.read_flows(db, residency);
        p.read_mac_bindings(db);
        p.read_fdbs(db);
        for lb in &db.load_balancers {
            for vip in &lb.vips {
                if let Some((addr, port)) = actions::parse_ip_port(vip) {
                    p.lb_vips.push((addr, port, vip.clone()));
                }
            }
        }
        p
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
                ports_by_key: FxHashMap::default(),
                mcgroups: Vec::new(),
                tables: [
                    vec![Table::default(); actions::LOG_PIPELINE_LEN as usize],
                    vec![Table::default(); actions::LOG_PIPELINE_LEN as usize],
                ],
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
            self.datapaths[dp as usize]
                .ports_by_key
                .entry(pb.tunnel_key)
                .or_insert(id);
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

    fn read_flows(&mut self, db: &Database, residency: &Residency) {
        let mut sets = Sets::default();
        for (name, addrs) in &db.address_sets {
            sets.add_address_set(name, addrs.iter().map(String::as_str));
        }
        for (name, ports) in &db.port_groups {
            sets.add_port_group(name, ports.iter().map(String::as_str));
        }
        let mut dhcp = OptionTable::default();
        for o in &db.dhcp_options {
            dhcp.add(&o.name, o.code, &o.ty);
        }
        let mut dhcp6 = OptionTable::default();
        for o in &db.dhcpv6_options {
            dhcp6.add(&o.name, o.code, &o.ty);
        }
        let (nd_ra, events) = (OptionTable::nd_ra(), OptionTable::lb_event());
        let mut annotator = Annotator::default();
        // Annotated matches by (match text, datapath key when `@pg` makes it matter).
        let mut match_cache: FxHashMap<(String, u32), Result<Match, String>> = FxHashMap::default();
        let mut prereq_cache: FxHashMap<Vec<String>, Result<Match, String>> = FxHashMap::default();
        let port_names: rustc_hash::FxHashSet<String> =
            self.ports_by_name.keys().cloned().collect();
        let resident_everywhere = |name: &str| name.is_empty() || port_names.contains(name);

        let mut pending: Vec<(DpId, CompiledFlow, Match)> = Vec::new();
        for lf in &db.flows {
            let dir = if lf.egress { Dir::Egress } else { Dir::Ingress };
            let pp = ParseParams {
                dhcp_opts: &dhcp,
                dhcpv6_opts: &dhcp6,
                nd_ra_opts: &nd_ra,
                event_opts: &events,
                pipeline: dir,
                table: lf.table_id,
                n_tables: actions::LOG_PIPELINE_LEN,
            };
            let parsed = match actions::parse(&lf.actions, &pp) {
                Ok(p) => p,
                Err(e) => {
                    self.errors.push(FlowError {
                        uuid: lf.uuid,
                        datapath: None,
                        reason: format!("{}: parsing actions failed ({e})", lf.actions),
                    });
                    continue;
                }
            };
            let prereqs = prereq_cache
                .entry(parsed.prereqs.clone())
                .or_insert_with(|| {
                    let mut m = Match::Bool(true);
                    for p in &parsed.prereqs {
                        let e = expr::parse(p, symtab(), &expr::NoSets, 0)?;
                        m = m.and(annotator.annotate(symtab(), &e)?);
                    }
                    Ok(m)
                })
                .clone();
            let prereqs = match prereqs {
                Ok(p) => p,
                Err(e) => {
                    self.errors.push(FlowError {
                        uuid: lf.uuid,
                        datapath: None,
                        reason: format!("match annotation failed ({e})"),
                    });
                    continue;
                }
            };
            let actions_arc: Arc<[Action]> = parsed.actions.into();
            let stage_name: Option<Arc<str>> = lf.stage_name.as_deref().map(Into::into);
            let source: Option<Arc<str>> = lf.source.as_deref().map(Into::into);
            let match_s: Arc<str> = self.make_names_friendly(&lf.match_).into();
            let uses_pg = lf.match_.contains('@');
            for dp_uuid in &lf.datapaths {
                let Some(&dp) = self.dp_by_uuid.get(dp_uuid) else {
                    continue;
                };
                let dp_key = self.datapaths[dp as usize].key;
                let cache_key = (lf.match_.clone(), if uses_pg { dp_key } else { 0 });
                let m = match_cache
                    .entry(cache_key)
                    .or_insert_with(|| {
                        let e = expr::parse(&lf.match_, symtab(), &sets, dp_key)?;
                        annotator.annotate(symtab(), &e)
                    })
                    .clone();
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        self.errors.push(FlowError {
                            uuid: lf.uuid,
                            datapath: Some(*dp_uuid),
                            reason: format!("{}: parsing expression failed ({e})", lf.match_),
                        });
                        continue;
                    }
                };
                let resident = |name: &str| match residency {
                    Residency::Everywhere => resident_everywhere(name),
                    Residency::Ports(set) => name.is_empty() || set.contains(name),
                };
                let m = fold(
                    m.and(prereqs.clone())
                        .simplify()
                        .resolve_conditions(&resident),
                );
                let omit = m.is_true()
                    && matches!(&*actions_arc, [Action::Next { pipeline, table, .. }]
                        if *pipeline == dir && *table == lf.table_id + 1);
                pending.push((
                    dp,
                    CompiledFlow {
                        uuid: lf.uuid,
                        egress: lf.egress,
                        table: lf.table_id,
                        priority: lf.priority,
                        stage_name: stage_name.clone(),
                        source: source.clone(),
                        match_s: match_s.clone(),
                        actions: actions_arc.clone(),
                        omit,
                    },
                    m,
                ));
            }
        }

        // ovn-trace sorts by pipeline, table and descending priority with a stable
        // sort, so flows of equal priority keep the order its IDL iterates rows in
        // (`idl_order`). northd does emit overlapping flows of equal priority
        // (ls_out_pre_lb's `eth.mcast` and `ip && outport == ROUTER_PORT`); ordering
        // ties the same way makes the first one win here as it does there. (OVS's own
        // classifier leaves such ties undefined, so the datapath loses nothing by
        // following ovn-trace.)
        let uuids: Vec<Uuid> = db.flows.iter().map(|f| f.uuid).collect();
        let rank = idl_order::ranks(&uuids);
        pending.sort_by_key(|(dp, f, _)| {
            (
                *dp,
                f.egress,
                f.table,
                std::cmp::Reverse(f.priority),
                rank.get(&f.uuid).copied(),
            )
        });
        for (dp, flow, m) in pending {
            let d = &self.datapaths[dp as usize];
            let lookup = |name: &str| self.lookup_port_in(d, name);
            let m = m.resolve_ports(&lookup).simplify();
            let conjs = match expr::to_conjs(&m, MAX_CONJS_PER_FLOW) {
                Ok(c) => c,
                Err(e) => {
                    self.errors.push(FlowError {
                        uuid: flow.uuid,
                        datapath: Some(d.uuid),
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            let id = self.flows.len() as FlowId;
            let (egress, table, priority) = (flow.egress, flow.table as usize, flow.priority);
            let stage = flow.stage_name.clone();
            self.flows.push(flow);
            let t = &mut self.datapaths[dp as usize].tables[usize::from(egress)][table];
            if t.stage_name.is_none() {
                t.stage_name = stage;
            }
            for c in &conjs {
                t.classifier.insert(c, u32::from(priority), id);
            }
        }
        for d in &mut self.datapaths {
            for t in d.tables.iter_mut().flatten() {
                t.classifier.finish();
            }
        }
        let flows = &self.flows;
        for d in &mut self.datapaths {
            for tables in d.tables.iter_mut() {
                let n = tables.len();
                let mut next = n as u8;
                for i in (0..n).rev() {
                    let trivial = tables[i]
                        .classifier
                        .only_catchall()
                        .is_some_and(|id| flows[id as usize].omit);
                    tables[i].skip_to = if trivial { next } else { i as u8 };
                    next = tables[i].skip_to;
                }
            }
        }
        self.sets = sets;
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
    pub fn make_names_friendly(&self, s: &str) -> String {
        if !self.ports.iter().any(|p| p.friendly != p.name) {
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
        if let Some(p) = self.port_by_name(name) {
            return (self.datapaths[p.dp as usize].uuid == d.uuid).then_some(p.key);
        }
        d.mcgroups.iter().find(|m| m.name == name).map(|m| m.key)
    }

    /// A port by name, or by `external_ids:name` or UUID prefix as ovn-trace accepts.
    pub fn port_by_name(&self, name: &str) -> Option<&PortInfo> {
        if let Some(&id) = self.ports_by_name.get(name) {
            return Some(&self.ports[id as usize]);
        }
        let mut found = None;
        for p in &self.ports {
            if p.name2.as_deref() == Some(name) {
                if found.is_some() {
                    return None;
                }
                found = Some(p);
            }
        }
        if found.is_none()
            && name.len() >= 4
            && name.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        {
            for p in &self.ports {
                if p.uuid.to_string().starts_with(name) {
                    if found.is_some() {
                        return None;
                    }
                    found = Some(p);
                }
            }
        }
        found
    }

    pub fn port_id(&self, name: &str) -> Option<PortId> {
        self.ports_by_name.get(name).copied()
    }

    pub fn lookup_port(&self, dp: DpId, name: &str) -> Option<u32> {
        self.lookup_port_in(&self.datapaths[dp as usize], name)
    }

    /// A datapath by name, `external_ids:name2`, or UUID prefix.
    pub fn datapath_by_name(&self, name: &str) -> Option<DpId> {
        if let Some(i) = self
            .datapaths
            .iter()
            .position(|d| d.name == name || d.name2.as_deref() == Some(name))
        {
            return Some(i as DpId);
        }
        let mut found = None;
        for (i, d) in self.datapaths.iter().enumerate() {
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
        self.dp_by_key.get(&key).copied()
    }

    pub fn datapath(&self, dp: DpId) -> &DatapathInfo {
        &self.datapaths[dp as usize]
    }

    pub fn port(&self, id: PortId) -> &PortInfo {
        &self.ports[id as usize]
    }

    pub fn port_by_key(&self, dp: DpId, key: u32) -> Option<&PortInfo> {
        self.datapaths[dp as usize]
            .ports_by_key
            .get(&key)
            .map(|&id| &self.ports[id as usize])
    }

    pub fn port_id_by_key(&self, dp: DpId, key: u32) -> Option<PortId> {
        self.datapaths[dp as usize].ports_by_key.get(&key).copied()
    }

    pub fn mcgroup_by_key(&self, dp: DpId, key: u32) -> Option<&McGroupInfo> {
        self.datapaths[dp as usize]
            .mcgroups
            .iter()
            .find(|m| m.key == key)
    }

    /// The flow table for a lookup: the classifier and its stage name.
    pub fn lookup(
        &self,
        dp: DpId,
        egress: bool,
        table: u8,
        flow: &crate::flow::Flow,
        wc: Option<&mut [u64; crate::flow::WORDS]>,
    ) -> Option<FlowId> {
        self.datapaths[dp as usize].tables[usize::from(egress)]
            .get(table as usize)?
            .classifier
            .lookup(flow, wc)
    }

    /// The first table from `table` on that needs a lookup.
    #[inline]
    pub fn skip_trivial(&self, dp: DpId, egress: bool, table: u8) -> u8 {
        self.datapaths[dp as usize].tables[usize::from(egress)]
            .get(table as usize)
            .map_or(table, |t| t.skip_to)
    }

    pub fn stage_name(&self, dp: DpId, egress: bool, table: u8) -> Option<&str> {
        self.datapaths[dp as usize].tables[usize::from(egress)]
            .get(table as usize)?
            .stage_name
            .as_deref()
    }

    pub fn flow(&self, id: FlowId) -> &CompiledFlow {
        &self.flows[id as usize]
    }

    pub fn mac_binding(&self, dp: DpId, port_key: u32, ip: u128) -> Option<u64> {
        self.datapaths[dp as usize]
            .mac_bindings
            .get(&(port_key, ip))
            .copied()
    }

    pub fn fdb(&self, dp: DpId, mac: u64) -> Option<u32> {
        self.datapaths[dp as usize].fdb.get(&mac).copied()
    }

    /// Rules in the classifiers, for status and benchmarks.
    pub fn n_rules(&self) -> u64 {
        self.datapaths
            .iter()
            .flat_map(|d| d.tables.iter().flatten())
            .map(|t| u64::from(t.classifier.len()))
            .sum()
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
