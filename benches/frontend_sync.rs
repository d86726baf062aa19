//! Benchmark (prints figures, asserts nothing): sync a generated 2,000-file React-like build to moto S3
//! with the action's frontend sync and with `aws s3 sync` (awscli from `.venv`), against the same moto,
//! each into its own bucket: the first upload, then a re-run of the same build from a fresh copy (new
//! mtimes). Prints wall times, the ratio, objects uploaded, and peak memory (VmHWM of this process around
//! our sync, reset through `/proc/self/clear_refs`; `/usr/bin/time -v` for awscli).
//!
//! Run: `cargo bench --profile dev --bench frontend_sync` (the dev profile: the release profile does a
//! full LTO build, too heavy for a shared machine; hashing is slower unoptimised, so our figures are
//! pessimistic).

use harness as common;

use common::rss::{reset_peak, status_kib};

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cloudshop_deploy::config::Frontend;
use cloudshop_deploy::report::Timeline;
use cloudshop_deploy::steps::frontend::{self, SyncReport};
use cloudshop_deploy::steps::Clients;

const FILES: usize = 2000;

/// xorshift64*: deterministic bytes without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
    fn hash8(&mut self) -> String {
        format!("{:08x}", self.next() as u32)
    }
}

fn write(dir: &Path, rel: &str, size: u64, text: bool, rng: &mut Rng) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let mut buf = Vec::with_capacity(size as usize);
    while (buf.len() as u64) < size {
        let v = rng.next().to_le_bytes();
        if text {
            buf.extend(v.iter().map(|b| b' ' + (b % 94)));
        } else {
            buf.extend_from_slice(&v);
        }
    }
    buf.truncate(size as usize);
    std::fs::write(p, buf).unwrap();
}

/// A CRA-shaped build: entry points, hashed JS/CSS chunks and media, product images, a few ~1 MB files.
fn generate(dir: &Path) -> u64 {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let n = std::cell::Cell::new(0usize);
    let push = |rel: String, size: u64, text: bool, rng: &mut Rng| {
        write(dir, &rel, size, text, rng);
        n.set(n.get() + 1);
        size
    };
    let mut total = 0;
    total += push("index.html".into(), 2_000, true, &mut rng);
    for p in ["about", "cart", "checkout", "login", "404"] {
        total += push(format!("{p}.html"), 1_500, true, &mut rng);
    }
    for f in [
        "asset-manifest.json",
        "manifest.json",
        "robots.txt",
        "service-worker.js",
    ] {
        total += push(f.into(), 800, true, &mut rng);
    }
    total += push("favicon.ico".into(), 3_870, false, &mut rng);
    for i in 0..10 {
        let h = rng.hash8();
        total += push(
            format!("static/media/hero-{i}.{h}.jpg"),
            rng.range(900_000, 1_200_000),
            false,
            &mut rng,
        );
    }
    for i in 0..500 {
        let (h, size) = (rng.hash8(), rng.range(1_000, 60_000));
        total += push(format!("static/js/{i}.{h}.chunk.js"), size, true, &mut rng);
    }
    for i in 0..150 {
        let (h, size) = (rng.hash8(), rng.range(500, 20_000));
        total += push(
            format!("static/css/{i}.{h}.chunk.css"),
            size,
            true,
            &mut rng,
        );
    }
    for i in 0..300 {
        let (h, size) = (rng.hash8(), rng.range(2_000, 120_000));
        total += push(
            format!("static/media/icon-{i}.{h}.svg"),
            size,
            true,
            &mut rng,
        );
    }
    let mut i = 0;
    while n.get() < FILES {
        let size = rng.range(3_000, 40_000);
        total += push(
            format!("images/products/p{i:04}.png"),
            size,
            false,
            &mut rng,
        );
        i += 1;
    }
    total
}

