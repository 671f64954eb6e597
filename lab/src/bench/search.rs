//! Throughput search (RFC 2544 §26.1, with a loss tolerance as FD.io CSIT's PDR): the
//! highest offered rate a target carries losing at most a given fraction of the frames.
//!
//! A search starts from an overload trial (the generator as fast as it goes), whose
//! received rate is the first guess, then bisects between the highest rate that passed
//! and the lowest that failed. A rate fails only when a second trial at it fails too: a
//! virtual machine's vCPU is sometimes descheduled for longer than a 256-frame veth
//! ring lasts, and one such stall must not cut the bracket for good. Pure logic:
//! `ovnest bench` runs the trials.

use serde::Serialize;

/// One measurement window: frames per second offered (transmitted by the generator) and
/// received at the destination.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Sample {
    pub offered: f64,
    pub received: f64,
}

impl Sample {
    /// The fraction of offered frames that did not arrive (0 when nothing was offered).
    pub fn loss(&self) -> f64 {
        if self.offered <= 0.0 {
            return 0.0;
        }
        (1.0 - self.received / self.offered).max(0.0)
    }
}

/// Trials after the overload one, retries included.
pub const MAX_TRIALS: usize = 10;
/// The search stops when the bracket is this narrow, relative to its top.
pub const RESOLUTION: f64 = 0.02;

/// One target's search in one case.
#[derive(Clone, Debug)]
pub struct Search {
    tolerance: f64,
    /// Highest rate that passed (0: none yet) and lowest that failed.
    passed: f64,
    failed: f64,
    next: Option<f64>,
    trials: usize,
    /// The last trial failed once at this rate; it is tried again before it counts.
    retrying: Option<f64>,
    /// The overload trial, and the passing trial with the most frames received.
    overload: Option<Sample>,
    best: Option<Sample>,
}

/// What a search found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    /// The passing trial that received the most, if any passed.
    pub throughput: Option<Sample>,
    /// The overload trial.
    pub overload: Sample,
    /// The target lost no more than the tolerance even at overload: the generator, not
    /// the target, set the figure.
    pub generator_limited: bool,
}

impl Search {
    /// `tolerance`: the fraction of offered frames a passing trial may lose.
    pub fn new(tolerance: f64) -> Search {
        Search {
            tolerance,
            passed: 0.0,
            failed: 0.0,
            next: None,
            trials: 0,
            retrying: None,
            overload: None,
            best: None,
        }
    }

    /// Records the overload trial (generator unpaced) and picks the first rate to try.
    pub fn start(&mut self, overload: Sample) {
        self.overload = Some(overload);
        if overload.loss() <= self.tolerance {
            self.best = Some(overload);
            self.next = None;
            return;
        }
        self.failed = overload.offered;
        // What the target delivered under overload is a close first guess; kept inside
        // the bracket.
        self.next = Some(
            overload
                .received
                .clamp(0.0, overload.offered * (1.0 - RESOLUTION)),
        )
        .filter(|rate| *rate > 0.0);
    }

    /// The rate (frames per second) to offer next, or None when the search is done.
    pub fn next_rate(&self) -> Option<f64> {
        self.next
    }

    /// Records a trial at `rate` (what `next_rate` asked for) and picks the next rate.
    pub fn record(&mut self, rate: f64, sample: Sample) {
        self.trials += 1;
        let retried = self.retrying.take() == Some(rate);
        if sample.loss() <= self.tolerance {
            self.passed = self.passed.max(rate);
            if self.best.is_none_or(|best| sample.received > best.received) {
                self.best = Some(sample);
            }
        } else if !retried && self.trials < MAX_TRIALS {
            self.retrying = Some(rate);
            self.next = Some(rate);
            return;
        } else {
            self.failed = if self.failed > 0.0 {
                self.failed.min(rate)
            } else {
                rate
            };
        }
        let (low, high) = (self.passed, self.failed);
        self.next = (self.trials < MAX_TRIALS && high > 0.0 && (high - low) / high > RESOLUTION)
            .then(|| (low + high) / 2.0);
    }

