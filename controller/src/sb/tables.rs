//! The tables in the replica, in the order each update is applied (a table's
//! [`DEPENDS_ON`](super::SbRow::DEPENDS_ON) must come before it). Adding a table: its file
//! under `rows/` and one line here.

use crate::ovsdb::TableMonitor;

use super::changes::RowChange;
use super::rows::*;
use super::table::{Registered, SbRow, Table};

macro_rules! sb_tables {
    ($($row:ident => $field:ident,)*) => {
        /// Every replicated table. Read one with [`Snapshot::table`](super::Snapshot::table).
        #[derive(Clone, Default, Debug)]
        pub struct Tables {
            $(pub(crate) $field: Table<$row>,)*
        }

        /// The row changes of one update, per table. Read them with
        /// [`ChangeSet::of`](super::ChangeSet::of).
        #[derive(Clone, Default, Debug, PartialEq)]
        pub struct Changes {
            $(pub(crate) $field: Vec<RowChange<$row>>,)*
        }

        $(impl Registered for $row {
            fn table(tables: &Tables) -> &Table<Self> {
                &tables.$field
            }
            fn table_mut(tables: &mut Tables) -> &mut Table<Self> {
                &mut tables.$field
            }
            fn changes(changes: &Changes) -> &[RowChange<Self>] {
                &changes.$field
            }
            fn changes_mut(changes: &mut Changes) -> &mut Vec<RowChange<Self>> {
                &mut changes.$field
            }
        })*

        /// The replicated tables' names, in the order updates are applied.
        pub const TABLES: &[&str] = &[$(<$row as SbRow>::TABLE,)*];

        impl Changes {
            /// Row changes in all tables.
            pub fn len(&self) -> usize {
                0 $(+ self.$field.len())*
            }

            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }
        }

        /// One monitor request per table, every row (conditions are set by the caller).
        pub(crate) fn monitors() -> Vec<TableMonitor> {
            vec![$(TableMonitor::new(<$row as SbRow>::TABLE, <$row as SbRow>::COLUMNS),)*]
        }

        /// Runs `f` for every table, in order.
        pub(crate) fn for_each_table(f: &mut impl TableVisitor) {
            $(f.visit::<$row>();)*
        }
    };
}

/// Something done once per table type ([`for_each_table`]).
pub(crate) trait TableVisitor {
    fn visit<T: SbRow>(&mut self);
}

sb_tables! {
    SbGlobal => sb_global,
    Chassis => chassis,
    ChassisPrivate => chassis_private,
    Encap => encap,
    DatapathBinding => datapath_binding,
    LogicalDpGroup => logical_dp_group,
    PortBinding => port_binding,
    GatewayChassis => gateway_chassis,
    HaChassis => ha_chassis,
    HaChassisGroup => ha_chassis_group,
    MulticastGroup => multicast_group,
    LogicalFlow => logical_flow,
    MacBinding => mac_binding,
    StaticMacBinding => static_mac_binding,
    Fdb => fdb,
    DhcpOptions => dhcp_options,
    Dhcpv6Options => dhcpv6_options,
    AddressSet => address_set,
    PortGroup => port_group,
    LoadBalancer => load_balancer,
    ServiceMonitor => service_monitor,
}