fn fresh_copy(src: &Path, dst: &Path) {
    for e in walkdir::WalkDir::new(src) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(src).unwrap();
        let to = dst.join(rel);
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

fn peak_kib() -> u64 {
    status_kib("VmHWM:")
}

struct Run {
    wall: Duration,
    uploaded: usize,
    peak_kib: u64,
}

fn ours(rt: &tokio::runtime::Runtime, clients: &Clients, dir: &Path, bucket: &str) -> Run {
    let cfg = Frontend {
        dir: Some(dir.to_path_buf()),
        workspace: dir.parent().unwrap().to_path_buf(),
        bucket: bucket.into(),
        prefix: String::new(),
        delete: true,
        exclude: Default::default(),
        cache_rules: Default::default(),
        cloudfront_distribution_id: None,
        values: Default::default(),
        artifact: false,
    };
    reset_peak();
    let t = Instant::now();
    let sr = rt.block_on(async {
        let (mut sr, mut timeline) = (SyncReport::default(), Timeline::default());
        let prepared = frontend::prepare(clients, &cfg, false, &mut sr, &mut timeline)
            .await
            .unwrap();
        let synced = frontend::apply(clients, &cfg, prepared, &mut sr, &mut timeline)
            .await
            .unwrap();
        frontend::finalize(clients, &cfg, synced, &mut sr, &mut timeline).await;
        for p in timeline.phases() {
            println!("  ours: {} {:.2} s", p.name, p.seconds);
        }
        sr
    });
    Run {
        wall: t.elapsed(),
        uploaded: sr.uploaded,
        peak_kib: peak_kib(),
    }
}

fn awscli(endpoint: &str, dir: &Path, bucket: &str) -> Run {
    if std::env::var_os("BENCH_SKIP_AWSCLI").is_some() {
        return Run {
            wall: Duration::ZERO,
            uploaded: 0,
            peak_kib: 0,
        };
    }
    let t = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(common::venv_bin("aws"))
        .args([
            "--endpoint-url",
            endpoint,
            "s3",
            "sync",
            "--delete",
            "--no-progress",
        ])
        .arg(dir)
        .arg(format!("s3://{bucket}"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .output()
        .expect("run aws s3 sync");
    let wall = t.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "aws s3 sync failed:\n{stdout}\n{stderr}"
    );
    let peak_kib = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Run {
        wall,
        uploaded: stdout.lines().filter(|l| l.starts_with("upload:")).count(),
        peak_kib,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter we do not support.
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let moto = common::Moto::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let build = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let total = generate(build.path());
    println!(
        "generated {FILES} files, {:.1} MiB, in {:.1} s",
        total as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );
    let copy = tempfile::tempdir().unwrap();
    let clients = rt.block_on(async {
        let sdk = moto.sdk_config().await;
        let s3 = moto.s3().await;
        for b in ["bench-ours", "bench-awscli"] {
            s3.create_bucket().bucket(b).send().await.unwrap();
        }
        Clients::new(sdk, true)
    });

    let ours_first = ours(&rt, &clients, build.path(), "bench-ours");
    let cli_first = awscli(&moto.endpoint, build.path(), "bench-awscli");
    // A fresh checkout: same bytes, new mtimes.
    std::thread::sleep(Duration::from_millis(1100));
    fresh_copy(build.path(), copy.path());
    let ours_again = ours(&rt, &clients, copy.path(), "bench-ours");
    let cli_again = awscli(&moto.endpoint, copy.path(), "bench-awscli");

    println!();
    println!("| run | cloudshop-deploy | aws s3 sync | ratio (aws / ours) |\n|---|---:|---:|---:|");
    for (name, o, c) in [
        ("first upload", &ours_first, &cli_first),
        ("re-run, fresh copy", &ours_again, &cli_again),
    ] {
        println!(
            "| {name}: wall | {:.2} s | {:.2} s | {:.2}x |",
            o.wall.as_secs_f64(),
            c.wall.as_secs_f64(),
            c.wall.as_secs_f64() / o.wall.as_secs_f64().max(1e-9)
        );
        println!(
            "| {name}: objects uploaded | {} | {} | |",
            o.uploaded, c.uploaded
        );
        println!(
            "| {name}: peak memory | {:.1} MiB | {:.1} MiB | |",
            o.peak_kib as f64 / 1024.0,
            c.peak_kib as f64 / 1024.0
        );
    }
}
