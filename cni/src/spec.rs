//! The CNI protocol, spec 1.0.0 (results also in the 0.3.x / 0.4.0 shape): the
//! environment a runtime sets, the error object and its codes, the ADD result, VERSION.

use std::{net::Ipv4Addr, path::PathBuf};

use serde_json::{Value, json};

/// What VERSION reports. 0.3.0 brought the result shape this plugin returns; 1.0.0 is the
/// newest it implements.
pub const SUPPORTED_VERSIONS: [&str; 4] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

/// The version this plugin speaks when the caller gave none it knows.
pub const SPEC_VERSION: &str = "1.0.0";

/// Error codes: the spec's well-known ones (1–11) and ovnest's own (100+).
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENVIRONMENT: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// Every VLAN id 1–4094 under the VM's port is taken: the VM is full.
    pub const NO_FREE_TAG: u32 = 100;
    /// The Northbound refused a change (missing switch or parent, constraint).
    pub const NB_REFUSED: u32 = 101;
    /// OVN did not report the port `up` within the configured time: the hypervisor's
    /// agent has not programmed it.
    pub const PORT_NOT_UP: u32 = 102;
    /// The container's interface could not be created or configured (e.g. it exists).
    pub const INTERFACE: u32 = 103;
    /// The in-VM tagger (TC eBPF or the VM's OVS bridge) could not be set up.
    pub const TAGGER: u32 = 104;
    /// OVN gave the port no IPv4 address (the switch has no `other_config:subnet`).
    pub const NO_ADDRESS: u32 = 105;
    /// CHECK found the attachment missing or different from what ADD set up.
    pub const CHECK_FAILED: u32 = 106;
}

/// The error object a plugin prints on stdout (and exits non-zero).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}{}", if details.is_empty() { String::new() } else { format!(": {details}") })]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl std::fmt::Display) -> CniError {
        self.details = details.to_string();
        self
    }

    pub fn to_json(&self, cni_version: &str) -> Value {
        json!({
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
            "details": self.details,
        })
    }
}

/// `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    /// CNI 1.1's garbage collection: release attachments not in the valid list.
    Gc,
}

impl Command {
    fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "GC" => Command::Gc,
            _ => return None,
        })
    }
}

/// The parameters a runtime passes in the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    pub container_id: String,
    /// Absent on a DEL whose namespace is already gone.
    pub netns: Option<PathBuf>,
    pub ifname: String,
    /// `CNI_ARGS`: `K=V;K=V`.
    pub args: Vec<(String, String)>,
}

impl Env {
    /// Reads and checks the environment (error code 4 when a needed variable is missing
    /// or malformed). `var` is `std::env::var` in the plugin, a map in tests.
    pub fn read(var: impl Fn(&str) -> Option<String>) -> Result<Env, CniError> {
        let bad = |msg: String| CniError::new(code::INVALID_ENVIRONMENT, msg);
        let command = var("CNI_COMMAND").ok_or_else(|| bad("CNI_COMMAND is not set".into()))?;
        let command = Command::parse(&command).ok_or_else(|| {
            bad(format!(
                "CNI_COMMAND={command:?} is not ADD, DEL, CHECK, VERSION or GC"
            ))
        })?;
        let nonempty = |name: &str| var(name).filter(|v| !v.is_empty());
        let needs_container = matches!(command, Command::Add | Command::Del | Command::Check);
        let container_id = nonempty("CNI_CONTAINERID").unwrap_or_default();
        let ifname = nonempty("CNI_IFNAME").unwrap_or_default();
        let netns = nonempty("CNI_NETNS").map(PathBuf::from);
        if needs_container {
            if container_id.is_empty() {
                return Err(bad("CNI_CONTAINERID is not set".into()));
            }
            check_container_id(&container_id).map_err(bad)?;
            if ifname.is_empty() {
                return Err(bad("CNI_IFNAME is not set".into()));
            }
            check_ifname(&ifname).map_err(bad)?;
        }
        if matches!(command, Command::Add | Command::Check) && netns.is_none() {
            return Err(bad("CNI_NETNS is not set".into()));
        }
        let args = match var("CNI_ARGS") {
            Some(a) => parse_args(&a).map_err(bad)?,
            None => Vec::new(),
        };
        Ok(Env {
            command,
            container_id,
            netns,
            ifname,
            args,
        })
    }

    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Spec: starts with an alphanumeric, then alphanumerics, `_`, `.` or `-`.
fn check_container_id(id: &str) -> Result<(), String> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        Ok(())
    } else {
        Err(format!(
            "CNI_CONTAINERID {id:?} is not a valid container id"
        ))
    }
}

