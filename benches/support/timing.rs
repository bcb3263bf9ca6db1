//! Timing shared by the bench files (`benches/ratchet.rs`, and
//! `benches/compare/benches/olm.rs` by path): every workload is timed here with criterion's
//! `iter_custom`, and every sample is kept, so that a bench can print its own table
//! (fastest sample, median, ratios) after criterion's output without reading criterion's
//! files.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::hint::black_box;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BatchSize, Bencher, BenchmarkGroup, BenchmarkId, Criterion, Throughput};

/// Every measurement sample of this run, by benchmark id (`group/function[/parameter]`):
/// `(iterations, total time)`, in the order criterion took them (warm-up first).
static SAMPLES: Mutex<BTreeMap<String, Vec<(u64, Duration)>>> = Mutex::new(BTreeMap::new());

fn record(id: &str, iters: u64, total: Duration) {
    let mut samples = SAMPLES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    samples
        .entry(id.to_string())
        .or_default()
        .push((iters, total));
}

/// This run's samples so far, by benchmark id.
pub(crate) fn samples() -> MutexGuard<'static, BTreeMap<String, Vec<(u64, Duration)>>> {
    SAMPLES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The number of samples criterion measures per benchmark after its warm-up
/// (`--sample-size N`, 100 by default): the report uses the last that many of each.
pub(crate) fn sample_size() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix("--sample-size") {
            Some("") => args.get(i + 1)?.parse().ok(),
            Some(v) => v.strip_prefix('=')?.parse().ok(),
            None => None,
        })
        .unwrap_or(100)
}

/// The fastest and the median time per iteration, in nanoseconds, over the last `keep`
/// samples (criterion's measurement; the warm-up's samples come before).
pub(crate) fn fastest_and_median(samples: &[(u64, Duration)], keep: usize) -> Option<(f64, f64)> {
    let measured = &samples[samples.len().saturating_sub(keep)..];
    let mut per_iter: Vec<f64> = measured
        .iter()
        .filter(|(iters, _)| *iters > 0)
        .map(|(iters, total)| total.as_nanos() as f64 / *iters as f64)
        .collect();
    per_iter.sort_by(f64::total_cmp);
    Some((*per_iter.first()?, per_iter[per_iter.len() / 2]))
}

/// A criterion group whose benchmarks are timed by [`Timer`] under their full id.
pub(crate) struct Group<'a> {
    name: &'static str,
    group: BenchmarkGroup<'a, WallTime>,
}

impl<'a> Group<'a> {
    pub(crate) fn new(c: &'a mut Criterion, name: &'static str) -> Self {
        Group {
            name,
            group: c.benchmark_group(name),
        }
    }

    pub(crate) fn throughput(&mut self, throughput: Throughput) {
        self.group.throughput(throughput);
    }

    /// Benchmark `group/function`.
    pub(crate) fn bench(&mut self, function: &str, mut f: impl FnMut(&mut Timer<'_, '_>)) {
        let id = format!("{}/{function}", self.name);
        self.group.bench_function(function, |b| {
            f(&mut Timer {
                bencher: b,
                id: &id,
            });
        });
    }

    /// Benchmark `group/function/parameter`.
    pub(crate) fn bench_param(
        &mut self,
        function: &str,
        parameter: impl Display,
        mut f: impl FnMut(&mut Timer<'_, '_>),
    ) {
        let id = format!("{}/{function}/{parameter}", self.name);
        let bench_id = BenchmarkId::new(function, parameter);
        self.group.bench_function(bench_id, |b| {
            f(&mut Timer {
                bencher: b,
                id: &id,
            });
        });
    }

    pub(crate) fn finish(self) {
        self.group.finish();
    }
}

/// Criterion's timing loops, measured here with `iter_custom` and recorded.
pub(crate) struct Timer<'b, 'a> {
    bencher: &'b mut Bencher<'a>,
    id: &'b str,
}

impl Timer<'_, '_> {
    /// Like criterion's `iter_batched`: `setup` makes each iteration's input outside the
    /// timed part, a batch at a time (tenths of the sample for `SmallInput`, thousandths for
    /// `LargeInput`, one otherwise), and the outputs are dropped outside it.
    pub(crate) fn iter_batched<I, O>(
        &mut self,
        mut setup: impl FnMut() -> I,
        mut routine: impl FnMut(I) -> O,
        size: BatchSize,
    ) {
        let id = self.id;
        self.bencher.iter_custom(|iters| {
            let per_batch = match size {
                BatchSize::SmallInput => iters.div_ceil(10),
                BatchSize::LargeInput => iters.div_ceil(1000),
                _ => 1,
            }
            .max(1);
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(per_batch);
                let inputs: Vec<I> = (0..n).map(|_| setup()).collect();
                let mut outputs = Vec::with_capacity(inputs.len());
                let start = Instant::now();
                for input in inputs {
                    outputs.push(routine(black_box(input)));
                }
                total += start.elapsed();
                drop(black_box(outputs));
                left -= n;
            }
            record(id, iters, total);
            total
        });
    }

    /// Like criterion's `iter`.
    pub(crate) fn iter<O>(&mut self, mut routine: impl FnMut() -> O) {
        let id = self.id;
        self.bencher.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(routine());
            }
            let total = start.elapsed();
            record(id, iters, total);
            total
        });
    }

    /// Criterion's `iter_custom`: `f` times `iters` iterations itself.
    pub(crate) fn iter_custom(&mut self, mut f: impl FnMut(u64) -> Duration) {
        let id = self.id;
        self.bencher.iter_custom(|iters| {
            let total = f(iters);
            record(id, iters, total);
            total
        });
    }
}

