//! When a failed delivery is tried again, or given up.
//!
//! The default [`RetrySchedule`] follows Standard Webhooks (and Svix): the first attempt
//! immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h after each failure, so
//! ten attempts spread over about three days before the delivery goes to the dead letter. Every
//! delay is spread by ±[`RetrySchedule::jitter`] (10 % by default) so deliveries that failed
//! together do not come back together; the jitter source is injectable ([`Jitter`]) so tests are
//! deterministic.
//!
//! How each [`AttemptOutcome`] is treated by [`RetrySchedule::next`]:
//! - `ok`: nothing to retry (callers ack instead); answered with [`Retry::Dead`] only if misused;
//! - `permanent`: straight to the dead letter;
//! - `rate-limited`: the connector's `retry-after` replaces the scheduled delay (not jittered, so
//!   never earlier than asked; capped at [`RetrySchedule::max_retry_after`]); without one, the schedule;
//! - `retryable`, `unauthorized` (credentials can be fixed while the delivery waits) and `error`
//!   (a trap, timeout or host failure): the schedule.
//!
//! Every attempt counts, whatever its outcome: once the schedule is exhausted the delivery is dead.

use std::time::Duration;

use crate::outcome::AttemptOutcome;

/// What to do with a delivery whose attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Back to pending, claimable from this time (unix ms).
    At(i64),
    /// To the dead letter (until redriven).
    Dead,
}

/// A source of jitter: each call returns a value in `[-1.0, 1.0]`.
pub trait Jitter {
    /// The next sample, in `[-1.0, 1.0]`.
    fn sample(&mut self) -> f64;
}

/// No jitter (always 0): exact schedules.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoJitter;

impl Jitter for NoJitter {
    fn sample(&mut self) -> f64 {
        0.0
    }
}

/// Jitter from the operating system's random source.
#[derive(Debug)]
pub struct SystemJitter(ring::rand::SystemRandom);

impl Default for SystemJitter {
    fn default() -> Self {
        SystemJitter(ring::rand::SystemRandom::new())
    }
}

impl Jitter for SystemJitter {
    fn sample(&mut self) -> f64 {
        let mut b = [0u8; 8];
        // SystemRandom only fails without any OS entropy source; no jitter is then a safe answer.
        if ring::rand::SecureRandom::fill(&self.0, &mut b).is_err() {
            return 0.0;
        }
        // 53 random bits → [0, 1) → [-1, 1).
        let unit = (u64::from_be_bytes(b) >> 11) as f64 / (1u64 << 53) as f64;
        unit * 2.0 - 1.0
    }
}

impl<F: FnMut() -> f64> Jitter for F {
    fn sample(&mut self) -> f64 {
        self()
    }
}

/// Delays between attempts, with jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    /// `delays[0]` is the wait before the first attempt (normally zero, kept for the table's
    /// symmetry with the spec); `delays[n]` the wait after the n-th failed attempt. The number of
    /// entries is the number of attempts.
    pub delays: Vec<Duration>,
    /// Fraction of each delay added or removed at random (0.1 = ±10 %), clamped to `[0, 1]`.
    pub jitter: f64,
    /// Longest `retry-after` honoured; longer requests are cut to this.
    pub max_retry_after: Duration,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        const S: u64 = 1;
        const M: u64 = 60;
        const H: u64 = 3_600;
        let secs = [0, 5 * S, 5 * M, 30 * M, 2 * H, 5 * H, 10 * H, 14 * H, 20 * H, 24 * H];
        RetrySchedule {
            delays: secs.iter().map(|s| Duration::from_secs(*s)).collect(),
            jitter: 0.1,
            max_retry_after: Duration::from_secs(24 * H),
        }
    }
}

impl RetrySchedule {
    /// Total attempts before a delivery is dead.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len()).unwrap_or(u32::MAX)
    }

    /// The scheduled delay after failed attempt number `attempt` (1-based, counted since the
    /// last redrive), before jitter; `None` when the schedule is exhausted.
    pub(crate) fn base_delay(&self, attempt: u32) -> Option<Duration> {
        self.delays.get(usize::try_from(attempt).ok()?).copied()
    }

    /// `delay` spread by ±`jitter` using one sample of `rng` (clamped to `[-1, 1]`).
    pub fn jittered(&self, delay: Duration, rng: &mut dyn Jitter) -> Duration {
        let fraction = if self.jitter.is_finite() { self.jitter.clamp(0.0, 1.0) } else { 0.0 };
        let sample = rng.sample();
        let sample = if sample.is_finite() { sample.clamp(-1.0, 1.0) } else { 0.0 };
        delay.mul_f64((1.0 + sample * fraction).max(0.0))
    }

    /// Decides what follows failed attempt number `attempt` (1-based, counted since the last
    /// redrive: `Delivery::schedule_attempt`) that ended at `now_ms` with `outcome`.
    pub fn next(
        &self,
        attempt: u32,
        outcome: AttemptOutcome,
        retry_after: Option<Duration>,
        now_ms: i64,
        rng: &mut dyn Jitter,
    ) -> Retry {
        let at =
            |delay: Duration| Retry::At(now_ms.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)));
        match outcome {
            AttemptOutcome::Ok | AttemptOutcome::Permanent => Retry::Dead,
            _ => {
                let Some(delay) = self.base_delay(attempt) else { return Retry::Dead };
                match (outcome, retry_after) {
                    (AttemptOutcome::RateLimited, Some(wait)) => at(wait.min(self.max_retry_after)),
                    _ => at(self.jittered(delay, rng)),
                }
            }
        }
    }
}
