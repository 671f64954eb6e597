//! The stages a frame's packet class decides (its ethertype and IP protocol, see
//! `logical/src/pipeline/classes.rs`) against the classifier's own lookups: for frames
//! of every class, with random other fields, every stage's answer equals the lookup's,
//! and whole walks with the classes equal walks without them (a walk that tracks
//! wildcards uses no class).

use ovnest_logical::{
    Decision, Interpreter, Pipeline, Semantics, TraceOptions,
    flow::{Field, Flow, WORDS},
    microflow,
    pipeline::Residency,
    trace::NoTrace,
};
use ovnest_tests::fixtures::lflows;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const ETH_TYPES: [u16; 5] = [0x0800, 0x86dd, 0x0806, 0x8035, 0x88cc];
const PROTOS: [u8; 8] = [1, 6, 17, 58, 132, 2, 0, 255];

/// The seed's cases as flows (in dmz), to start frames from.
fn bases(p: &Pipeline) -> Vec<Flow> {
    let dp = p.datapath_by_name("dmz").expect("dmz");
    lflows::cases()
        .iter()
        .map(|c| {
            microflow::parse(&c.microflow, &Default::default(), &|x| p.lookup_port(dp, x))
                .expect("microflow")
        })
        .collect()
}

/// A frame: a seed case with its class, ports, addresses and a few other fields drawn.
fn frame() -> impl Strategy<Value = (usize, usize, usize, u16, u16, u8, u32, u32, u8)> {
    (
        0..4usize,
        0..ETH_TYPES.len(),
        0..PROTOS.len(),
        0..8u16,
        prop_oneof![Just(67u16), Just(68), Just(53), Just(80), any::<u16>()],
        prop_oneof![Just(64u8), Just(1), Just(0)],
        0..12u32,
        0..12u32,
        0..4u8,
    )
}

#[allow(clippy::type_complexity)]
fn build(
    bases: &[Flow],
    (base, eth, proto, port, tp, ttl, a, b, arp_op): (
        usize,
        usize,
        usize,
        u16,
        u16,
        u8,
        u32,
        u32,
        u8,
    ),
) -> Flow {
    let mut f = bases[base];
    f.set(Field::EthType, ETH_TYPES[eth].into());
    let proto = if ETH_TYPES[eth] == 0x0806 {
        arp_op
    } else {
        PROTOS[proto]
    };
    f.set(Field::IpProto, proto.into());
    f.set(Field::Reg(14), (u32::from(port) + 1).into());
    f.set(Field::TcpDst, tp.into());
    f.set(Field::IpTtl, ttl.into());
    // Addresses in the lab's subnets (and broadcast) so routing and ARP flows match.
    let ip = |i: u32| match i {
        11 => 0xffff_ffffu32,
        i => 0xac10_ff80 + (i % 3) * 0x40 + i,
    };
    f.set(Field::Ipv4Src, ip(a).into());
    f.set(Field::Ipv4Dst, ip(b).into());
    f
}

#[test]
fn class_decided_stages_equal_lookups() {
    let p = Pipeline::compile(&lflows::seed_acl(), &Residency::Everywhere);
    assert!(p.errors.is_empty());
    let bases = bases(&p);
    let decided = std::cell::Cell::new(0u64);
    let mut runner = TestRunner::new(Config {
        cases: 2000,
        ..Config::default()
    });
    runner
        .run(&frame(), |x| {
            let f = build(&bases, x);
            for dp in 0..p.datapaths().len() as u32 {
                for egress in [false, true] {
                    for table in 0..ovnest_logical::actions::LOG_PIPELINE_LEN {
                        let mut wc = [0u64; WORDS];
                        let full = p.lookup_stage(dp, egress, table, false, &f, Some(&mut wc));
                        let exact = p.lookup_stage(dp, egress, table, false, &f, None);
                        prop_assert_eq!(exact, full, "dp {} egress {} table {}", dp, egress, table);
                        let quiet = p.lookup_stage(dp, egress, table, true, &f, None);
                        // Quietly, a stage may be passed over only towards one the lookup
                        // also reaches after `next;` flows; the walks below check that.
                        prop_assert!(quiet.0 >= full.0);
                        decided.set(decided.get() + u64::from(quiet.0 > full.0));
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    assert!(decided.get() > 0, "no stage was passed over quietly");
}

/// Whole walks on the chassis: with classes (no wildcards) and without (wildcards
/// tracked), the same packets out, controller actions and verdicts.
#[test]
fn walks_with_classes_equal_walks_without() {
    let p = Pipeline::compile(&lflows::seed_acl(), &Residency::Everywhere);
    let bases = bases(&p);
    let dmz = p.datapath_by_name("dmz").expect("dmz");
    let walk = |f: &Flow, wildcards: bool| -> Decision {
        let mut it = Interpreter::new(&p, NoTrace, Semantics::Chassis, TraceOptions::default());
        if wildcards {
            it.wc = Some([0; WORDS]);
        }
        let mut f = *f;
        it.run(dmz, &mut f);
        let mut d = it.into_decision();
        // The flows matched: a quiet walk leaves out the `next;` flows it passed over.
        d.flows.clear();
        d
    };
    let mut runner = TestRunner::new(Config {
        cases: 3000,
        ..Config::default()
    });
    runner
        .run(&frame(), |x| {
            let f = build(&bases, x);
            prop_assert_eq!(walk(&f, false), walk(&f, true));
            Ok(())
        })
        .unwrap();
}