/// Spec: a Linux interface name: 1–15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
pub fn check_ifname(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid interface name"))
    }
}

fn parse_args(s: &str) -> Result<Vec<(String, String)>, String> {
    s.split(';')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("CNI_ARGS: {pair:?} is not KEY=VALUE"))
        })
        .collect()
}

/// The VERSION answer: offline, no configuration needed.
pub fn version_json(cni_version: &str) -> Value {
    json!({ "cniVersion": cni_version, "supportedVersions": SUPPORTED_VERSIONS })
}

/// An IPv4 address with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Ipv4Net> {
        (prefix <= 32).then_some(Ipv4Net { addr, prefix })
    }

    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    pub fn network(&self) -> Ipv4Net {
        Ipv4Net {
            addr: Ipv4Addr::from(u32::from(self.addr) & self.mask()),
            prefix: self.prefix,
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl std::str::FromStr for Ipv4Net {
    type Err = String;

    fn from_str(s: &str) -> Result<Ipv4Net, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: no /prefix"))?;
        let addr: Ipv4Addr = a.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let prefix: u8 = p.parse().map_err(|e| format!("{s:?}: {e}"))?;
        Ipv4Net::new(addr, prefix).ok_or_else(|| format!("{s:?}: prefix over 32"))
    }
}

/// DNS settings for the result (from the switch's DHCP options).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dns {
    pub nameservers: Vec<Ipv4Addr>,
    pub domain: Option<String>,
}

/// What ADD set up, in the terms of a CNI result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The VM-side end of the veth.
    pub host_ifname: String,
    pub host_mac: Option<[u8; 6]>,
    pub ifname: String,
    pub mac: [u8; 6],
    pub netns: PathBuf,
    pub mtu: u32,
    pub address: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Dns,
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut out {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

impl Attachment {
    /// The ADD result in the shape of `cni_version` (0.3.x/0.4.0 carry `version` in each
    /// IP; 1.0.0 dropped it). Interface 0 is the VM-side veth, 1 the container's.
    pub fn result_json(&self, cni_version: &str) -> Value {
        let legacy = cni_version.starts_with("0.");
        let mut host = json!({ "name": self.host_ifname });
        if let Some(mac) = &self.host_mac {
            host["mac"] = json!(format_mac(mac));
        }
        let container = json!({
            "name": self.ifname,
            "mac": format_mac(&self.mac),
            "mtu": self.mtu,
            "sandbox": self.netns.display().to_string(),
        });
        let mut ip = json!({ "address": self.address.to_string(), "interface": 1 });
        if legacy {
            ip["version"] = json!("4");
        }
        let mut routes = Vec::new();
        if let Some(gw) = self.gateway {
            ip["gateway"] = json!(gw.to_string());
            routes.push(json!({ "dst": "0.0.0.0/0", "gw": gw.to_string() }));
        }
        let mut dns = json!({});
        if !self.dns.nameservers.is_empty() {
            dns["nameservers"] = json!(
                self.dns
                    .nameservers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            );
        }
        if let Some(d) = &self.dns.domain {
            dns["domain"] = json!(d);
        }
        json!({
            "cniVersion": cni_version,
            "interfaces": [host, container],
            "ips": [ip],
            "routes": routes,
            "dns": dns,
        })
    }
}

/// What CHECK expects, read from `prevResult`: the container interface's MAC and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub mac: Option<[u8; 6]>,
    pub addresses: Vec<Ipv4Net>,
}

