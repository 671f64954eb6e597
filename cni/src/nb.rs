//! The Northbound, as the plugin uses it: a connection that gives up quickly (error 11
//! when OVN is unreachable), typed rows of the tables it reads, and one read transaction
//! that fetches everything an ADD needs.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use ovnest_ovsdb::{
    Clause, Client, ClientConfig, ConnectionState, Datum, Error as OvsdbError, Function, Operation,
    OperationResult, Remotes, Uuid,
};
use serde_json::{Map, Value};

use crate::spec::{CniError, code};

pub const DATABASE: &str = "OVN_Northbound";

/// Checks the syntax of an OVS remote list (`unix:PATH`, `tcp:HOST:PORT`,
/// `ssl:HOST:PORT`, comma-separated) and returns the remotes.
pub fn parse_remotes(s: &str) -> Result<Vec<String>, String> {
    let list: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect();
    if list.is_empty() {
        return Err("no remote given".into());
    }
    for r in &list {
        let ok = match r.split_once(':') {
            Some(("unix", path)) => !path.is_empty(),
            Some(("tcp" | "ssl", rest)) => !rest.is_empty(),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "{r:?} is not unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT"
            ));
        }
    }
    Ok(list)
}

/// A connected Northbound client.
pub struct Nb {
    client: Client,
}

/// Transaction outcomes the plugin tells apart.
#[derive(Debug)]
pub enum TxnError {
    /// Lost or no connection: the runtime should retry later (code 11).
    Unavailable(String),
    /// Operation `index` failed (a `wait` guard that did not hold, a constraint).
    Failed { index: Option<usize>, error: String },
}

impl TxnError {
    pub fn into_cni(self, what: &str) -> CniError {
        match self {
            TxnError::Unavailable(e) => CniError::new(
                code::TRY_AGAIN_LATER,
                format!("{what}: OVN Northbound unreachable"),
            )
            .with_details(e),
            TxnError::Failed { error, .. } => CniError::new(
                code::NB_REFUSED,
                format!("{what}: the Northbound refused it"),
            )
            .with_details(error),
        }
    }
}

impl Nb {
    /// Connects to the first remote that answers. Fails with code 11 once every remote
    /// has refused a connection, or after `timeout`.
    pub async fn connect(
        remotes: &str,
        ssl: Option<&crate::config::SslFiles>,
        timeout: Duration,
    ) -> Result<Nb, CniError> {
        let unreachable = |details: String| {
            CniError::new(code::TRY_AGAIN_LATER, "OVN Northbound unreachable").with_details(details)
        };
        let parsed: Remotes = remotes
            .parse()
            .map_err(|e| CniError::new(code::INVALID_CONFIG, format!("\"nb\": {e}")))?;
        let n_remotes = parsed.as_slice().len() as u64;
        let mut config = ClientConfig::new(parsed, DATABASE);
        config.connect_timeout = timeout;
        // A plugin run is short: no probing, and no long backoff between remotes.
        config.probe_interval = None;
        config.backoff_min = Duration::from_millis(20);
        config.backoff_max = Duration::from_millis(200);
        config.ssl = ssl.map(|f| ovnest_ovsdb::SslConfig {
            private_key: f.private_key.clone(),
            certificate: f.certificate.clone(),
            ca_cert: f.ca_cert.clone(),
        });
        let client = Client::start(config, None);
        let mut state = client.state();
        let deadline = Instant::now() + timeout;
        loop {
            if !matches!(*state.borrow_and_update(), ConnectionState::Disconnected) {
                return Ok(Nb { client });
            }
            let failures = client.counters().snapshot().connect_failures;
            if failures >= n_remotes {
                return Err(unreachable(format!(
                    "no remote of {remotes} accepted a connection"
                )));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(unreachable(format!(
                    "no connection to {remotes} within {timeout:?}"
                )));
            }
            // Wake on a state change, or soon to look at the failure count again.
            let _ = tokio::time::timeout(left.min(Duration::from_millis(5)), state.changed()).await;
        }
    }

