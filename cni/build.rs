//! Builds the in-VM tagger (`ebpf/tc`, crate `ovnest-ebpf-tc`) with the pinned nightly in
//! `ebpf/NIGHTLY` and bpf-linker, and leaves the object in OUT_DIR for `include_bytes!`.

use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == "ovnest-ebpf-tc")
        .ok_or_else(|| anyhow!("package ovnest-ebpf-tc not in the workspace"))?;
    let root = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent", ebpf.manifest_path))?;
    let nightly_file = root.join("../NIGHTLY");
    println!("cargo::rerun-if-changed={nightly_file}");
    println!("cargo::rerun-if-changed={}", root.join("../common/src"));
    let nightly = std::fs::read_to_string(&nightly_file)
        .with_context(|| format!("reading {nightly_file}"))?;
    let nightly = nightly.trim();
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(nightly),
    )
    .with_context(|| {
        format!("building the TC tagger with {nightly} (run scripts/setup.sh for the toolchain and bpf-linker)")
    })
}
