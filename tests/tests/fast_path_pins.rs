//! The datapath outlives the process that programmed it: maps and XDP links pinned in a
//! bpffs directory keep forwarding after the `FastPath` is gone, the next one adopts
//! them (tables read back, links moved to its program by `bpf_link_update`), and a build
//! whose map layout changed fills new maps before it takes the links over. A flow of
//! tagged frames (c51 -> vm1) runs through all of it and must not lose one frame.

use std::{path::PathBuf, time::Duration};

use ovnest_datapath::{
    FastPath, TableSet,
    fastpath::{Options, PinDir, layout::KernelTables},
};
use ovnest_tests::{
    fixtures::{Frame, Iface, lab},
    flow::Flow,
    hypervisor::Hypervisor,
    privilege::{require_root, require_tools},
    wait,
};

const DEADLINE: Duration = Duration::from_secs(10);
const PPS: u32 = 10_000;

/// A pin directory of its own on /sys/fs/bpf, removed on drop.
struct TestPins(PinDir);

impl TestPins {
    fn new(name: &str) -> TestPins {
        let dir =
            PathBuf::from("/sys/fs/bpf/ovnest-test").join(format!("{}-{name}", std::process::id()));
        TestPins(PinDir::at(dir))
    }

    fn options(&self) -> Options {
        Options {
            pins: Some(self.0.clone()),
            ..Options::default()
        }
    }

    fn map_pins(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.0.path().join("maps"))
            .expect("maps dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TestPins {
    fn drop(&mut self) {
        let _ = self.0.remove();
    }
}

/// Frames from c51 (vm5's VIF, tag 51) to vm1, counted at vm1.
fn c51_to_vm1(hv: &Hypervisor, vms: &ovnest_tests::hypervisor::Vms) -> Flow {
    let marker = 4242;
    let frame = Frame::eth(lab::VM1.mac, lab::C51.mac)
        .udp(lab::C51.ipv4, lab::VM1.ipv4, marker, 5001, 64)
        .vlan(51)
        .build();
    let _ = hv;
    Flow::start(
        (vms.vm5.name(), "eth0"),
        (vms.vm1.name(), "eth0"),
        frame,
        marker,
        14 + 4 + 20 + 8,
        PPS,
    )
}

/// Waits until `flow` has received `more` frames beyond what it had.
fn flowing(flow: &Flow, more: u64) {
    let start = flow.received();
    wait::until("frames keep arriving", DEADLINE, || {
        (flow.received() >= start + more).then_some(())
    });
}

#[test]
fn the_datapath_outlives_its_writer_and_is_adopted_and_upgraded_without_loss() {
    let test = "the_datapath_outlives_its_writer";
    if !require_root(test) || !require_tools(test, &["ethtool"]) {
        return;
    }
    let (hv, vms) = Hypervisor::with_vms();
    let pins = TestPins::new("adopt");
    let (tables, _) = TableSet::build(&lab::logical_ports(&hv.wiring));
    let vifs = [Iface::Vm1, Iface::Vm2, Iface::Vm5].map(|i| hv.wiring.ifindex(i));

    let first = {
        let _inside = hv.ns.enter();
        let mut first = FastPath::open(&pins.options()).expect("open with pins");
        first.apply(&tables).expect("apply");
        for ifindex in vifs {
            first.attach(ifindex).expect("attach");
        }
        first
    };
    let flow = c51_to_vm1(&hv, &vms);
    flowing(&flow, 500);

    // The writer goes away (as a process does on kill -9): forwarding goes on.
    drop(first);
    flowing(&flow, 2000);

    // A new one adopts the tables and the links, and moves the links to its program.
    let second = {
        let _inside = hv.ns.enter();
        FastPath::open(&pins.options()).expect("adopt")
    };
    assert_eq!(second.kernel_tables(), KernelTables::of(&tables));
    let mut attached: Vec<u32> = second.attached().map(|(i, _)| i).collect();
    attached.sort();
    let mut expected = vifs.to_vec();
    expected.sort();
    assert_eq!(attached, expected, "the pinned links are adopted");
    flowing(&flow, 2000);
    let maps_before = pins.map_pins();
    drop(second);

    // A build whose L2 table has a new layout: the running program keeps its maps until
    // the new ones are filled, then the links move and the old layout's pins go.
    let mut third = {
        let _inside = hv.ns.enter();
        let options = Options {
            newer_layout: vec!["MACS".into()],
            ..pins.options()
        };
        FastPath::open(&options).expect("open a newer layout")
    };
    assert!(
        third.kernel_tables().macs.is_empty(),
        "the new L2 table starts empty"
    );
    flowing(&flow, 2000);
    {
        let _inside = hv.ns.enter();
        third.apply(&tables).expect("fill the new layout");
    }
    flowing(&flow, 2000);
    let maps_after = pins.map_pins();
    let macs = |names: &[String]| -> Vec<String> {
        names
            .iter()
            .filter(|n| n.starts_with("MACS-"))
            .cloned()
            .collect()
    };
    assert_eq!(macs(&maps_after).len(), 1, "{maps_after:?}");
    assert_ne!(macs(&maps_after), macs(&maps_before), "MACS moved to v2");
    assert_eq!(maps_after.len(), maps_before.len());

    let report = flow.stop();
    assert_eq!(
        report.lost, 0,
        "frames lost across drop, adoption and upgrade: {report:?}"
    );
    assert!(report.sent > 8000, "{report:?}");

    // Removing the pins (ovnest cleanup) detaches the program: the flow stops.
    let on_a_vif = || {
        hv.ns.ip(&["-o", "link", "show"]).lines().any(|l| {
            vifs.iter().any(|i| l.starts_with(&format!("{i}: "))) && l.contains("prog/xdp")
        })
    };
    assert!(on_a_vif(), "the VIFs list the attached program");
    drop(third);
    pins.0.remove().expect("remove pins");
    // The kernel frees an unpinned link in deferred work: the program leaves the VIFs
    // shortly after the unlink, not at it.
    wait::until("the program detached from every VIF", DEADLINE, || {
        (!on_a_vif()).then_some(())
    });
    let flow = c51_to_vm1(&hv, &vms);
    // 300 ms of frames at PPS.
    flow.run_for(u64::from(PPS) * 3 / 10, DEADLINE);
    let report = flow.stop();
    assert_eq!(report.received, 0, "forwarded after cleanup: {report:?}");
}