    pub async fn transact(&self, ops: Vec<Operation>) -> Result<Vec<OperationResult>, TxnError> {
        match self.client.transact(ops).await {
            Ok(r) => Ok(r),
            Err(OvsdbError::Transaction(t)) => Err(TxnError::Failed {
                index: t.index,
                error: match t.details {
                    Some(d) => format!("{}: {d}", t.error),
                    None => t.error,
                },
            }),
            Err(OvsdbError::Rpc(e)) => Err(TxnError::Failed {
                index: None,
                error: e.to_string(),
            }),
            Err(e) => Err(TxnError::Unavailable(e.to_string())),
        }
    }

    /// Runs read-only selects in one transaction and returns their rows.
    pub async fn select(
        &self,
        ops: Vec<Operation>,
    ) -> Result<Vec<Vec<Map<String, Value>>>, TxnError> {
        Ok(self
            .transact(ops)
            .await?
            .into_iter()
            .map(|r| match r {
                OperationResult::Rows(rows) => rows,
                _ => Vec::new(),
            })
            .collect())
    }
}

pub fn select(table: &str, conditions: Vec<Clause>, columns: &[&str]) -> Operation {
    Operation::Select {
        table: table.into(),
        conditions,
        columns: Some(columns.iter().map(|c| (*c).to_owned()).collect()),
    }
}

/// `column == value` for a string column.
pub fn eq(column: &str, value: &str) -> Clause {
    Clause::eq(column, Datum::atom(value))
}

pub fn includes_pair(column: &str, key: &str, value: &str) -> Clause {
    Clause::new(column, Function::Includes, Datum::map([(key, value)]))
}

// ---------------------------------------------------------------------------------------
// Typed rows. A column that does not decode is treated as empty: an odd row never stops
// the plugin, it is just not usable (and a port without a usable tag is never reused).

fn datum(row: &Map<String, Value>, column: &str) -> Datum {
    row.get(column)
        .and_then(|v| Datum::from_json(v).ok())
        .unwrap_or_else(|| Datum::set([]))
}

fn string(row: &Map<String, Value>, column: &str) -> Option<String> {
    datum(row, column)
        .atoms()
        .first()
        .and_then(|a| a.as_str())
        .map(str::to_owned)
}

fn strings(row: &Map<String, Value>, column: &str) -> Vec<String> {
    datum(row, column)
        .atoms()
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

fn integer(row: &Map<String, Value>, column: &str) -> Option<i64> {
    datum(row, column)
        .atoms()
        .first()
        .and_then(|a| a.as_integer())
}

fn boolean(row: &Map<String, Value>, column: &str) -> Option<bool> {
    datum(row, column).atoms().first().and_then(|a| a.as_bool())
}

fn uuid(row: &Map<String, Value>, column: &str) -> Option<Uuid> {
    datum(row, column).atoms().first().and_then(|a| a.as_uuid())
}

fn uuids(row: &Map<String, Value>, column: &str) -> Vec<Uuid> {
    datum(row, column)
        .atoms()
        .iter()
        .filter_map(|a| a.as_uuid())
        .collect()
}

fn string_map(row: &Map<String, Value>, column: &str) -> BTreeMap<String, String> {
    datum(row, column)
        .pairs()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
        .collect()
}

/// A Logical_Switch_Port, with the columns the plugin uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lsp {
    pub uuid: Uuid,
    pub name: String,
    pub parent_name: Option<String>,
    /// 1..=4095 per the schema; anything else is dropped as odd.
    pub tag: Option<u16>,
    pub tag_request: Option<u16>,
    pub kind: String,
    pub addresses: Vec<String>,
    pub dynamic_addresses: Option<String>,
    pub port_security: Vec<String>,
    pub up: Option<bool>,
    pub options: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
}

