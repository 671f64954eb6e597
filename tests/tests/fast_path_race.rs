//! Table updates under traffic: one thread rewrites fast-path entries as fast as it can
//! while BPF_PROG_TEST_RUN readers on the other core run the real XDP program over the
//! same maps. Every decision a reader gets must be the one the old entry gives or the one
//! the new entry gives, byte for byte; a decision made from half of each is a failure.
//!
//! The entries are chosen so that a mixed read shows in the decision. The L2 entry of
//! vm1 alternates between "vm1, untagged" and "interface 9999 (not a redirect target),
//! push tag 200": the program reads the tag, pushes it (a helper call), then reads the
//! egress interface, so an entry torn between the two gives "redirect with tag 200" or
//! "drop with the frame untouched", neither of which is a version's decision.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use ovnest_common::{ArpKey, MacKey, maps::PORT_SECURITY};
use ovnest_datapath::{FastPath, TableSet};
use ovnest_tests::{
    fixtures::{Frame, frames::hex, lab},
    hypervisor::Hypervisor,
    privilege::require_root,
    stall::{Interrupts, current_tid},
};

/// How long the writer and the readers race.
const RACE: Duration = Duration::from_secs(3);
/// The reader is interrupted this often (of its CPU time), for `STALL_SPINS` spins of
/// about a nanosecond: longer than a map update takes, so writes land in the middle of
/// decisions, as they do on a host whose XDP is interrupted or whose vCPU is preempted.
const INTERRUPT_EVERY: Duration = Duration::from_micros(200);
const STALL_SPINS: i32 = 100_000;

/// A frame, where it enters, and what it checks.
struct Flow {
    what: &'static str,
    ingress: u32,
    frame: Vec<u8>,
}

/// What the program did with a frame: verdict and the bytes it left.
type Decision = (u32, Vec<u8>);

/// The lab's tables (version A) and a version B that rewrites, in place, the L2 entry of
/// vm1, the child entry of c52 and the ARP answer for c51.
fn versions(hv: &Hypervisor) -> (TableSet, TableSet) {
    let (a, conflicts) = TableSet::build(&lab::logical_ports(&hv.wiring));
    assert!(conflicts.is_empty(), "{conflicts:?}");
    let mut b = a.clone();
    let vm1 = b.ports.get_mut(&lab::VM1.key()).expect("vm1 in the lab");
    vm1.egress_ifindex = 9999;
    vm1.tag = 200;
    let c52 = b.ports.get_mut(&lab::C52.key()).expect("c52 in the lab");
    assert_ne!(c52.flags & PORT_SECURITY, 0);
    c52.macs[0] = lab::C51.mac;
    c52.stats_slot = 99;
    let c51_ip = ArpKey::new(lab::DMZ, lab::C51.ipv4);
    b.arp_targets.get_mut(&c51_ip).expect("c51's address").mac = [2, 0, 0, 0xbb, 0xbb, 0xbb];
    assert!(b.macs.contains_key(&MacKey::new(lab::DMZ, lab::VM1.mac)));
    (a, b)
}

fn flows(hv: &Hypervisor) -> Vec<Flow> {
    vec![
        Flow {
            what: "vm2 -> vm1 (L2 entry of vm1)",
            ingress: hv.wiring.vm2,
            frame: Frame::eth(lab::VM1.mac, lab::VM2.mac)
                .udp(lab::VM2.ipv4, lab::VM1.ipv4, 1000, 2000, 32)
                .build(),
        },
        Flow {
            what: "c52 -> vm2 (child entry of c52)",
            ingress: hv.wiring.vm5,
            frame: Frame::eth(lab::VM2.mac, lab::C52.mac)
                .udp(lab::C52.ipv4, lab::VM2.ipv4, 1000, 2000, 32)
                .vlan(52)
                .build(),
        },
        Flow {
            what: "vm2 asks for c51 (ARP target of c51)",
            ingress: hv.wiring.vm2,
            frame: Frame::eth([0xff; 6], lab::VM2.mac)
                .arp_request(lab::VM2.mac, lab::VM2.ipv4, lab::C51.ipv4)
                .build(),
        },
    ]
}