/// A time in nanoseconds, in the unit that suits it.
pub(crate) fn time(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.3} ms", ns / 1e6)
    }
}

// ---------------------------------------------------------------------------------------
// Interleaved rounds: the workloads of a ratio timed one after the other, round after
// round, so that both sides of the ratio are measured milliseconds apart (criterion
// measures one benchmark after the other, seconds apart, and a change of load between two
// of them moves their ratio).
// ---------------------------------------------------------------------------------------

/// `rounds` rounds over `workloads`: each round calls every workload once, starting with
/// workload `r mod N` in round `r`, so that each takes every place in the order equally
/// often. A workload times itself (see [`per_op`]) and returns nanoseconds per operation.
/// Row `r` of the result holds round `r`'s times, by workload.
pub(crate) fn interleaved_rounds<const N: usize>(
    rounds: usize,
    workloads: &mut [&mut dyn FnMut() -> f64; N],
) -> Vec<[f64; N]> {
    (0..rounds)
        .map(|r| {
            let mut row = [0.0; N];
            for k in 0..N {
                let w = (r + k) % N;
                row[w] = workloads[w]();
            }
            row
        })
        .collect()
}

/// One workload's part of a round: `inputs` made untimed, then `op` on each of them
/// timed, the outputs dropped after the clock stops. Nanoseconds per operation.
pub(crate) fn per_op<I, O>(inputs: Vec<I>, mut op: impl FnMut(I) -> O) -> f64 {
    let n = inputs.len().max(1);
    let mut outputs = Vec::with_capacity(inputs.len());
    let start = Instant::now();
    for input in inputs {
        outputs.push(op(black_box(input)));
    }
    let elapsed = start.elapsed();
    drop(black_box(outputs));
    elapsed.as_nanos() as f64 / n as f64
}

/// The median of `values` (the upper one of an even count); NaN if there is none.
pub(crate) fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// How a ratio of two workloads `a` and `b` of the rounds is shown, and its target.
#[derive(Clone, Copy)]
pub(crate) enum Ratio {
    /// `a / b`, with the most it may be.
    Over(Option<f64>),
    /// `b / a` (how many times faster `a` is), with the least it may be.
    #[allow(dead_code)] // Used by benches/compare/benches/olm.rs only.
    FasterBy(Option<f64>),
}

/// Prints the rounds' medians: each workload's time (`names[i]`), then for each
/// `(label, a, b, ratio)` the median of the rounds' ratios and the ratio of the medians,
/// with the verdict on the former.
pub(crate) fn report_rounds<const N: usize>(
    title: &str,
    rows: &[[f64; N]],
    names: &[&str; N],
    ratios: &[(&str, usize, usize, Ratio)],
) {
    let col = |i: usize| median(rows.iter().map(|r| r[i]));
    println!(
        "\nInterleaved rounds, {title}: {} rounds, the {N} workloads in rotating order each \
         round; medians over the rounds:",
        rows.len()
    );
    for (i, name) in names.iter().enumerate() {
        println!("  {name:<34} {:>11}", time(col(i)));
    }
    for &(label, a, b, ratio) in ratios {
        let (shown, x, y, target) = match ratio {
            Ratio::Over(t) => ("ours / other", a, b, t),
            Ratio::FasterBy(t) => ("faster by   ", b, a, t),
        };
        let per_round = median(rows.iter().map(|r| r[x] / r[y]));
        let verdict = match (ratio, target) {
            (Ratio::Over(_), Some(t)) if per_round <= t => format!("(target <= {t:.2}x: met)"),
            (Ratio::Over(_), Some(t)) => format!("(target <= {t:.2}x: NOT met)"),
            (Ratio::FasterBy(_), Some(t)) if per_round >= t => format!("(target >= {t:.1}x: met)"),
            (Ratio::FasterBy(_), Some(t)) => format!("(target >= {t:.1}x: NOT met)"),
            (_, None) => String::new(),
        };
        println!(
            "  {label:<32} {shown}: median of the rounds' {per_round:>7.3}x, of the medians \
             {:>7.3}x {verdict}",
            col(x) / col(y)
        );
    }
}