pub const LSP_COLUMNS: &[&str] = &[
    "_uuid",
    "name",
    "parent_name",
    "tag",
    "tag_request",
    "type",
    "addresses",
    "dynamic_addresses",
    "port_security",
    "up",
    "options",
    "external_ids",
];

impl Lsp {
    pub fn from_row(row: &Map<String, Value>) -> Option<Lsp> {
        let tag = |c| integer(row, c).and_then(|t| u16::try_from(t).ok());
        Some(Lsp {
            uuid: uuid(row, "_uuid")?,
            name: string(row, "name")?,
            parent_name: string(row, "parent_name").filter(|p| !p.is_empty()),
            tag: tag("tag").filter(|t| (1..=4095).contains(t)),
            tag_request: tag("tag_request"),
            kind: string(row, "type").unwrap_or_default(),
            addresses: strings(row, "addresses"),
            dynamic_addresses: string(row, "dynamic_addresses").filter(|a| !a.is_empty()),
            port_security: strings(row, "port_security"),
            up: boolean(row, "up"),
            options: string_map(row, "options"),
            external_ids: string_map(row, "external_ids"),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    pub uuid: Uuid,
    pub name: String,
    pub ports: Vec<Uuid>,
    pub other_config: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
}

pub const SWITCH_COLUMNS: &[&str] = &["_uuid", "name", "ports", "other_config", "external_ids"];

impl Switch {
    pub fn from_row(row: &Map<String, Value>) -> Option<Switch> {
        Some(Switch {
            uuid: uuid(row, "_uuid")?,
            name: string(row, "name")?,
            ports: uuids(row, "ports"),
            other_config: string_map(row, "other_config"),
            external_ids: string_map(row, "external_ids"),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpOptions {
    pub uuid: Uuid,
    pub cidr: String,
    pub options: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
}

pub const DHCP_COLUMNS: &[&str] = &["_uuid", "cidr", "options", "external_ids"];

impl DhcpOptions {
    pub fn from_row(row: &Map<String, Value>) -> Option<DhcpOptions> {
        Some(DhcpOptions {
            uuid: uuid(row, "_uuid")?,
            cidr: string(row, "cidr")?,
            options: string_map(row, "options"),
            external_ids: string_map(row, "external_ids"),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterPort {
    pub uuid: Uuid,
    pub name: String,
    pub mac: String,
    pub networks: Vec<String>,
}

pub const LRP_COLUMNS: &[&str] = &["_uuid", "name", "mac", "networks"];

impl RouterPort {
    pub fn from_row(row: &Map<String, Value>) -> Option<RouterPort> {
        Some(RouterPort {
            uuid: uuid(row, "_uuid")?,
            name: string(row, "name")?,
            mac: string(row, "mac").unwrap_or_default(),
            networks: strings(row, "networks"),
        })
    }
}

fn rows<T>(rows: &[Map<String, Value>], f: impl Fn(&Map<String, Value>) -> Option<T>) -> Vec<T> {
    rows.iter().filter_map(f).collect()
}

/// What an ADD reads, in one transaction: the switch, the VM's children (every tag in
/// use under the VM's port, and the pool), the switch's DHCP options and router ports.
#[derive(Debug, Clone)]
pub struct View {
    pub switch: Option<Switch>,
    /// Whether the VM's own port exists.
    pub parent_exists: bool,
    pub children: Vec<Lsp>,
    pub dhcp: Vec<DhcpOptions>,
    /// Router-type ports on any switch (filtered to this switch by `ports`).
    pub router_lsps: Vec<Lsp>,
    pub router_ports: Vec<RouterPort>,
}

impl View {
    pub async fn read(nb: &Nb, switch: &str, parent: &str) -> Result<View, TxnError> {
        let mut r = nb
            .select(vec![
                select("Logical_Switch", vec![eq("name", switch)], SWITCH_COLUMNS),
                select("Logical_Switch_Port", vec![eq("name", parent)], &["_uuid"]),
                select(
                    "Logical_Switch_Port",
                    vec![eq("parent_name", parent)],
                    LSP_COLUMNS,
                ),
                select("DHCP_Options", vec![], DHCP_COLUMNS),
                select(
                    "Logical_Switch_Port",
                    vec![eq("type", "router")],
                    LSP_COLUMNS,
                ),
            ])
            .await?;
        let router_lsps = rows(&r[4], Lsp::from_row);
        let switch = rows(&r[0], Switch::from_row).into_iter().next();
        let router_lsps: Vec<Lsp> = router_lsps
            .into_iter()
            .filter(|p| switch.as_ref().is_some_and(|s| s.ports.contains(&p.uuid)))
            .collect();
        let dhcp = rows(&r[3], DhcpOptions::from_row);
        // The router port is only needed when no DHCP options of the switch's subnet name
        // the gateway: then one more round trip.
        let subnet = switch
            .as_ref()
            .and_then(|s| s.other_config.get("subnet"))
            .and_then(|s| s.parse::<crate::spec::Ipv4Net>().ok())
            .map(|n| n.network());
        let gateway_known = dhcp.iter().any(|d| {
            d.options.contains_key("router")
                && d.cidr
                    .parse::<crate::spec::Ipv4Net>()
                    .ok()
                    .map(|c| c.network())
                    == subnet
        });
        let lrp_names: Vec<Clause> = router_lsps
            .iter()
            .filter_map(|p| p.options.get("router-port"))
            .map(|n| eq("name", n))
            .collect();
        let router_ports = if lrp_names.is_empty() || (gateway_known && subnet.is_some()) {
            Vec::new()
        } else {
            // One select per name: RFC 7047 conditions are a conjunction.
            let ops = lrp_names
                .into_iter()
                .map(|c| select("Logical_Router_Port", vec![c], LRP_COLUMNS))
                .collect();
            nb.select(ops)
                .await?
                .iter()
                .flat_map(|rs| rows(rs, RouterPort::from_row))
                .collect()
        };
        Ok(View {
            switch,
            parent_exists: !r[1].is_empty(),
            children: rows(&std::mem::take(&mut r[2]), Lsp::from_row),
            dhcp,
            router_lsps,
            router_ports,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn remote_syntax() {
        assert_eq!(
            parse_remotes("unix:/a, tcp:10.0.0.1:6641,ssl:[::1]:6641")
                .unwrap()
                .len(),
            3
        );
        for bad in ["", "http://x", "unix:", "tcp:", "6641"] {
            assert!(parse_remotes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn odd_rows_become_empty_columns() {
        let row = json!({
            "_uuid": ["uuid", "032ac83f-6ef2-4e2b-b49d-74dce02f8186"],
            "name": "dmz-vm5-c7",
            "parent_name": "dmz-vm5",
            "tag": 7,
            "tag_request": ["set", []],
            "type": "",
            "addresses": "dynamic",
            "dynamic_addresses": "0a:00:00:00:00:07 172.16.255.140",
            "port_security": ["set", []],
            "up": true,
            "options": ["map", []],
            "external_ids": ["map", [["ovnest-cni:state", "free"]]],
        });
        let lsp = Lsp::from_row(row.as_object().unwrap()).unwrap();
        assert_eq!(lsp.tag, Some(7));
        assert_eq!(lsp.tag_request, None);
        assert_eq!(lsp.addresses, vec!["dynamic".to_string()]);
        assert_eq!(lsp.external_ids["ovnest-cni:state"], "free");
        let mut odd = row.clone();
        odd["tag"] = json!("seven");
        odd["up"] = json!(["set", []]);
        let lsp = Lsp::from_row(odd.as_object().unwrap()).unwrap();
        assert_eq!((lsp.tag, lsp.up), (None, None));
        let mut nameless = row;
        nameless.as_object_mut().unwrap().remove("name");
        assert!(Lsp::from_row(nameless.as_object().unwrap()).is_none());
    }
}
