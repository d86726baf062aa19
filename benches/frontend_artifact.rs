//! Benchmark (prints figures, asserts only that the round trip is exact): the frontend artifact's path
//! for a 2 MiB and a 200 MiB build: pack to a file, push to a local `docker-registry`, read the layer
//! back into a file and unpack it, as a deploy and a promotion do. Prints the wall time and the peak
//! memory of each (this process's VmHWM, reset through `/proc/self/clear_refs` before each), and, for
//! comparison, the peak of packing in memory (how the artifact was built before). The target: the same
//! peak for both sizes, within a few MiB.
//!
//! Run: `cargo bench --profile dev --bench frontend_artifact` (the dev profile is the one the worktrees
//! keep built; gzip is slower unoptimised, so the times are pessimistic; memory does not depend on it).
//! `BENCH_BIG_MB` changes the large size (default 200).

use harness as common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use cloudshop_deploy::registry::artifact::{self, Blob, Limits, FRONTEND_ARTIFACT, TAR_GZIP_LAYER};
use cloudshop_deploy::registry::{
    artifact_manifest, push_artifact, read_layer_to, Options, Registry, Target,
};
use common::registry::LocalRegistry;
use common::rss::{reset_peak, status_kib};

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A build of `mb` MiB: 1 MiB files of incompressible bytes (media, bundles), so the layer is as large
/// as the build.
fn build(dir: &Path, mb: usize) -> Vec<(String, PathBuf)> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ mb as u64;
    (0..mb)
        .map(|i| {
            let rel = format!("static/media/asset-{i:04}.bin");
            let path = dir.join(&rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let mut buf = Vec::with_capacity(1 << 20);
            while buf.len() < 1 << 20 {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                buf.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
            }
            std::fs::write(&path, &buf).unwrap();
            (rel, path)
        })
        .collect()
}

fn round_trip(rt: &tokio::runtime::Runtime, reg: &Registry, mb: usize) {
    let src = tempfile::tempdir().unwrap();
    let files = build(src.path(), mb);
    let work = tempfile::tempdir().unwrap();
    let repo = format!("bench/front-{mb}");

    reset_peak();
    let before = status_kib("VmRSS:");
    let t = Instant::now();
    let layer = artifact::pack_to(&files, &work.path().join("layer.tar.gz")).unwrap();
    let config = Blob::empty();
    let (bytes, _) = artifact::manifest(FRONTEND_ARTIFACT, &config, &[&layer], &[]);
    let manifest = artifact_manifest(bytes).unwrap();
    let target = Target {
        registry: reg.clone(),
        repo: repo.clone(),
    };
    rt.block_on(push_artifact(&target, &[&config, &layer], &manifest, "v1"))
        .unwrap();
    let pushed = t.elapsed().as_secs_f64();
    let back = work.path().join("read.tar.gz");
    rt.block_on(read_layer_to(
        reg,
        &repo,
        &manifest,
        TAR_GZIP_LAYER,
        1 << 30,
        &back,
    ))
    .unwrap();
    let dest = work.path().join("unpacked");
    let written = artifact::unpack_file(&back, &dest, Limits::default()).unwrap();
    let total = t.elapsed().as_secs_f64();
    let peak = status_kib("VmHWM:");
    assert_eq!(written.len(), files.len());
    assert_eq!(
        std::fs::read(dest.join(&files[0].0)).unwrap(),
        std::fs::read(&files[0].1).unwrap()
    );
    println!(
        "{mb:>4} MiB build, layer {:.1} MiB: pack + push {pushed:.1} s, + read + unpack {total:.1} s; \
         peak RSS {:.1} MiB (RSS before {:.1} MiB, growth {:.1} MiB)",
        layer.size as f64 / 1048576.0,
        mib(peak),
        mib(before),
        mib(peak.saturating_sub(before))
    );

    // For comparison: packing in memory, as before.
    reset_peak();
    let before = status_kib("VmRSS:");
    let memory = artifact::pack(&files).unwrap();
    let peak = status_kib("VmHWM:");
    assert_eq!(memory.digest, layer.digest);
    println!(
        "{mb:>4} MiB build, packed in memory (before): peak RSS {:.1} MiB (growth {:.1} MiB)",
        mib(peak),
        mib(peak.saturating_sub(before))
    );
}

fn main() {
    let big: usize = std::env::var("BENCH_BIG_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let registry = LocalRegistry::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let reg = Registry::new(
        url::Url::parse(&registry.url).unwrap(),
        None,
        &Options::default(),
    )
    .unwrap();
    for mb in [2, big] {
        round_trip(&rt, &reg, mb);
    }
}
