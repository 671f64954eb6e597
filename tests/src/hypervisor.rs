//! The lab's hypervisor as network namespaces, for the kernel tests: its interfaces, their
//! ifindexes as a [`Wiring`], and the XDP fast path loaded with the lab's tables.

use ovnest_datapath::{FastPath, TableSet};

use crate::{
    fixtures::{Iface, Wiring, lab},
    netns::NetNs,
};

/// The hypervisor's namespace and the ifindexes of its lab interfaces.
pub struct Hypervisor {
    pub ns: NetNs,
    pub wiring: Wiring,
}

/// The VMs' namespaces, each with `eth0` cabled to its VIF (same name as the VM) on the
/// hypervisor.
pub struct Vms {
    pub vm1: NetNs,
    pub vm2: NetNs,
    pub vm5: NetNs,
}

impl Hypervisor {
    /// The hypervisor alone: every lab interface a veth pair inside it (peer `<name>p`).
    /// Enough for BPF_PROG_TEST_RUN, which only needs the ingress interface to exist.
    pub fn alone() -> Hypervisor {
        let ns = NetNs::new("hv");
        for iface in Iface::ALL {
            ns.veth_pair(iface.name(), &format!("{}p", iface.name()));
        }
        Hypervisor::wired(ns)
    }

    /// The hypervisor and VMs vm1, vm2 and vm5, for frames sent from the VMs' side; `stray`
    /// stays a veth pair inside the hypervisor.
    pub fn with_vms() -> (Hypervisor, Vms) {
        let ns = NetNs::new("hv");
        let vms = Vms {
            vm1: NetNs::new("vm1"),
            vm2: NetNs::new("vm2"),
            vm5: NetNs::new("vm5"),
        };
        for (vm, name) in [(&vms.vm1, "vm1"), (&vms.vm2, "vm2"), (&vms.vm5, "vm5")] {
            ns.veth_to(name, vm, "eth0");
            // Frames redirected or XDP_TX'd into a veth need NAPI on the receiving end.
            vm.gro_on("eth0");
            // No router solicitations or MLD reports among the frames the tests wait for.
            vm.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        }
        ns.veth_pair("stray", "strayp");
        (Hypervisor::wired(ns), vms)
    }

    fn wired(ns: NetNs) -> Hypervisor {
        let wiring = Wiring {
            vm1: ns.ifindex("vm1"),
            vm2: ns.ifindex("vm2"),
            vm5: ns.ifindex("vm5"),
            stray: ns.ifindex("stray"),
        };
        Hypervisor { ns, wiring }
    }

    /// The XDP program loaded, with the lab's tables applied from inside the hypervisor's
    /// namespace (devmap entries resolve ifindexes there). Attached nowhere yet.
    pub fn fast_path(&self) -> FastPath {
        self.fast_path_from(FastPath::load().expect("load XDP program"))
    }

    /// [`Hypervisor::fast_path`] with every lookup through the hash maps.
    pub fn fast_path_hash_only(&self) -> FastPath {
        self.fast_path_from(
            FastPath::load()
                .expect("load XDP program")
                .hash_lookups_only(),
        )
    }

    fn fast_path_from(&self, mut fast_path: FastPath) -> FastPath {
        let _inside = self.ns.enter();
        let (tables, conflicts) = TableSet::build(&lab::logical_ports(&self.wiring));
        assert!(conflicts.is_empty(), "{conflicts:?}");
        fast_path.apply(&tables).expect("apply lab tables");
        fast_path
    }
}
