//! Geneve decapsulation (`ovnest_datapath::geneve`) on any bytes: never panics, an
//! accepted frame's inner range lies inside it, and encapsulating that inner frame again
//! with the metadata found gives a frame that decapsulates to the same metadata.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ovnest_datapath::geneve::{OVERHEAD, Underlay, decapsulate, encapsulate};

fuzz_target!(|data: &[u8]| {
    let Ok(d) = decapsulate(data) else {
        return;
    };
    assert!(d.inner.start <= d.inner.end && d.inner.end <= data.len());
    let mut again = vec![0u8; OVERHEAD];
    again.extend_from_slice(&data[d.inner.clone()]);
    let underlay = Underlay {
        local_mac: [2, 0, 0, 0, 0, 1],
        next_hop_mac: [2, 0, 0, 0, 0, 2],
        local_ip: d.remote_ip,
        remote_ip: [10, 0, 0, 2],
        csum: data.len() % 2 == 0,
    };
    if encapsulate(&mut again, &underlay, &d.meta, d.src_port).is_ok() {
        let e = decapsulate(&again).expect("a frame encapsulate wrote decapsulates");
        assert_eq!(e.meta, d.meta);
        assert_eq!(&again[e.inner.clone()], &data[d.inner.clone()]);
    }
});
