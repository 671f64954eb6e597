//! `ovnest cni …`: the plugin itself, networks (the seed's `ovn-docker create network` /
//! `list networks`), the pool, garbage collection, and installing the plugin.

use std::{net::Ipv4Addr, path::PathBuf, time::Duration};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::{
    config::{NetConf, SslFiles, TaggerKind},
    nb::Nb,
    network::{self, NetworkSpec, PluginSpec},
    spec::{CniError, Ipv4Net, code},
    vm::NB_TIMEOUT,
};

#[derive(Subcommand, Clone, Debug)]
pub enum CniCommand {
    /// Serve one CNI request (environment + stdin), as a runtime runs `ovnest-cni`.
    Plugin,
    /// Logical switches for containers and their CNI conflists.
    Network {
        #[command(subcommand)]
        command: NetworkCommand,
    },
    /// The VM's pool of pre-created ports.
    Pool {
        #[command(subcommand)]
        command: PoolCommand,
    },
    /// Give back the ports of containers that are gone (their host veth is), trim the
    /// pool to its max.
    Gc {
        /// The network's conflist (or conf) file.
        #[arg(long)]
        conf: PathBuf,
        /// Leave attachments younger than this alone (default: up timeout + 30 s).
        #[arg(long)]
        grace_ms: Option<u64>,
    },
    /// Link `ovnest-cni` to this binary in the runtime's plugin directory.
    Install {
        #[arg(long, default_value = "/usr/lib/cni")]
        cni_dir: PathBuf,
    },
}

/// How to reach the Northbound, as ovn-nbctl takes it.
#[derive(Args, Clone, Debug)]
pub struct NbArgs {
    /// NB remotes: unix:PATH, tcp:IP:PORT, ssl:IP:PORT (comma-separated).
    #[arg(
        long,
        env = "OVN_NB_DB",
        default_value = "unix:/var/run/ovn/ovnnb_db.sock"
    )]
    pub db: String,
    /// PEM private key for ssl: remotes (ovn-nbctl -p).
    #[arg(short = 'p', long)]
    pub private_key: Option<PathBuf>,
    /// PEM certificate for ssl: remotes (ovn-nbctl -c).
    #[arg(short = 'c', long)]
    pub certificate: Option<PathBuf>,
    /// PEM CA certificate for ssl: remotes (ovn-nbctl -C).
    #[arg(short = 'C', long)]
    pub ca_cert: Option<PathBuf>,
}

impl NbArgs {
    fn ssl(&self) -> Result<Option<SslFiles>, CniError> {
        match (&self.private_key, &self.certificate, &self.ca_cert) {
            (None, None, None) => Ok(None),
            (Some(k), Some(c), Some(ca)) => Ok(Some(SslFiles {
                private_key: k.clone(),
                certificate: c.clone(),
                ca_cert: ca.clone(),
            })),
            _ => Err(CniError::new(
                code::INVALID_CONFIG,
                "ssl needs all of --private-key, --certificate and --ca-cert",
            )),
        }
    }

    async fn connect(&self) -> Result<Nb, CniError> {
        Nb::connect(&self.db, self.ssl()?.as_ref(), NB_TIMEOUT).await
    }
}

