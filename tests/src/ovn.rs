//! Real OVN processes (ovsdb-server with the OVN schemas, ovn-northd) for tests.
