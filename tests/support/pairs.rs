//! Paired timing for the benches: a flipcache call and the reference it is compared with,
//! timed alternately in short blocks so that both see the same machine state (on a VM, the
//! cost of a round trip drifts by several times within a minute, which sequential benchmarks
//! turn into noise). Prints the median of the per-block ratios.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Blocks per pair.
pub const BLOCKS: usize = 200;
/// Calls per block.
pub const PER_BLOCK: u64 = 50;

/// Times `PER_BLOCK` calls of `op`.
fn block(mut op: impl FnMut(u64)) -> Duration {
    let start = Instant::now();
    for i in 0..PER_BLOCK {
        op(i);
    }
    start.elapsed()
}

/// The per-call times (µs) of both sides, block by block.
pub struct Pairs {
    pub ours: Vec<f64>,
    pub theirs: Vec<f64>,
}

impl Pairs {
    /// Times `ours` and `theirs` in alternating blocks.
    pub fn run(mut ours: impl FnMut(u64), mut theirs: impl FnMut(u64)) -> Pairs {
        // Warm up both.
        block(&mut ours);
        block(&mut theirs);
        let mut p = Pairs {
            ours: Vec::new(),
            theirs: Vec::new(),
        };
        for n in 0..BLOCKS {
            // Alternate which goes first.
            let (a, b) = if n % 2 == 0 {
                let a = block(&mut ours);
                (a, block(&mut theirs))
            } else {
                let b = block(&mut theirs);
                (block(&mut ours), b)
            };
            p.ours.push(a.as_secs_f64() * 1e6 / PER_BLOCK as f64);
            p.theirs.push(b.as_secs_f64() * 1e6 / PER_BLOCK as f64);
        }
        p
    }

    /// Prints a table row: medians, the ratio's median, p10 and p90.
    pub fn print(&self, what: &str, reference: &str, target: &str) {
        let mut ratios: Vec<f64> = self
            .ours
            .iter()
            .zip(&self.theirs)
            .map(|(a, b)| a / b)
            .collect();
        ratios.sort_by(f64::total_cmp);
        let median = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "| {what} | {:.1} µs | {reference} {:.1} µs | {:.2}x (p10 {:.2}x, p90 {:.2}x) | {target} |",
            median(&self.ours),
            median(&self.theirs),
            ratios[ratios.len() / 2],
            ratios[ratios.len() / 10],
            ratios[ratios.len() * 9 / 10],
        );
    }
}