#[derive(Subcommand, Clone, Debug)]
pub enum NetworkCommand {
    /// Create a logical switch for containers (OVN allocates from --subnet) and write
    /// the CNI conflist for this VM.
    Create(Box<CreateArgs>),
    /// Networks a VM can attach containers to (switches with a subnet).
    List {
        #[command(flatten)]
        nb: NbArgs,
        /// Also count this VM's containers and free pool ports on each.
        #[arg(long)]
        vm_port: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Delete a network no container uses (its pool ports, router port and DHCP options
    /// made with it go too) and its conflist.
    Delete {
        name: String,
        #[command(flatten)]
        nb: NbArgs,
        #[arg(long, default_value = "/etc/cni/net.d")]
        conf_dir: PathBuf,
    },
}

#[derive(Args, Clone, Debug)]
pub struct CreateArgs {
    /// The logical switch (and CNI network) name.
    pub name: String,
    #[command(flatten)]
    pub nb: NbArgs,
    /// IPv4 subnet OVN allocates container addresses from (other_config:subnet).
    #[arg(long)]
    pub subnet: Ipv4Net,
    /// Addresses OVN must not allocate (other_config:exclude_ips syntax).
    #[arg(long)]
    pub exclude_ips: Option<String>,
    /// Connect the switch to this logical router (the containers' gateway).
    #[arg(long)]
    pub router: Option<String>,
    /// The router port's address (default: the subnet's first address).
    #[arg(long)]
    pub gateway: Option<Ipv4Addr>,
    /// Create DHCP options for the subnet (gateway, MTU, DNS in the containers' results).
    #[arg(long)]
    pub dhcp: bool,
    #[arg(long)]
    pub mtu: Option<u32>,
    #[arg(long, value_delimiter = ',')]
    pub dns: Vec<Ipv4Addr>,
    /// This VM's own logical port (the containers' parent).
    #[arg(long)]
    pub vm_port: String,
    /// This VM's interface towards OVN.
    #[arg(long, default_value = "eth0")]
    pub uplink: String,
    #[arg(long, value_enum, default_value = "bpf")]
    pub tagger: TaggerKind,
    /// With --tagger ovs: the VM's OVS bridge.
    #[arg(long)]
    pub ovs_bridge: Option<String>,
    /// Pool of pre-created ports: MIN,MAX,BATCH.
    #[arg(long, value_delimiter = ',', num_args = 3)]
    pub pool: Option<Vec<u32>>,
    /// Where the runtime reads conflists.
    #[arg(long, default_value = "/etc/cni/net.d")]
    pub conf_dir: PathBuf,
    /// Pin directory for the eBPF tagger (default /sys/fs/bpf/ovnest-cni).
    #[arg(long)]
    pub bpffs: Option<PathBuf>,
    /// Only create the switch; write no conflist.
    #[arg(long)]
    pub no_conflist: bool,
}

#[derive(Subcommand, Clone, Debug)]
pub enum PoolCommand {
    /// Create free ports up to the pool's min now.
    Fill {
        #[arg(long)]
        conf: PathBuf,
    },
    /// The VM's ports on the network: free, used, and the tagger's counters.
    Status {
        #[arg(long)]
        conf: PathBuf,
    },
}

/// Reads a `.conflist` (our plugin's entry, with the list's name and version) or a
/// single `.conf`.
pub fn load_conf(path: &std::path::Path) -> Result<NetConf, CniError> {
    let text = std::fs::read(path).map_err(|e| {
        CniError::new(code::IO_FAILURE, format!("reading {}", path.display())).with_details(e)
    })?;
    let v: Value = serde_json::from_slice(&text)
        .map_err(|e| CniError::new(code::DECODE, format!("{}", path.display())).with_details(e))?;
    let conf = match v["plugins"].as_array() {
        Some(plugins) => {
            let mut p = plugins
                .iter()
                .find(|p| p["type"] == "ovnest-cni")
                .cloned()
                .ok_or_else(|| {
                    CniError::new(
                        code::INVALID_CONFIG,
                        format!("{} has no ovnest-cni plugin", path.display()),
                    )
                })?;
            p["cniVersion"] = v["cniVersion"].clone();
            p["name"] = v["name"].clone();
            p
        }
        None => v,
    };
    NetConf::parse(conf.to_string().as_bytes())
}

fn print(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn runtime() -> Result<tokio::runtime::Runtime, CniError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CniError::new(code::IO_FAILURE, "tokio runtime").with_details(e))
}

pub fn run(command: CniCommand) -> Result<(), CniError> {
    match command {
        CniCommand::Plugin => {
            // The plugin prints its own result or error and sets its exit status.
            std::process::exit(
                if crate::plugin::main() == std::process::ExitCode::SUCCESS {
                    0
                } else {
                    1
                },
            );
        }
        CniCommand::Install { cni_dir } => install(&cni_dir),
        CniCommand::Network { command } => runtime()?.block_on(network_command(command)),
        CniCommand::Pool { command } => runtime()?.block_on(async {
            match command {
                PoolCommand::Fill { conf } => {
                    let conf = load_conf(&conf)?;
                    print(&crate::refill::fill(&conf).await?);
                    Ok(())
                }
                PoolCommand::Status { conf } => {
                    let conf = load_conf(&conf)?;
                    print(&status(&conf).await?);
                    Ok(())
                }
            }
        }),
        CniCommand::Gc { conf, grace_ms } => runtime()?.block_on(async {
            let conf = load_conf(&conf)?;
            let grace = grace_ms.map_or_else(|| crate::gc::grace(&conf), Duration::from_millis);
            print(&crate::gc::gc(&conf, grace).await?);
            Ok(())
        }),
    }
}

async fn network_command(command: NetworkCommand) -> Result<(), CniError> {
    match command {
        NetworkCommand::Create(a) => {
            let nb = a.nb.connect().await?;
            let spec = NetworkSpec {
                name: a.name.clone(),
                subnet: a.subnet,
                exclude_ips: a.exclude_ips.clone(),
                router: a.router.clone(),
                gateway: a.gateway,
                dhcp: a.dhcp,
                mtu: a.mtu,
                dns: a.dns.clone(),
            };
            let mut made = network::create(&nb, &spec).await?;
            if !a.no_conflist {
                let plugin = PluginSpec {
                    nb: a.nb.db.clone(),
                    ssl: a.nb.ssl()?,
                    vm_port: a.vm_port.clone(),
                    uplink: a.uplink.clone(),
                    tagger: a.tagger,
                    ovs_bridge: a.ovs_bridge.clone(),
                    pool: a.pool.as_ref().map(|p| (p[0], p[1], p[2])),
                    up_timeout_ms: None,
                    bpffs: a.bpffs.clone(),
                };
                let path = network::write_conflist(&a.conf_dir, &a.name, &plugin)?;
                made["conflist"] = json!(path);
            }
            print(&made);
            Ok(())
        }
        NetworkCommand::List { nb, vm_port, json } => {
            let nb = nb.connect().await?;
            let list = network::list(&nb, vm_port.as_deref()).await?;
            if json {
                print(&Value::Array(
                    list.iter()
                        .map(|n| {
                            json!({
                                "name": n.name, "subnet": n.subnet, "gateway": n.gateway,
                                "by_ovnest": n.by_ovnest, "ports": n.ports,
                                "vm_used": n.vm_used, "vm_free": n.vm_free,
                            })
                        })
                        .collect(),
                ));
            } else {
                println!(
                    "{:<20} {:<20} {:<20} {:>6} {:>8} {:>8}",
                    "NETWORK", "SUBNET", "GATEWAY", "PORTS", "VM USED", "VM FREE"
                );
                for n in list {
                    println!(
                        "{:<20} {:<20} {:<20} {:>6} {:>8} {:>8}{}",
                        n.name,
                        n.subnet,
                        n.gateway.as_deref().unwrap_or("-"),
                        n.ports,
                        n.vm_used,
                        n.vm_free,
                        if n.by_ovnest {
                            ""
                        } else {
                            "  (not made by ovnest)"
                        }
                    );
                }
            }
            Ok(())
        }
        NetworkCommand::Delete { name, nb, conf_dir } => {
            let nb = nb.connect().await?;
            let mut done = network::delete(&nb, &name).await?;
            let path = conf_dir.join(format!("{name}.conflist"));
            if path.exists() {
                std::fs::remove_file(&path).map_err(|e| {
                    CniError::new(code::IO_FAILURE, format!("removing {}", path.display()))
                        .with_details(e)
                })?;
                done["conflist"] = json!(path);
            }
            print(&done);
            Ok(())
        }
    }
}

async fn status(conf: &NetConf) -> Result<Value, CniError> {
    let mut vm = crate::vm::Vm::connect(conf).await?;
    let view = vm.view().await?;
    let ports: Vec<Value> = view
        .children
        .iter()
        .filter_map(|p| {
            let state = match crate::pool::owned(p)? {
                crate::pool::Owned::Free => json!({ "state": "free" }),
                crate::pool::Owned::Used { container, ifname } => {
                    json!({ "state": "used", "container": container, "ifname": ifname })
                }
            };
            let mut v = json!({ "port": p.name, "tag": p.tag, "up": p.up, "addresses": p.dynamic_addresses });
            v.as_object_mut()?.extend(state.as_object()?.clone());
            Some(v)
        })
        .collect();
    let free = crate::pool::free_ports(&view.children, &conf.switch).len();
    let mut out =
        json!({ "vm_port": conf.vm_port, "switch": conf.switch, "free": free, "ports": ports });
    if let Ok(Some(crate::tagger::Tagger::Bpf(t))) = vm.existing_tagger() {
        out["tagger"] = json!(
            t.counters()
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>()
        );
        out["tagger_pins"] = json!(t.pin_dir());
    }
    Ok(out)
}

fn install(dir: &std::path::Path) -> Result<(), CniError> {
    let exe = std::env::current_exe()
        .map_err(|e| CniError::new(code::IO_FAILURE, "locating this binary").with_details(e))?;
    std::fs::create_dir_all(dir).map_err(|e| {
        CniError::new(code::IO_FAILURE, format!("creating {}", dir.display())).with_details(e)
    })?;
    let link = dir.join("ovnest-cni");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&exe, &link).map_err(|e| {
        CniError::new(code::IO_FAILURE, format!("linking {}", link.display())).with_details(e)
    })?;
    println!("{} -> {}", link.display(), exe.display());
    Ok(())
}
