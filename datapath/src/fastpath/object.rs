//! The XDP objects built by datapath/build.rs from ebpf/xdp.

/// ELF bytes of the `ovnest-xdp` program, 8-byte aligned as aya requires.
pub(super) static XDP_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ovnest-xdp"));

/// ELF bytes of `ovnest-xdp-bench`: the bench's generator, sink and baseline.
pub(super) static BENCH_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ovnest-xdp-bench"));

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> aya_obj::Object {
        aya_obj::Object::parse(bytes).expect("an eBPF object")
    }

    fn is_bench(name: &str) -> bool {
        name.starts_with("BENCH_") || name.starts_with("BASELINE_") || name.starts_with("bench_")
    }

    /// `ovnest run` loads XDP_OBJECT: none of the bench's programs or maps (the
    /// generator's 1.5 MB of frames among them) may be in it.
    #[test]
    fn the_product_object_holds_no_bench_program_or_map() {
        let product = parse(XDP_OBJECT);
        assert!(product.programs.contains_key("vif_ingress"));
        let bench: Vec<_> = product
            .maps
            .keys()
            .chain(product.programs.keys())
            .filter(|n| is_bench(n) || n.starts_with("baseline"))
            .collect();
        assert!(
            bench.is_empty(),
            "bench items in the product object: {bench:?}"
        );
    }

    #[test]
    fn the_bench_object_holds_generator_sink_and_baseline() {
        let bench = parse(BENCH_OBJECT);
        for program in [
            "bench_tx",
            "bench_sink",
            "bench_capture",
            "baseline_strip_redirect",
        ] {
            assert!(bench.programs.contains_key(program), "{program}");
        }
        for map in [
            "BENCH_TEMPLATES",
            "BENCH_SENT",
            "BENCH_CAPTURED",
            "BASELINE_EGRESS",
            "DEVICES",
        ] {
            assert!(bench.maps.contains_key(map), "{map}");
        }
        assert!(!bench.programs.contains_key("vif_ingress"));
    }
}
