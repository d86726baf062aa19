//! The demo (`examples/demo.rs`, run by `scripts/demo`) leaves no process behind: after a good run, a
//! failed run and an interrupted run (SIGINT, SIGTERM), no process it started is still alive.
//!
//! Orphans are reparented away from the test, so "descendants of the test" cannot find them. Instead each
//! run gets a unique marker in its environment (inherited by the supervisor, the worker, moto and the
//! registry); the action binary runs with a cleared environment, so processes are also matched by the
//! process groups the marked processes were seen in while the demo ran.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The demo example, built next to the crate's binaries (cargo builds examples for `cargo test`; built
/// here when a runner did not).
fn demo_bin() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_cloudshop-deploy"));
    let demo = bin.parent().unwrap().join("examples/demo");
    if !demo.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", "demo"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "cargo build --example demo");
    }
    assert!(demo.exists(), "{} is missing", demo.display());
    demo
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Proc {
    pid: u32,
    pgrp: u32,
    cmd: String,
}

/// The process table: every process with its process group, command line and whether its environment
/// holds `marker`.
fn processes(marker: &str) -> Vec<(Proc, bool)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`: comm may hold spaces, so split after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue; // a zombie holds no resources and is its parent's to reap
        }
        let Some(pgrp) = fields.get(2).and_then(|s| s.parse().ok()) else {
            continue;
        };
        let cmd = std::fs::read(entry.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let marked = std::fs::read(entry.path().join("environ"))
            .map(|env| env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()))
            .unwrap_or(false);
        out.push((Proc { pid, pgrp, cmd }, marked));
    }
    out
}

/// A demo run being watched: the groups its processes were seen in, so leftovers can be found after.
struct Watched {
    child: Child,
    marker: String,
    groups: BTreeSet<u32>,
    seen: BTreeSet<Proc>,
}

impl Watched {
    fn start(envs: &[(&str, &str)]) -> Watched {
        let marker = format!(
            "CLOUDSHOP_DEMO_TEST_MARK={}-{}",
            std::process::id(),
            rand::random::<u64>()
        );
        let (k, v) = marker.split_once('=').unwrap();
        let mut cmd = Command::new(demo_bin());
        cmd.env(k, v)
            .env(
                "CLOUDSHOP_DEPLOY_BIN",
                env!("CARGO_BIN_EXE_cloudshop-deploy"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // The demo starts its own servers, as on a newcomer's machine, even when the test run
            // shares one moto between tests.
            .env_remove("CLOUDSHOP_TEST_MOTO")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        Watched {
            child,
            marker,
            groups: BTreeSet::new(),
            seen: BTreeSet::new(),
        }
    }

    /// Record the marked processes and their groups (the test's own group excluded: the supervisor runs
    /// in it).
    fn sample(&mut self) {
        let own = processes("")
            .into_iter()
            .find(|(p, _)| p.pid == std::process::id())
            .map(|(p, _)| p.pgrp);
        for (p, marked) in processes(&self.marker) {
            if marked {
                if Some(p.pgrp) != own {
                    self.groups.insert(p.pgrp);
                }
                self.seen.insert(p);
            }
        }
    }

    /// Sample until `pred` holds on what was seen (bounded).
    fn until(&mut self, within: Duration, pred: impl Fn(&BTreeSet<Proc>) -> bool) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            self.sample();
            if pred(&self.seen) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("not reached within {within:?}; seen: {:#?}", self.seen);
    }

    /// Sample until the demo exits (bounded); its exit code.
    fn wait(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            self.sample();
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the demo ran longer than {within:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Processes still alive that the demo started: marked ones, and members of the groups it used.
    fn leftovers(&self) -> Vec<Proc> {
        processes(&self.marker)
            .into_iter()
            .filter(|(p, marked)| *marked || self.groups.contains(&p.pgrp))
            .map(|(p, _)| p)
            .collect()
    }

    /// Leftovers, after giving processes that are exiting a moment to go.
    fn assert_nothing_left(&self) {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut left = self.leftovers();
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            left = self.leftovers();
        }
        for p in &left {
            let _ = Command::new("kill")
                .args(["-KILL", &p.pid.to_string()])
                .status();
        }
        assert!(left.is_empty(), "the demo left processes behind: {left:#?}");
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

fn has(seen: &BTreeSet<Proc>, needle: &str) -> bool {
    seen.iter().any(|p| p.cmd.contains(needle))
}

#[test]
fn a_good_run_leaves_no_process_behind() {
    let mut run = Watched::start(&[]);
    let code = run.wait(Duration::from_secs(300));
    assert_eq!(code, Some(0));
    // The run did start servers, in a group of their own, so the check below can see them.
    assert!(has(&run.seen, "moto_server"), "{:#?}", run.seen);
    assert!(has(&run.seen, "docker-registry"), "{:#?}", run.seen);
    assert!(!run.groups.is_empty());
    run.assert_nothing_left();
}

#[test]
fn a_failed_run_leaves_no_process_behind() {
    // The "action" fails at once: the demo stops after the stage deploy and fails.
    let mut run = Watched::start(&[("CLOUDSHOP_DEPLOY_BIN", "/bin/false")]);
    let code = run.wait(Duration::from_secs(300));
    assert_ne!(code, Some(0));
    assert!(has(&run.seen, "moto_server"), "{:#?}", run.seen);
    run.assert_nothing_left();
}

fn interrupted(sig: &str, expected: i32) {
    let mut run = Watched::start(&[]);
    // Interrupt once both servers run: the worst moment for a process that only cleans up on return.
    run.until(Duration::from_secs(120), |seen| {
        has(seen, "moto_server") && has(seen, "docker-registry")
    });
    run.signal(sig);
    let code = run.wait(Duration::from_secs(30));
    assert_eq!(code, Some(expected));
    run.assert_nothing_left();
}

#[test]
fn an_interrupted_run_leaves_no_process_behind() {
    interrupted("-INT", 130);
}

#[test]
fn a_terminated_run_leaves_no_process_behind() {
    interrupted("-TERM", 143);
}

/// The demo is a newcomer's first command: it runs on CloudShop's real names, deploys stage from the
/// command line, and prints nothing that reads as a problem (no warning, no error).
#[test]
fn the_demo_uses_cloudshop_s_names_the_command_line_and_warns_about_nothing() {
    let out = Command::new(demo_bin())
        .env(
            "CLOUDSHOP_DEPLOY_BIN",
            env!("CARGO_BIN_EXE_cloudshop-deploy"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("CLOUDSHOP_TEST_MOTO")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    for line in text.lines() {
        let l = line.to_ascii_lowercase();
        assert!(
            !l.contains("warn") && !l.starts_with("error") && !l.contains("::error"),
            "a line a user would take for a problem: {line}"
        );
    }
    for want in [
        "$ cloudshop-deploy deploy --environment stage",
        "`stage-cluster` / `stage-backend-blue`",
        "`prod-cluster` / `prod-backend-blue`",
        "s3://stage-cloudshop-frontend-746669238399/",
        "s3://prod-cloudshop-frontend-746669238399/",
    ] {
        assert!(text.contains(want), "`{want}` missing:\n{text}");
    }
    assert_eq!(text.matches("(same digest)").count(), 2, "{text}");
}
