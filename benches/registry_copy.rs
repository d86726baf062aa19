//! Benchmark (prints figures, asserts nothing about speed): copy a generated ~200 MB, 5-layer image from
//! one local `docker-registry` to another with this crate's streaming copy, and with
//! `skopeo copy --src-tls-verify=false --dest-tls-verify=false` on the same data; wall time and peak memory
//! (this process's VmHWM, reset before the copy; `/usr/bin/time -v` for skopeo). Two registries so neither
//! tool can mount: the bytes really move. Also times the same-registry mount path and an idempotent re-run.
//!
//! Run: `cargo bench --bench registry_copy` (env `BENCH_LAYER_MB`, default 40). The `bench` profile in
//! Cargo.toml optimises only the crates on the copy's hot path (sha2, hyper, reqwest, tokio...) and builds
//! the AWS SDKs at opt-level 0, so this costs a debug-sized build, not an LTO release build. Under the dev
//! profile the figures are meaningless: unoptimised sha2 hashes at ~9 MiB/s.

use harness as common;

use std::process::Command;
use std::time::Instant;

use cloudshop_deploy::registry::{copy_image, Options, Registry, Source, Target};
use common::registry::{write_layout, LocalRegistry};
use common::rss::{reset_peak, status_kib};

fn main() {
    let layer_mb: usize = std::env::var("BENCH_LAYER_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let a = LocalRegistry::start();
    let b = LocalRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let layout = write_layout(dir.path(), "v1", 5, layer_mb * 1024 * 1024, false);
    a.push_layout(dir.path(), "v1", "bench/src", "v1");
    let total: u64 = layout.blobs.iter().map(|b| b.1).sum();
    println!(
        "image: 5 layers x {layer_mb} MiB, {:.1} MiB in blobs, digest {} (generated + pushed in {:.1} s)",
        total as f64 / 1048576.0,
        layout.digest,
        t.elapsed().as_secs_f64()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let opts = Options {
        mount: false,
        ..Options::default()
    };
    let ra = Registry::new(url::Url::parse(&a.url).unwrap(), None, &opts).unwrap();
    let rb = Registry::new(url::Url::parse(&b.url).unwrap(), None, &opts).unwrap();
    let source = Source::Registry {
        registry: ra.clone(),
        repo: "bench/src".into(),
    };
    let top = rt
        .block_on(ra.get_manifest("bench/src", "v1"))
        .unwrap()
        .unwrap();
    let tags = vec!["v1".to_string()];

    // 1. This crate, registry A -> registry B, streaming.
    reset_peak();
    let rss_before = status_kib("VmRSS:");
    let t = Instant::now();
    let target = Target {
        registry: rb.clone(),
        repo: "bench/ours".into(),
    };
    let stats = rt
        .block_on(copy_image(&source, &target, &top, &tags, &opts))
        .unwrap();
    let ours = t.elapsed().as_secs_f64();
    let peak = status_kib("VmHWM:");
    assert_eq!(
        b.digest_of("bench/ours", "v1").as_deref(),
        Some(layout.digest.as_str())
    );
    println!(
        "cloudshop-deploy copy (stream, A -> B): {ours:.2} s, {} blobs, {:.1} MiB, {:.0} MiB/s; peak RSS {:.1} MiB (RSS before {:.1} MiB, growth {:.1} MiB)",
        stats.blobs_copied,
        stats.bytes_copied as f64 / 1048576.0,
        stats.bytes_copied as f64 / 1048576.0 / ours,
        peak as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        peak.saturating_sub(rss_before) as f64 / 1024.0
    );

    // 2. Idempotent re-run.
    let t = Instant::now();
    let again = rt
        .block_on(copy_image(&source, &target, &top, &tags, &opts))
        .unwrap();
    println!(
        "cloudshop-deploy re-run (nothing to move): {:.3} s, {} bytes copied",
        t.elapsed().as_secs_f64(),
        again.bytes_copied
    );

    // 3. Same registry with mounting (no bytes move).
    let t = Instant::now();
    let mount_opts = Options::default();
    let mounted = rt
        .block_on(copy_image(
            &source,
            &Target {
                registry: ra.clone(),
                repo: "bench/mounted".into(),
            },
            &top,
            &tags,
            &mount_opts,
        ))
        .unwrap();
    println!(
        "cloudshop-deploy copy (mount, A -> A): {:.3} s, {} blobs mounted, {} bytes copied",
        t.elapsed().as_secs_f64(),
        mounted.blobs_mounted,
        mounted.bytes_copied
    );

    // 4. skopeo on the same data, A -> B.
    let t = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .args([
            "skopeo",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ])
        .arg(format!("docker://{}/bench/src:v1", a.host))
        .arg(format!("docker://{}/bench/skopeo:v1", b.host))
        .output()
        .unwrap();
    let wall = t.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "skopeo failed: {stderr}");
    let max_rss_kib: u64 = stderr
        .lines()
        .find(|l| l.contains("Maximum resident set size"))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    println!(
        "skopeo copy (A -> B): {wall:.2} s, {:.0} MiB/s; peak RSS {:.1} MiB; digest in B {}",
        total as f64 / 1048576.0 / wall,
        max_rss_kib as f64 / 1024.0,
        b.digest_of("bench/skopeo", "v1").unwrap_or_default()
    );
}
