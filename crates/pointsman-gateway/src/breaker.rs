//! A circuit breaker per upstream: after `failures` consecutive failures the upstream is skipped
//! for a cool-down; then one trial call is let through, whose outcome closes the circuit or opens
//! it for another cool-down.

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
    trial_in_flight: bool,
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

    /// Whether a call may go out now. Once the cool-down has passed, exactly one trial call is
    /// let through until its outcome is recorded.
    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        let mut s = self.lock();
        match s.open_until {
            None => true,
            Some(until) if now < until => false,
            Some(_) if s.trial_in_flight => false,
            Some(_) => {
                s.trial_in_flight = true;
                true
            }
        }
    }

    /// Whether the circuit is open (calls are being skipped).
    pub fn is_open(&self) -> bool {
        self.lock().open_until.is_some()
    }

    /// Records the outcome of a call that [`Breaker::allow`] let through.
    pub fn record(&self, success: bool) -> Transition {
        self.record_at(success, Instant::now())
    }

    fn record_at(&self, success: bool, now: Instant) -> Transition {
        let mut s = self.lock();
        let was_open = s.open_until.is_some();
        s.trial_in_flight = false;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_cools_down_and_trials_once() {
        let b = Breaker::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(b.record_at(false, t0), Transition::None);
        assert_eq!(b.record_at(true, t0), Transition::None);
        assert_eq!(b.record_at(false, t0), Transition::None);
        assert_eq!(b.record_at(false, t0), Transition::None);
        assert_eq!(b.record_at(false, t0), Transition::Opened);
        assert!(b.is_open());
        assert!(!b.allow_at(t0 + Duration::from_secs(9)));
        let later = t0 + Duration::from_secs(11);
        assert!(b.allow_at(later));
        assert!(!b.allow_at(later), "one trial at a time");
        assert_eq!(b.record_at(false, later), Transition::None);
        assert!(!b.allow_at(later + Duration::from_secs(9)));
        let again = later + Duration::from_secs(11);
        assert!(b.allow_at(again));
        assert_eq!(b.record_at(true, again), Transition::Closed);
        assert!(b.allow_at(again) && b.allow_at(again));
    }
}
