//! A real runtime: Debian's podman with its CNI backend runs containers from a local
//! busybox rootfs in vm5 (`ovnest lab up --containers podman`); `ovnest-cni` gives them
//! their OVN ports (address, gateway, vm1 reachable), and `podman rm` gives them back.

use std::{path::PathBuf, time::Duration};

use ovnest_lab::containers::{self, Containers};
use ovnest_tests::{
    cni::CniLab,
    privilege::{require_root, require_tools},
    wait,
};

const DEADLINE: Duration = Duration::from_secs(30);
const VM1: &str = "172.16.255.130";
const VM5: &str = "172.16.255.132";
const GATEWAY: &str = "172.16.255.129";
const GATEWAY_MAC: &str = "02:ac:10:ff:01:29";

#[test]
fn podman_runs_containers_on_ovn_through_ovnest_cni() {
    let test = "podman_runs_containers_on_ovn_through_ovnest_cni";
    if !require_root(test)
        || !require_tools(
            test,
            &[
                "podman",
                "runc",
                "busybox",
                "nsenter",
                "ovsdb-server",
                "ovn-northd",
            ],
        )
    {
        return;
    }
    let l = CniLab::up(
        "pod",
        Containers::Podman,
        &PathBuf::from(env!("CARGO_BIN_EXE_ovnest")),
    );
    let podman = |args: &[&str]| containers::podman(&l.lab, args);
    let exec_ok = |c: &str, cmd: &[&str]| {
        let mut args = vec!["exec", c];
        args.extend_from_slice(cmd);
        podman(&args).is_ok()
    };

    // c51 and c52 each hold a port under vm5, with the address podman's container has.
    let ports = l.children("dmz-vm5");
    assert_eq!(ports.len(), 2, "{ports:?}");
    for name in containers::PODMAN_CONTAINERS {
        let id = podman(&["inspect", "--format", "{{.Id}}", name])
            .unwrap()
            .trim()
            .to_owned();
        let port = ports
            .iter()
            .find(|p| p.container() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("{name}'s port"));
        assert!(port.up);
        let ip = containers::podman_address(&l.lab, name).expect("an address in the container");
        assert!(
            port.addresses[0].ends_with(&format!(" {ip}")),
            "{port:?} vs {ip}"
        );
    }
    let c52 = containers::podman_address(&l.lab, "c52").unwrap();

    // Reachable: the gateway (lr0's port, answered by the logical pipeline), vm1 on the
    // switch, the parent VM, the sibling (hairpin via the hypervisor).
    for target in [GATEWAY, VM1, VM5, c52.as_str()] {
        wait::until(&format!("c51 -> {target}"), DEADLINE, || {
            exec_ok("c51", &["ping", "-c1", "-W1", target]).then_some(())
        });
    }
    let neigh = podman(&["exec", "c51", "ip", "neigh"]).unwrap_or_default();
    assert!(
        neigh.contains(GATEWAY_MAC),
        "the gateway is lr0-dmz's MAC: {neigh}"
    );

    // podman rm gives c51's port back; c52 is untouched.
    podman(&["rm", "-f", "-t", "1", "c51"]).unwrap();
    let ports = l.children("dmz-vm5");
    assert_eq!(ports.len(), 1, "{ports:?}");
    wait::until("c52 -> vm1 after c51 left", DEADLINE, || {
        exec_ok("c52", &["ping", "-c1", "-W1", VM1]).then_some(())
    });

    // A one-shot container: it gets an address, reaches the gateway, leaves nothing behind.
    let mut args = vec!["run", "--rm", "--network", "dmz"];
    let extra = containers::podman_run_args(&l.lab);
    args.extend(extra.iter().map(String::as_str));
    args.extend(["/bin/ping", "-c1", "-W3", GATEWAY]);
    podman(&args).expect("podman run --rm pings the gateway");
    assert_eq!(
        l.children("dmz-vm5").len(),
        1,
        "the one-shot container's port is gone"
    );
}