    /// The result; None before `start`.
    pub fn outcome(&self) -> Option<Outcome> {
        let overload = self.overload?;
        Some(Outcome {
            throughput: self.best,
            overload,
            generator_limited: overload.loss() <= self.tolerance,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a target that carries `capacity` frames per second without
    /// loss and drops everything above it, behind a generator that reaches `ceiling`.
    fn search_against(capacity: f64, ceiling: f64, overload_received: f64) -> Outcome {
        let mut search = Search::new(0.001);
        search.start(Sample {
            offered: ceiling,
            received: overload_received,
        });
        let mut trials = 0;
        while let Some(rate) = search.next_rate() {
            trials += 1;
            assert!(trials <= MAX_TRIALS, "the search must end");
            search.record(
                rate,
                Sample {
                    offered: rate,
                    received: rate.min(capacity),
                },
            );
        }
        search.outcome().unwrap()
    }

    #[test]
    fn finds_a_capacity_above_the_overload_figure_within_the_resolution() {
        // Overload hurts this target (it delivers 2.7 M when flooded) but it carries 3.6 M.
        let outcome = search_against(3.6e6, 6.0e6, 2.7e6);
        let found = outcome.throughput.unwrap().received;
        assert!(
            found <= 3.6e6 && found > 3.6e6 * (1.0 - 2.0 * RESOLUTION),
            "{found}"
        );
        assert!(!outcome.generator_limited);
    }

    #[test]
    fn finds_a_capacity_below_the_overload_figure() {
        let outcome = search_against(1.0e6, 6.0e6, 1.5e6);
        let found = outcome.throughput.unwrap().received;
        assert!(found <= 1.0e6 && found > 0.9e6, "{found}");
    }

    #[test]
    fn a_target_faster_than_the_generator_is_marked_generator_limited() {
        let outcome = search_against(9.0e6, 6.0e6, 6.0e6);
        assert!(outcome.generator_limited);
        assert_eq!(outcome.throughput.unwrap().received, 6.0e6);
    }

    #[test]
    fn a_target_that_always_loses_has_no_throughput() {
        let mut search = Search::new(0.001);
        search.start(Sample {
            offered: 5.0e6,
            received: 1.0e6,
        });
        while let Some(rate) = search.next_rate() {
            search.record(
                rate,
                Sample {
                    offered: rate,
                    received: rate * 0.5,
                },
            );
        }
        let outcome = search.outcome().unwrap();
        assert_eq!(outcome.throughput, None);
        assert!(!outcome.generator_limited);
    }

    #[test]
    fn one_unlucky_trial_does_not_cut_the_bracket() {
        let mut search = Search::new(0.005);
        search.start(Sample {
            offered: 6.0e6,
            received: 3.0e6,
        });
        let mut stalls = 1;
        while let Some(rate) = search.next_rate() {
            // The target carries 4 M; the first trial below that meets a stall.
            let lost = if rate > 4.0e6 {
                0.1
            } else if stalls > 0 {
                stalls -= 1;
                0.02
            } else {
                0.0
            };
            search.record(
                rate,
                Sample {
                    offered: rate,
                    received: rate * (1.0 - lost),
                },
            );
        }
        assert_eq!(stalls, 0, "the stall happened");
        let found = search.outcome().unwrap().throughput.unwrap().received;
        assert!(found > 4.0e6 * (1.0 - 2.0 * RESOLUTION), "{found}");
    }

    #[test]
    fn loss_is_the_missing_fraction_and_never_negative() {
        let s = |offered, received| Sample { offered, received };
        assert!((s(100.0, 90.0).loss() - 0.1).abs() < 1e-12);
        assert_eq!(s(100.0, 101.0).loss(), 0.0);
        assert_eq!(s(0.0, 0.0).loss(), 0.0);
    }
}
