//! How the containers' frames get their VLAN tag inside the VM: TC eBPF ([`bpf`], no OVS
//! needed) or an access port on the VM's OVS bridge ([`ovs`], the seed's way).

pub mod bpf;
pub mod ovs;

use crate::{
    config::{NetConf, TaggerKind},
    netlink::{Link, Netlink},
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TaggerError(pub String);

pub enum Tagger {
    Bpf(Box<bpf::BpfTagger>),
    Ovs(ovs::OvsTagger),
}

impl Tagger {
    /// The VM's tagger. For the eBPF one, `existing` (host veth, VID) are the containers
    /// the NB says this VM has: their entries are restored if the tagger had to be
    /// reloaded (a new boot, a recreated uplink). Call under the VM's lock.
    pub fn open(
        conf: &NetConf,
        nl: &mut Netlink,
        existing: &[(String, u16)],
    ) -> Result<Tagger, TaggerError> {
        Ok(match conf.tagger {
            TaggerKind::Bpf => Tagger::Bpf(Box::new(bpf::BpfTagger::open(
                &conf.bpffs,
                &conf.vm_port,
                &conf.uplink,
                nl,
                existing,
            )?)),
            TaggerKind::Ovs => Tagger::Ovs(ovs::OvsTagger::new(&conf.ovs_db, &conf.ovs_bridge)),
        })
    }

    /// The VM's tagger if it is set up (the OVS one always is); loads nothing.
    pub fn existing(conf: &NetConf, nl: &mut Netlink) -> Result<Option<Tagger>, TaggerError> {
        Ok(match conf.tagger {
            TaggerKind::Bpf => {
                bpf::BpfTagger::existing(&conf.bpffs, &conf.vm_port, &conf.uplink, nl)?
                    .map(|t| Tagger::Bpf(Box::new(t)))
            }
            TaggerKind::Ovs => Some(Tagger::Ovs(ovs::OvsTagger::new(
                &conf.ovs_db,
                &conf.ovs_bridge,
            ))),
        })
    }

    pub fn add(&mut self, veth: &Link, vid: u16) -> Result<(), TaggerError> {
        match self {
            Tagger::Bpf(t) => t.add(veth, vid),
            Tagger::Ovs(t) => t.add(&veth.name, vid),
        }
    }

    /// Undoes [`Tagger::add`] for the host veth `name` (`index` if it still exists) that
    /// carried `vid`.
    pub fn remove(
        &mut self,
        name: &str,
        index: Option<u32>,
        vid: Option<u16>,
    ) -> Result<(), TaggerError> {
        match self {
            Tagger::Bpf(t) => {
                let removed = match index {
                    Some(i) => t.remove(i)?,
                    None => None,
                };
                match (removed, vid) {
                    (None, Some(v)) => t.clear_vid(v),
                    _ => Ok(()),
                }
            }
            Tagger::Ovs(t) => t.remove(name),
        }
    }

    /// Whether frames of `veth` leave with `vid` and `vid` comes back to `veth`.
    pub fn check(&self, veth: &Link, vid: u16) -> Result<(), String> {
        match self {
            Tagger::Bpf(t) => match t.lookup(veth.index) {
                Some((v, back)) if v == vid && back == veth.index => Ok(()),
                Some((v, back)) => Err(format!(
                    "tagger maps {} to VID {v} and VID {v} to ifindex {back}, expected VID {vid} both ways",
                    veth.name
                )),
                None => Err(format!("tagger has no entry for {}", veth.name)),
            },
            Tagger::Ovs(t) => match t.vid(&veth.name) {
                Ok(Some(v)) if v == vid => Ok(()),
                Ok(v) => Err(format!(
                    "{} is on VLAN {v:?} of the bridge, expected {vid}",
                    veth.name
                )),
                Err(e) => Err(e.to_string()),
            },
        }
    }
}
