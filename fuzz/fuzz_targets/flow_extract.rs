//! Frames read into the logical pipeline's packet model (`flow::extract`) and decisions
//! written back (`flow::commit`): no panic on any frame, and a commit of rewritten
//! addresses, ports and TTL keeps the frame's length. The input is the frame, then the
//! new values the rewrite puts (taken from the frame's own last bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ovnest_datapath::flow::{check, commit, extract};
use ovnest_logical::flow::Field;

/// What a decision may rewrite (OVN's `eth.src = ..`, `ip4.dst = ..`, `ip.ttl--`, ...).
const REWRITTEN: [Field; 11] = [
    Field::EthSrc,
    Field::EthDst,
    Field::Ipv4Src,
    Field::Ipv4Dst,
    Field::Ipv6Src,
    Field::Ipv6Dst,
    Field::IpTtl,
    Field::IpDscp,
    Field::TcpSrc,
    Field::TcpDst,
    Field::ArpSha,
];

fuzz_target!(|data: &[u8]| {
    let Some((flow, layers)) = extract(data) else {
        return;
    };
    let mut frame = data.to_vec();
    commit(&mut frame, layers, &flow, &flow).expect("an unchanged flow always writes");
    let seed = data
        .iter()
        .rev()
        .take(16)
        .fold(0u128, |a, b| a << 8 | u128::from(*b));
    let mut to = flow;
    for (i, field) in REWRITTEN.iter().enumerate() {
        if seed >> i & 1 == 1 {
            to.set(*field, seed.rotate_left(i as u32 * 7));
        }
    }
    if check(&flow, &to).is_ok() {
        let _ = commit(&mut frame, layers, &flow, &to);
    }
    assert_eq!(
        frame.len(),
        data.len(),
        "a commit changed the frame's length"
    );
});
