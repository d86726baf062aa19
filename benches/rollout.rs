//! Rollout-watch benchmark (prints figures, asserts nothing): for a scripted ~60 s ECS rollout, how many
//! seconds after ECS reports COMPLETED the watch notices, and how many API calls it makes, for the
//! adaptive schedule (base 3 s) next to a flat 15 s poll (the official action's waiter minimum and
//! ecspresso's interval) and a flat 3 s poll. Deterministic: a paused tokio clock, no network.
//!
//! Two rollouts, each COMPLETED at `done` (60 s, and 55-70 s in half-second steps so that the phase of
//! a poll does not flatter or penalise it):
//! - with a progress signal: nothing visible for 20 s (tasks provisioning), tasks start between 20 s
//!   and 40 s, all run from 45 s (ECS then waits for the load balancer);
//! - without one: the new tasks reach RUNNING only at the very end, so nothing announces completion.
//!
//! Run: `cargo bench --bench rollout --profile dev` (a paused clock needs no optimisation; the release
//! profile's LTO build is slow on a shared machine).

use std::time::Duration;

use cloudshop_deploy::steps::deploy::rollout::{self, Pace, Probe, Tick};
use cloudshop_deploy::steps::deploy::Error;
use tokio::time::Instant;

struct Scripted {
    start: Instant,
    done: f64,
    /// Whether the tasks start (and run) visibly before completion.
    signal: bool,
    calls: u32,
    last_running: u32,
}

impl Scripted {
    fn new(done: f64, signal: bool) -> Self {
        Scripted {
            start: Instant::now(),
            done,
            signal,
            calls: 0,
            last_running: 0,
        }
    }

    fn t(&self) -> f64 {
        (Instant::now() - self.start).as_secs_f64()
    }

    /// Running tasks out of 4 at time t.
    fn running(t: f64) -> u32 {
        if t < 20.0 {
            0
        } else {
            (((t - 20.0) / 5.0) as u32 + 1).min(4)
        }
    }
}

impl Probe for Scripted {
    type Output = f64;

    async fn probe(&mut self) -> Result<Tick<f64>, Error> {
        self.calls += 1;
        let t = self.t();
        if t >= self.done {
            return Ok(Tick::Done(t - self.done));
        }
        if !self.signal {
            return Ok(Tick::Pending(Pace::Quiet));
        }
        let running = Self::running(t);
        let pace = if t >= 45.0 {
            Pace::Hot
        } else if running != self.last_running {
            Pace::Changed
        } else {
            Pace::Quiet
        };
        self.last_running = running;
        Ok(Tick::Pending(pace))
    }
}

async fn adaptive(done: f64, signal: bool) -> (f64, u32) {
    let mut p = Scripted::new(done, signal);
    let w = rollout::poll(&mut p, Duration::from_secs(3), Duration::from_secs(1800))
        .await
        .expect("scripted probe never fails");
    (w.outcome.unwrap_or(f64::NAN), p.calls)
}

async fn flat(done: f64, every: f64) -> (f64, u32) {
    let start = Instant::now();
    let mut calls = 0;
    loop {
        calls += 1;
        let t = (Instant::now() - start).as_secs_f64();
        if t >= done {
            return (t - done, calls);
        }
        tokio::time::sleep(Duration::from_secs_f64(every)).await;
    }
}

type Runner = Box<dyn Fn(f64) -> std::pin::Pin<Box<dyn std::future::Future<Output = (f64, u32)>>>>;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let dones: Vec<f64> = (0..=30).map(|i| 55.0 + f64::from(i) * 0.5).collect();
    for signal in [true, false] {
        println!(
            "scripted rollout {}, COMPLETED at 60 s (and 55-70 s in 0.5 s steps)\n",
            if signal {
                "with a progress signal (tasks start 20-40 s, all run from 45 s)"
            } else {
                "without a progress signal (tasks RUNNING only at the very end)"
            }
        );
        println!(
            "{:<28} {:>14} {:>11} {:>14} {:>14} {:>16}",
            "schedule",
            "lag @60s (s)",
            "calls @60s",
            "mean lag (s)",
            "max lag (s)",
            "calls/3s (mean)"
        );
        let schedules: Vec<(&str, Runner)> = vec![
            (
                "adaptive (base 3 s)",
                Box::new(move |d| Box::pin(adaptive(d, signal))),
            ),
            (
                "flat 15 s (reference)",
                Box::new(|d| Box::pin(flat(d, 15.0))),
            ),
            ("flat 3 s", Box::new(|d| Box::pin(flat(d, 3.0)))),
        ];
        for (name, run) in &schedules {
            let (lag60, calls60) = rt.block_on(run(60.0));
            let mut lags = Vec::new();
            let mut rate = Vec::new();
            for d in &dones {
                let (lag, calls) = rt.block_on(run(*d));
                lags.push(lag);
                rate.push(f64::from(calls) / ((d + lag) / 3.0));
            }
            let mean = lags.iter().sum::<f64>() / lags.len() as f64;
            let max = lags.iter().cloned().fold(0.0, f64::max);
            let mean_rate = rate.iter().sum::<f64>() / rate.len() as f64;
            println!(
                "{name:<28} {lag60:>14.1} {calls60:>11} {mean:>14.2} {max:>14.1} {mean_rate:>16.2}"
            );
        }
        println!();
    }
    println!("(calls/3s: API calls per 3 s of watching, the first call included; the budget is 1.0 plus the first call)");
}
