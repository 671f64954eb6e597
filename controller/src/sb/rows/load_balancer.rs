use std::collections::BTreeMap;

use crate::ovsdb::{RowView, Uuid};
use crate::sb::table::SbRow;
use crate::sb::validate::{self as v, RowError};

/// A load balancer as the chassis needs it (ovn-sb(5) Load_Balancer): for hairpin and
/// `ct_lb_mark` backends. Keyed by UUID.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadBalancer {
    pub uuid: Uuid,
    pub name: String,
    /// `VIP[:PORT]` → `BACKEND[:PORT],...`, as in the NB.
    pub vips: BTreeMap<String, String>,
    /// `tcp`, `udp` or `sctp`; none means tcp.
    pub protocol: Option<String>,
    pub datapaths: Vec<Uuid>,
    pub datapath_group: Option<Uuid>,
    /// `hairpin_snat_ip`, `neighbor_responder`, `template`, ...
    pub options: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
}

impl SbRow for LoadBalancer {
    const TABLE: &'static str = "Load_Balancer";
    const COLUMNS: &'static [&'static str] = &[
        "name",
        "vips",
        "protocol",
        "datapaths",
        "datapath_group",
        "options",
        "external_ids",
    ];
    type Key = Uuid;

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<LoadBalancer, RowError> {
        let protocol = v::opt_string(r, "protocol")?
            .map(|p| v::one_of("protocol", p, &["tcp", "udp", "sctp"], "tcp, udp or sctp"))
            .transpose()?;
        Ok(LoadBalancer {
            uuid,
            name: v::string(r, "name")?,
            vips: v::string_map(r, "vips")?,
            protocol,
            datapaths: v::uuids(r, "datapaths")?,
            datapath_group: v::opt_uuid(r, "datapath_group")?,
            options: v::string_map(r, "options")?,
            external_ids: v::string_map(r, "external_ids")?,
        })
    }

    fn uuid(&self) -> Uuid {
        self.uuid
    }

    fn key(&self) -> Uuid {
        self.uuid
    }
}
