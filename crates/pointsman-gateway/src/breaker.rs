//! A circuit breaker per upstream: after `failures` consecutive failures the upstream is skipped
//! for a cool-down; then one trial call is let through, whose outcome closes the circuit or opens
//! it for another cool-down. A trial whose outcome is never known (its client left, its request
//! was cut) lets the next call be the trial: a call is let through as a [`Permit`], and a permit
//! dropped unrecorded gives its trial back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The state of one upstream's circuit.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    consecutive: u32,
    open_until: Option<Instant>,
    /// The trial call in flight, by number: only its own permit ends it (a trial of an
    /// earlier cool-down that ends late must not free the current one).
    trial: Option<u64>,
    trials: u64,
}

/// What [`Breaker::record`] did to the circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing changed.
    None,
    /// The circuit opened.
    Opened,
    /// The circuit closed.
    Closed,
}

impl Breaker {
    /// A closed circuit that opens after `threshold` consecutive failures for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A call may go out now when this gives a permit, whose [`Permit::record`] tells the
    /// outcome. Once the cool-down has passed, exactly one trial call is let through until its
    /// outcome is recorded or its permit dropped.
    pub fn allow(&self) -> Option<Permit<'_>> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> Option<Permit<'_>> {
        let mut s = self.lock();
        let trial = match s.open_until {
            None => None,
            Some(until) if now < until => return None,
            Some(_) if s.trial.is_some() => return None,
            Some(_) => {
                s.trials += 1;
                s.trial = Some(s.trials);
                s.trial
            }
        };
        Some(Permit {
            breaker: self,
            trial,
            recorded: false,
        })
    }

    /// Whether the circuit is open (calls are being skipped).
    pub fn is_open(&self) -> bool {
        self.lock().open_until.is_some()
    }

    /// Records the outcome of a call let through earlier whose permit was already recorded:
    /// a stream that fails after its first byte.
    pub fn record(&self, success: bool) -> Transition {
        self.record_at(success, Instant::now(), None)
    }

    /// Records an outcome; `trial` is the number of the trial call it ends, if it is one.
    fn record_at(&self, success: bool, now: Instant, trial: Option<u64>) -> Transition {
        let mut s = self.lock();
        let was_open = s.open_until.is_some();
        if trial.is_some() && s.trial == trial {
            s.trial = None;
        }
        if success {
            s.consecutive = 0;
            s.open_until = None;
            return if was_open {
                Transition::Closed
            } else {
                Transition::None
            };
        }
        s.consecutive = s.consecutive.saturating_add(1);
        if was_open || s.consecutive >= self.threshold {
            s.open_until = Some(now + self.cooldown);
            if !was_open {
                return Transition::Opened;
            }
        }
        Transition::None
    }
}

/// A call let through by [`Breaker::allow`]. Dropped without [`Permit::record`] (the call's
/// future was dropped: its client left, or shutdown cut it), it tells the breaker nothing, but
/// a trial's permit frees the trial, so that the next call can be one.
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    /// The number of the trial this call is, if it is one.
    trial: Option<u64>,
    recorded: bool,
}

impl Permit<'_> {
    /// Records the outcome of the call.
    pub fn record(self, success: bool) -> Transition {
        self.record_at(success, Instant::now())
    }

    fn record_at(mut self, success: bool, now: Instant) -> Transition {
        self.recorded = true;
        self.breaker.record_at(success, now, self.trial)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.trial.is_some() && !self.recorded {
            let mut s = self.breaker.lock();
            if s.trial == self.trial {
                s.trial = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_cools_down_and_trials_once() {
        let b = Breaker::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(b.record_at(false, t0, None), Transition::None);
        assert_eq!(b.record_at(true, t0, None), Transition::None);
        assert_eq!(b.record_at(false, t0, None), Transition::None);
        assert_eq!(b.record_at(false, t0, None), Transition::None);
        assert_eq!(b.record_at(false, t0, None), Transition::Opened);
        assert!(b.is_open());
        assert!(b.allow_at(t0 + Duration::from_secs(9)).is_none());
        let later = t0 + Duration::from_secs(11);
        let trial = b.allow_at(later).unwrap();
        assert!(b.allow_at(later).is_none(), "one trial at a time");
        assert_eq!(trial.record_at(false, later), Transition::None);
        assert!(b.allow_at(later + Duration::from_secs(9)).is_none());
        let again = later + Duration::from_secs(11);
        // A trial whose call was dropped (its client left) tells nothing and frees the trial.
        drop(b.allow_at(again).unwrap());
        assert!(b.is_open());
        let trial = b.allow_at(again).unwrap();
        assert_eq!(trial.record_at(true, again), Transition::Closed);
        assert!(b.allow_at(again).is_some() && b.allow_at(again).is_some());
    }

    #[test]
    fn a_late_trial_does_not_free_a_newer_one() {
        let b = Breaker::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(b.record_at(false, t0, None), Transition::Opened);
        let first = b.allow_at(t0 + Duration::from_secs(11)).unwrap();
        // Another call's failure (a stream after its first byte) opens it again meanwhile.
        b.record_at(false, t0 + Duration::from_secs(12), None);
        let t1 = t0 + Duration::from_secs(23);
        assert!(b.allow_at(t1).is_none(), "the first trial is still out");
        // The first trial's client leaves: its permit frees its own trial, not a later one.
        drop(first);
        let second = b.allow_at(t1).unwrap();
        let late = b.allow_at(t1);
        assert!(late.is_none(), "one trial at a time");
        assert_eq!(second.record_at(true, t1), Transition::Closed);
    }
}