fn decide(run: &ovnest_datapath::fastpath::TestRunner, flow: &Flow) -> Decision {
    let mut out = vec![0u8; flow.frame.len() + 64];
    let (verdict, len) = run
        .run(flow.ingress, &flow.frame, &mut out)
        .unwrap_or_else(|e| panic!("{}: test run: {e}", flow.what));
    out.truncate(len);
    (verdict, out)
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Pins the calling thread to `cpu` when the machine has it.
fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it and
    // sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

fn race(hv: &Hypervisor, mut fast_path: FastPath) {
    let (a, b) = versions(hv);
    let flows = flows(hv);
    let runner = fast_path.test_runner().unwrap();
    let expected: Vec<(Decision, Decision)> = {
        let _inside = hv.ns.enter();
        fast_path.apply(&a).unwrap();
        let old: Vec<Decision> = flows.iter().map(|f| decide(&runner, f)).collect();
        fast_path.apply(&b).unwrap();
        let new: Vec<Decision> = flows.iter().map(|f| decide(&runner, f)).collect();
        fast_path.apply(&a).unwrap();
        old.into_iter().zip(new).collect()
    };
    for (flow, (old, new)) in flows.iter().zip(&expected) {
        assert_ne!(
            old, new,
            "{}: the versions must decide differently",
            flow.what
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let rewrites = Arc::new(AtomicU64::new(0));
    let (mixed, runs, seen) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            pin_to(0);
            let _inside = hv.ns.enter();
            let mut next_is_b = true;
            while !stop.load(Ordering::Relaxed) {
                fast_path
                    .apply(if next_is_b { &b } else { &a })
                    .expect("apply");
                next_is_b = !next_is_b;
                rewrites.fetch_add(1, Ordering::Relaxed);
            }
        });
        let reader = s.spawn(|| {
            // Whatever happens to the reader, the writer and the interrupter stop.
            let _stop = StopOnDrop(&stop);
            pin_to(1);
            let _inside = hv.ns.enter();
            let _interrupts = Interrupts::on_thread(current_tid(), INTERRUPT_EVERY, STALL_SPINS)
                .expect("interrupting the reader (perf cpu-clock + BPF)");
            let mut mixed: Vec<String> = Vec::new();
            let mut seen = vec![(0u64, 0u64); flows.len()];
            let mut runs = 0u64;
            let deadline = Instant::now() + RACE;
            while Instant::now() < deadline {
                for (i, flow) in flows.iter().enumerate() {
                    let got = decide(&runner, flow);
                    let (old, new) = &expected[i];
                    if got == *old {
                        seen[i].0 += 1;
                    } else if got == *new {
                        seen[i].1 += 1;
                    } else if mixed.len() < 5 {
                        mixed.push(format!(
                            "{}: verdict {} {}\n  old: verdict {} {}\n  new: verdict {} {}",
                            flow.what,
                            got.0,
                            hex(&got.1),
                            old.0,
                            hex(&old.1),
                            new.0,
                            hex(&new.1)
                        ));
                    } else {
                        mixed.push(String::new());
                    }
                    runs += 1;
                }
            }
            (mixed, runs, seen)
        });
        let result = reader.join().expect("reader");
        writer.join().expect("writer");
        result
    });
    let rewrites = rewrites.load(Ordering::Relaxed);
    eprintln!("{rewrites} table rewrites, {runs} program runs, old/new seen per flow: {seen:?}");
    assert!(
        mixed.is_empty(),
        "{} of {runs} decisions were neither the old nor the new entry's, e.g.:\n{}",
        mixed.len(),
        mixed
            .iter()
            .filter(|m| !m.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(rewrites >= 40, "only {rewrites} rewrites: no race happened");
    for (flow, (old, new)) in flows.iter().zip(&seen) {
        assert!(
            *old > 0 && *new > 0,
            "{}: readers saw old {old} times and new {new} times; both must occur",
            flow.what
        );
    }
}

#[test]
fn readers_see_the_old_or_the_new_entry_never_a_mix() {
    if !require_root("readers_see_the_old_or_the_new_entry_never_a_mix") {
        return;
    }
    let hv = Hypervisor::alone();
    race(&hv, hv.fast_path());
}

/// The same race with every key reached through the hash path instead of a flat window.
#[test]
fn readers_through_the_hash_path_see_the_old_or_the_new_entry() {
    if !require_root("readers_through_the_hash_path_see_the_old_or_the_new_entry") {
        return;
    }
    let hv = Hypervisor::alone();
    race(&hv, hv.fast_path_hash_only());
}