impl Expected {
    /// Finds the interface named `ifname` whose sandbox is `netns` in a previous result,
    /// and the IPv4 addresses assigned to it.
    pub fn from_prev_result(prev: &Value, ifname: &str) -> Result<Expected, String> {
        let interfaces = prev["interfaces"]
            .as_array()
            .ok_or("prevResult has no interfaces")?;
        let index = interfaces
            .iter()
            .position(|i| i["name"] == ifname && i["sandbox"].is_string())
            .ok_or_else(|| format!("prevResult has no interface {ifname} in a sandbox"))?;
        let mac = interfaces[index]["mac"].as_str().and_then(parse_mac);
        let addresses = prev["ips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|ip| ip["interface"].as_u64() == Some(index as u64))
            .filter_map(|ip| ip["address"].as_str()?.parse().ok())
            .collect();
        Ok(Expected { mac, addresses })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<Env, CniError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Env::read(|k| map.get(k).cloned())
    }

    #[test]
    fn environment_is_checked_per_command() {
        let add = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc-1.x_y"),
            ("CNI_NETNS", "/run/netns/c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=c1"),
        ])
        .unwrap();
        assert_eq!(add.command, Command::Add);
        assert_eq!(add.arg("K8S_POD_NAME"), Some("c1"));
        // DEL without a namespace is fine; ADD without one is not.
        let del = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap();
        assert_eq!(del.netns, None);
        for bad in [
            vec![],
            vec![("CNI_COMMAND", "PUT")],
            vec![
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "abc"),
                ("CNI_IFNAME", "eth0"),
            ],
            vec![
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "-abc"),
                ("CNI_NETNS", "/x"),
                ("CNI_IFNAME", "eth0"),
            ],
            vec![
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "abc"),
                ("CNI_IFNAME", "a/b"),
            ],
            vec![
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "abc"),
                ("CNI_IFNAME", "sixteen-chars-xx"),
            ],
            vec![
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "abc"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_ARGS", "novalue"),
            ],
        ] {
            let e = env(&bad).unwrap_err();
            assert_eq!(e.code, code::INVALID_ENVIRONMENT, "{bad:?}: {e}");
        }
        assert_eq!(
            env(&[("CNI_COMMAND", "VERSION")]).unwrap().command,
            Command::Version
        );
    }

    fn attachment() -> Attachment {
        Attachment {
            host_ifname: "ovc0123456789ab".into(),
            host_mac: Some([2, 0, 0, 0, 0, 1]),
            ifname: "eth0".into(),
            mac: [0x0a, 0, 0, 0, 0, 5],
            netns: "/run/netns/c1".into(),
            mtu: 1442,
            address: "10.0.0.5/24".parse().unwrap(),
            gateway: Some("10.0.0.1".parse().unwrap()),
            dns: Dns {
                nameservers: vec!["10.0.0.2".parse().unwrap()],
                domain: Some("example.org".into()),
            },
        }
    }

    #[test]
    fn result_has_the_shape_of_the_requested_version() {
        let r = attachment().result_json("1.0.0");
        assert_eq!(r["cniVersion"], "1.0.0");
        assert_eq!(r["interfaces"][1]["name"], "eth0");
        assert_eq!(r["interfaces"][1]["mac"], "0a:00:00:00:00:05");
        assert_eq!(r["interfaces"][1]["sandbox"], "/run/netns/c1");
        assert_eq!(r["interfaces"][1]["mtu"], 1442);
        assert!(r["interfaces"][0].get("sandbox").is_none());
        assert_eq!(r["ips"][0]["address"], "10.0.0.5/24");
        assert_eq!(r["ips"][0]["gateway"], "10.0.0.1");
        assert_eq!(r["ips"][0]["interface"], 1);
        assert!(r["ips"][0].get("version").is_none());
        assert_eq!(r["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(r["dns"]["nameservers"][0], "10.0.0.2");
        assert_eq!(r["dns"]["domain"], "example.org");
        let old = attachment().result_json("0.4.0");
        assert_eq!(old["ips"][0]["version"], "4");
        // CHECK reads back what ADD returned.
        let expected = Expected::from_prev_result(&r, "eth0").unwrap();
        assert_eq!(expected.mac, Some([0x0a, 0, 0, 0, 0, 5]));
        assert_eq!(expected.addresses, vec!["10.0.0.5/24".parse().unwrap()]);
        assert!(Expected::from_prev_result(&r, "eth1").is_err());
    }

    #[test]
    fn error_object_and_version() {
        let e = CniError::new(code::TRY_AGAIN_LATER, "NB unreachable").with_details("x");
        let v = e.to_json("1.0.0");
        assert_eq!(v["code"], 11);
        assert_eq!(v["msg"], "NB unreachable");
        assert_eq!(v["details"], "x");
        let v = version_json("1.0.0");
        assert_eq!(
            v["supportedVersions"],
            json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0"])
        );
    }

    #[test]
    fn addresses_parse_and_print() {
        let n: Ipv4Net = "172.16.255.133/26".parse().unwrap();
        assert_eq!(n.network().to_string(), "172.16.255.128/26");
        assert!(n.contains("172.16.255.190".parse().unwrap()));
        assert!(!n.contains("172.16.255.192".parse().unwrap()));
        assert!("1.2.3.4/33".parse::<Ipv4Net>().is_err());
        assert_eq!(
            parse_mac("02:ac:10:ff:01:33"),
            Some([2, 0xac, 0x10, 0xff, 1, 0x33])
        );
        assert_eq!(parse_mac("02:ac:10:ff:01"), None);
        assert_eq!(parse_mac("02:ac:10:ff:01:33:00"), None);
        assert_eq!(
            format_mac(&[2, 0xac, 0x10, 0xff, 1, 0x33]),
            "02:ac:10:ff:01:33"
        );
    }
}
