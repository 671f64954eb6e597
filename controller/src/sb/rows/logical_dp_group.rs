use crate::ovsdb::{RowView, Uuid};
use crate::sb::table::SbRow;
use crate::sb::validate::{self as v, RowError};

/// A set of datapaths that share logical flows (ovn-sb(5) Logical_DP_Group). Immutable:
/// northd makes a new group when the membership changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogicalDpGroup {
    pub uuid: Uuid,
    pub datapaths: Vec<Uuid>,
}

impl SbRow for LogicalDpGroup {
    const TABLE: &'static str = "Logical_DP_Group";
    const COLUMNS: &'static [&'static str] = &["datapaths"];
    type Key = Uuid;

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<LogicalDpGroup, RowError> {
        Ok(LogicalDpGroup {
            uuid,
            datapaths: v::uuids(r, "datapaths")?,
        })
    }

    fn uuid(&self) -> Uuid {
        self.uuid
    }

    fn key(&self) -> Uuid {
        self.uuid
    }
}
