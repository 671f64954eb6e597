//! One file per Southbound table (ovn-sb(5)): the typed row and its [`SbRow`](super::SbRow)
//! impl. Columns missing from an older schema read as defaults; values the schema forbids
//! make the row invalid (left out, counted, listed with its UUID).

mod address_set;
mod chassis;
mod chassis_private;
mod datapath_binding;
mod dhcp_options;
mod dhcpv6_options;
mod encap;
mod fdb;
mod gateway_chassis;
mod ha_chassis;
mod ha_chassis_group;
mod load_balancer;
mod logical_dp_group;
mod logical_flow;
mod mac_binding;
mod multicast_group;
mod port_binding;
mod port_group;
mod sb_global;
mod service_monitor;
mod static_mac_binding;

pub use address_set::AddressSet;
pub use chassis::Chassis;
pub use chassis_private::ChassisPrivate;
pub use datapath_binding::DatapathBinding;
pub use dhcp_options::{DhcpOptionType, DhcpOptions};
pub use dhcpv6_options::{Dhcpv6OptionType, Dhcpv6Options};
pub use encap::Encap;
pub use fdb::Fdb;
pub use gateway_chassis::GatewayChassis;
pub use ha_chassis::HaChassis;
pub use ha_chassis_group::HaChassisGroup;
pub use load_balancer::LoadBalancer;
pub use logical_dp_group::LogicalDpGroup;
pub use logical_flow::{DHCP_OPTIONS_STAGE, LogicalFlow, Pipeline};
pub use mac_binding::MacBinding;
pub use multicast_group::MulticastGroup;
pub use port_binding::{NatAddresses, PortBinding};
pub use port_group::PortGroup;
pub use sb_global::SbGlobal;
pub use service_monitor::ServiceMonitor;
pub use static_mac_binding::StaticMacBinding;
