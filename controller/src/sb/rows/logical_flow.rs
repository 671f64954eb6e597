use std::sync::Arc;

use crate::ovsdb::{RowView, Uuid};
use crate::sb::StringMap;
use crate::sb::table::SbRow;
use crate::sb::validate::{self as v, RowError};

/// The Logical_Flow stage that answers DHCPv4 requests.
pub const DHCP_OPTIONS_STAGE: &str = "ls_in_dhcp_options";

/// Which half of a datapath's pipeline a flow belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pipeline {
    Ingress,
    Egress,
}

impl Pipeline {
    pub fn as_str(self) -> &'static str {
        match self {
            Pipeline::Ingress => "ingress",
            Pipeline::Egress => "egress",
        }
    }
}

/// One logical flow (ovn-sb(5) Logical_Flow), as northd wrote it: the match and actions
/// are OVN's languages, unparsed here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalFlow {
    pub uuid: Uuid,
    /// The datapath it applies to, or none when `logical_dp_group` says (see
    /// [`Snapshot::flow_datapaths`](crate::sb::Snapshot::flow_datapaths)).
    pub logical_datapath: Option<Uuid>,
    pub logical_dp_group: Option<Uuid>,
    pub pipeline: Pipeline,
    /// 0..=32: the stage within the pipeline.
    pub table_id: u8,
    pub priority: u16,
    pub match_expr: Arc<str>,
    pub actions: Arc<str>,
    /// `in_out_port`: the port the flow is about, for ovn-controller's conditional lflows.
    pub tags: StringMap,
    /// The SB Meter that rate-limits the flow's controller actions.
    pub controller_meter: Option<String>,
    /// `stage-name`, `stage-hint` (the NB row), `source` (northd.c:LINE).
    pub external_ids: StringMap,
}

impl LogicalFlow {
    /// `external_ids:stage-name`, e.g. `ls_in_acl`.
    pub fn stage_name(&self) -> Option<&str> {
        self.external_ids.get("stage-name").map(String::as_str)
    }

    /// `external_ids:stage-hint`: the NB row (ACL, NAT, ...) the flow came from.
    pub fn stage_hint(&self) -> Option<&str> {
        self.external_ids.get("stage-hint").map(String::as_str)
    }

    /// `external_ids:source`: northd's source line.
    pub fn source(&self) -> Option<&str> {
        self.external_ids.get("source").map(String::as_str)
    }

    /// `tags:in_out_port`.
    pub fn in_out_port(&self) -> Option<&str> {
        self.tags.get("in_out_port").map(String::as_str)
    }

    /// The port the flow is for: `tags:in_out_port`, else the `inport == "..."` of the
    /// match.
    pub fn logical_port(&self) -> Option<String> {
        self.in_out_port()
            .map(str::to_owned)
            .or_else(|| inport_of(&self.match_expr))
    }
}

impl SbRow for LogicalFlow {
    const TABLE: &'static str = "Logical_Flow";
    const COLUMNS: &'static [&'static str] = &[
        "logical_datapath",
        "logical_dp_group",
        "pipeline",
        "table_id",
        "priority",
        "match",
        "actions",
        "tags",
        "controller_meter",
        "external_ids",
    ];
    type Key = Uuid;

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<LogicalFlow, RowError> {
        let pipeline = match v::string(r, "pipeline")?.as_str() {
            "ingress" => Pipeline::Ingress,
            "egress" => Pipeline::Egress,
            other => {
                return Err(RowError::BadValue {
                    column: "pipeline",
                    value: other.to_owned(),
                    expected: "ingress or egress",
                });
            }
        };
        Ok(LogicalFlow {
            uuid,
            logical_datapath: v::opt_uuid(r, "logical_datapath")?,
            logical_dp_group: v::opt_uuid(r, "logical_dp_group")?,
            pipeline,
            table_id: v::integer_in(r, "table_id", 0, 32)? as u8,
            priority: v::integer_in(r, "priority", 0, 65535)? as u16,
            match_expr: v::string(r, "match")?.into(),
            actions: v::string(r, "actions")?.into(),
            tags: v::compact_string_map(r, "tags")?,
            controller_meter: v::opt_string(r, "controller_meter")?,
            external_ids: v::compact_string_map(r, "external_ids")?,
        })
    }

    fn uuid(&self) -> Uuid {
        self.uuid
    }

    fn key(&self) -> Uuid {
        self.uuid
    }
}

/// `inport == "dmz-c51" && ...` → `dmz-c51`.
fn inport_of(m: &str) -> Option<String> {
    let rest = m.split("inport == \"").nth(1)?;
    Some(rest.split('"').next()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inport_from_match() {
        let m = r#"inport == "dmz-c51" && eth.src == 02:ac:10:ff:01:33 && ip4.src == 0.0.0.0"#;
        assert_eq!(inport_of(m).as_deref(), Some("dmz-c51"));
        assert_eq!(inport_of("ip4"), None);
    }
}
