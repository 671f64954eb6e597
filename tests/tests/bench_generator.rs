//! `ovnest bench`'s generator on a real veth pair. Paced, it holds each frame until its
//! departure time: every frame it is asked for leaves (it does not drop frames to pace
//! itself, which would load the target's page pool), none leaves early, and the sink on
//! the far end counts them all. The capture keeps the last frame's bytes.

use std::time::Duration;

use ovnest_datapath::{fastpath::bench::BenchKit, frames::Frame};
use ovnest_tests::{netns::NetNs, privilege::require_root, wait};

const DEADLINE: Duration = Duration::from_secs(5);
const FRAMES: u32 = 2_000;

fn frame() -> Vec<u8> {
    Frame::eth([0x02, 0, 0, 0, 0, 0x02], [0x02, 0, 0, 0, 0, 0x01])
        .udp([10, 0, 0, 1], [10, 0, 0, 2], 10_000, 5001, 18)
        .build()
}

/// Sends `FRAMES` frames one `gap_ns` apart from one end of a veth pair to a sink on the
/// other; returns the kernel's time for them and the kit (its counters).
fn send(gap_ns: u64) -> (Duration, BenchKit) {
    let (sender, receiver) = (NetNs::new("gen"), NetNs::new("sink"));
    // The sink counts every frame: no kernel IPv6 chatter (MLD, router solicitations)
    // may reach it while it counts the generator's.
    sender.without_ipv6();
    receiver.without_ipv6();
    sender.veth_to("eth0", &receiver, "eth0");
    let mut kit = BenchKit::load().expect("load the bench programs");
    {
        let _inside = receiver.enter();
        kit.attach_sink(receiver.ifindex("eth0"))
            .expect("attach the sink");
    }
    let frame = frame();
    kit.set_frames(std::slice::from_ref(&frame))
        .expect("set frames");
    kit.set_gap_ns(gap_ns).expect("set the gap");
    let took = {
        let _inside = sender.enter();
        kit.inject(sender.ifindex("eth0"), &frame, FRAMES, 64)
            .expect("inject")
    };
    assert_eq!(
        kit.sent().expect("sent"),
        u64::from(FRAMES),
        "every frame asked for is transmitted"
    );
    (took, kit)
}

#[test]
fn paced_generator_sends_every_frame_no_sooner_than_its_gap() {
    if !require_root("paced_generator_sends_every_frame_no_sooner_than_its_gap") {
        return;
    }
    let gap = Duration::from_micros(20);
    let (took, kit) = send(gap.as_nanos() as u64);
    // 64 frames per flush, drained by the receiver's softirq on the sending core after
    // each flush: the 256-frame veth ring never fills.
    let received = wait::until("the sink counts every frame", DEADLINE, || {
        let n = kit.received().expect("received");
        (n >= u64::from(FRAMES)).then_some(n)
    });
    assert_eq!(
        received,
        u64::from(FRAMES),
        "the sink counts only the generator's frames"
    );
    // The first frame leaves at once, each next one a gap later at the earliest.
    assert!(
        took >= gap * (FRAMES - 1),
        "{FRAMES} frames {gap:?} apart took only {took:?}"
    );
}

#[test]
fn unpaced_generator_sends_every_frame() {
    if !require_root("unpaced_generator_sends_every_frame") {
        return;
    }
    let (took, kit) = send(0);
    assert!(kit.received().expect("received") <= u64::from(FRAMES));
    // Unpaced, the same frames go out far faster than the paced test allows.
    assert!(
        took < Duration::from_micros(20) * (FRAMES - 1),
        "unpaced took {took:?}"
    );
}

/// The capture (`ovnest bench --tunnel` reads the Geneve frames a hypervisor sends with
/// it) counts like the sink and keeps the last frame's bytes exactly; once detached it
/// sees nothing more.
#[test]
fn capture_keeps_the_last_frame_and_detaches() {
    if !require_root("capture_keeps_the_last_frame_and_detaches") {
        return;
    }
    let (sender, receiver) = (NetNs::new("cgen"), NetNs::new("csink"));
    sender.without_ipv6();
    receiver.without_ipv6();
    sender.veth_to("eth0", &receiver, "eth0");
    let mut kit = BenchKit::load().expect("load the bench programs");
    assert_eq!(kit.captured().expect("read the capture"), None);
    let link = {
        let _inside = receiver.enter();
        kit.attach_capture(receiver.ifindex("eth0"))
            .expect("attach the capture")
    };
    // Two flows of different bytes: the capture holds the last one sent.
    let first = frame();
    let last = Frame::eth([0x02, 0, 0, 0, 0, 0x02], [0x02, 0, 0, 0, 0, 0x01])
        .udp([10, 0, 0, 1], [10, 0, 0, 2], 10_001, 5001, 18)
        .build();
    kit.set_frames(&[first.clone(), last.clone()])
        .expect("set frames");
    kit.set_gap_ns(0).expect("set the gap");
    let inject = |kit: &BenchKit, n: u32| {
        let _inside = sender.enter();
        kit.inject(sender.ifindex("eth0"), &first, n, 64)
            .expect("inject")
    };
    inject(&kit, 100);
    wait::until("the capture counts every frame", DEADLINE, || {
        (kit.received().expect("received") >= 100).then_some(())
    });
    assert_eq!(kit.received().expect("received"), 100);
    assert_eq!(
        kit.captured().expect("read the capture"),
        Some(last.clone())
    );
    // Detached: the interface takes another program (one XDP link per interface), and
    // the frames are counted by it alone.
    kit.detach_capture(link).expect("detach the capture");
    {
        let _inside = receiver.enter();
        kit.attach_sink(receiver.ifindex("eth0"))
            .expect("the sink attaches where the capture was");
    }
    inject(&kit, 64);
    wait::until("the sink counts the next frames", DEADLINE, || {
        (kit.received().expect("received") >= 164).then_some(())
    });
    assert_eq!(kit.received().expect("received"), 164);
}
