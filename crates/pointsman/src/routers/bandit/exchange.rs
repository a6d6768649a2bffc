//! What sharing a bandit's state between replicas needs from it ([`crate::share`]): a journal
//! of this replica's own events, applying the events of other replicas, rebuilding from a
//! snapshot, and a fingerprint of what must be equal for two states to be shared.
//!
//! An event is what a replica learned, in the form its state keeps ([`Learned::key`]): an
//! observation of a model (the key of the query, the quality, the price estimate and the cost)
//! or the wiping of a model's statistics (a drift alarm, [`BanditRouter::forget_model`]).
//! Applying another replica's events runs the same updates as observing them here, so once
//! every replica has applied everyone's events each holds the state of one learner that
//! observed all of them; with forgetting off the order does not matter (to float tolerance).
//! The drift detector is not fed by others' events: it watches this replica's own traffic, and
//! its alarms travel as `Forget` events.

use super::{BanditRouter, Learned};
use crate::error::{Error, Result};
use crate::pool::MAX_COST_USD;
use crate::rng::mix64;
use crate::saved::tagged_json;

/// One event of a replica's journal.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Model `model` was observed.
    Observe {
        /// The model's index in the pool.
        model: u32,
        /// The query's key ([`Learned::key`]).
        key: Vec<f32>,
        /// The observed quality in [0, 1].
        quality: f64,
        /// The pool's price estimate of the call (the cost calibration's denominator).
        price: f64,
        /// The observed cost, USD.
        cost: f64,
    },
    /// Model `model`'s statistics were wiped.
    Forget {
        /// The model's index in the pool.
        model: u32,
    },
}

/// A replica's own events since its journal was last taken, and when the first and the last of
/// them happened (milliseconds since the Unix epoch).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Journal {
    /// The events, oldest first.
    pub events: Vec<Event>,
    /// When the first event happened.
    pub first_ms: u64,
    /// When the last event happened.
    pub last_ms: u64,
}

impl Journal {
    pub(super) fn push(&mut self, event: Event) {
        let now = now_ms();
        if self.events.is_empty() {
            self.first_ms = now;
        }
        self.last_ms = now;
        self.events.push(event);
    }

    /// The number of observations among the events.
    pub fn observations(&self) -> u64 {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Observe { .. }))
            .count() as u64
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl<L: Learned> BanditRouter<L> {
    /// Starts recording this router's own events (observations, wiped models) for the exchange
    /// ([`crate::share`]); [`BanditRouter::take_journal`] takes them. Idempotent.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] when the state cannot be shared yet (an unfitted PCA projection
    /// or clusters).
    pub fn start_journal(&self) -> Result<()> {
        let mut state = self.write();
        state.learned.fixed_parts()?;
        state.journal.get_or_insert_with(Default::default);
        Ok(())
    }

    /// Whether this router records its events.
    pub fn is_journaling(&self) -> bool {
        self.read().journal.is_some()
    }

    /// Takes the events recorded since the last call (empty when none, or when not recording).
    pub fn take_journal(&self) -> Journal {
        let mut state = self.write();
        match &mut state.journal {
            Some(j) => std::mem::take(j),
            None => Journal::default(),
        }
    }

    /// Takes the recorded events and, under the same lock, an independent copy of the state
    /// that includes them: what a compaction writes as its snapshot.
    pub fn take_journal_and_snapshot(&self) -> (Journal, Self) {
        let mut state = self.write();
        let journal = match &mut state.journal {
            Some(j) => std::mem::take(j),
            None => Journal::default(),
        };
        let mut copy = state.clone();
        drop(state);
        copy.journal = None;
        let snapshot = BanditRouter {
            shared: std::sync::Arc::new(super::router::Shared {
                config: self.shared.config.clone(),
                pool: self.shared.pool.clone(),
                dim: self.shared.dim,
                embedding_model: self.shared.embedding_model.clone(),
                state: std::sync::RwLock::new(copy),
            }),
            greedy: self.greedy,
        };
        (journal, snapshot)
    }

    /// Checks events that came from another process: models in the pool, keys of the right
    /// length and range, qualities in [0, 1], prices and costs finite and non-negative.
    ///
    /// # Errors
    ///
    /// A message naming the first bad event.
    pub fn check_events(&self, events: &[Event]) -> std::result::Result<(), String> {
        let m = self.shared.pool.len();
        let state = self.read();
        for (i, e) in events.iter().enumerate() {
            let model = match e {
                Event::Observe { model, .. } | Event::Forget { model } => *model as usize,
            };
            if model >= m {
                return Err(format!("event {i}: model {model} of a pool of {m}"));
            }
            if let Event::Observe {
                key,
                quality,
                price,
                cost,
                ..
            } = e
            {
                state
                    .learned
                    .check_key(key)
                    .map_err(|k| format!("event {i}: {k}"))?;
                if !(0.0..=1.0).contains(quality) {
                    return Err(format!("event {i}: quality {quality} outside [0, 1]"));
                }
                for (what, v) in [("price", price), ("cost", cost)] {
                    if !(v.is_finite() && (0.0..=MAX_COST_USD).contains(v)) {
                        return Err(format!(
                            "event {i}: {what} {v} is not a number in [0, {MAX_COST_USD:e}] USD"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Learns another replica's events, in order, as if they had been observed here (the drift
    /// detector aside). They are not recorded in this router's journal.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the first bad event (nothing is applied then); a numeric
    /// failure of an update.
    pub fn apply_events(&self, events: &[Event]) -> Result<()> {
        self.check_events(events)
            .map_err(|m| Error::InvalidInput(format!("{}: {m}", L::KIND)))?;
        let mut state = self.write();
        apply_to(&self.shared.config, &mut state, events)
    }

    /// Replaces this router's state with a copy of `snapshot`'s (keeping its journal and its
    /// journal's events), then applies `then` — this replica's own events that `snapshot` does
    /// not hold — and the journal's events, all under one lock: a replica that fell behind a
    /// compaction rejoins from its snapshot without losing its own observations. Every handle
    /// on this router sees the new state.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `snapshot` cannot be shared with this router (another
    /// fingerprint); the errors of [`BanditRouter::apply_events`].
    pub fn rejoin(&self, snapshot: &Self, then: &[Event]) -> Result<()> {
        if snapshot.fingerprint()? != self.fingerprint()? {
            return Err(Error::Config(format!(
                "{}: the snapshot is of another router (configuration, models or fitted parts \
                 differ)",
                L::KIND
            )));
        }
        self.check_events(then)
            .map_err(|m| Error::InvalidInput(format!("{}: {m}", L::KIND)))?;
        let mut fresh = snapshot.read().clone();
        let mut state = self.write();
        let journal = state.journal.take();
        apply_to(&self.shared.config, &mut fresh, then)?;
        if let Some(j) = &journal {
            apply_to(&self.shared.config, &mut fresh, &j.events)?;
        }
        fresh.journal = journal;
        // The drift detector watches this replica's traffic: its running averages stay.
        fresh.detector = std::mem::take(&mut state.detector);
        *state = fresh;
        Ok(())
    }

    /// A 64-bit fingerprint of everything two replicas must share for their states to be
    /// exchanged: the kind, the configuration (the greedy flag aside), the models with their
    /// prices, the embedding model and dimension, and the fitted projection or clusters.
    ///
    /// # Errors
    ///
    /// As [`BanditRouter::start_journal`].
    pub fn fingerprint(&self) -> Result<u64> {
        let fixed = self.read().learned.fixed_parts()?;
        let config = tagged_json(L::KIND, &L::with_greedy(&self.shared.config, false));
        let pool = serde_json::to_string(&self.shared.pool).expect("pools serialise to JSON");
        let mut h = hash_bytes(0, config.as_bytes());
        h = hash_bytes(h, pool.as_bytes());
        h = hash_bytes(h, self.shared.dim.to_string().as_bytes());
        h = hash_bytes(
            h,
            self.shared
                .embedding_model
                .as_deref()
                .unwrap_or("")
                .as_bytes(),
        );
        Ok(crate::rng::hash_f32s(h, &fixed))
    }
}

/// Applies `events` to `state` (checked beforehand): each run of observations between wiped
/// models as one batch ([`Learned::observe_keys`]).
fn apply_to<L: Learned>(
    config: &L::Config,
    state: &mut super::router::State<L>,
    events: &[Event],
) -> Result<()> {
    // A run of observations: learned as one batch, then counted.
    fn flush<L: Learned>(
        config: &L::Config,
        state: &mut super::router::State<L>,
        run: &[Event],
    ) -> Result<()> {
        let batch: Vec<(&[f32], usize, f64)> = run
            .iter()
            .filter_map(|e| match e {
                Event::Observe {
                    model,
                    key,
                    quality,
                    ..
                } => Some((key.as_slice(), *model as usize, *quality)),
                Event::Forget { .. } => None,
            })
            .collect();
        state.learned.observe_keys(config, &batch)?;
        for e in run {
            if let Event::Observe {
                model, price, cost, ..
            } = e
            {
                let m = *model as usize;
                state.pulls[m] += 1;
                state.observations += 1;
                let c = &mut state.cost[m];
                c[0] += 1.0;
                c[1] += price;
                c[2] += cost;
            }
        }
        Ok(())
    }
    let mut start = 0;
    for (i, e) in events.iter().enumerate() {
        if let Event::Forget { model } = e {
            flush(config, state, &events[start..i])?;
            let m = *model as usize;
            state.learned.forget(config, m);
            state.forgets[m] += 1;
            start = i + 1;
        }
    }
    flush(config, state, &events[start..])
}

/// A 64-bit hash of `seed` and `bytes` (eight bytes at a time through the SplitMix64 mixer).
fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = mix64(seed ^ 0x243F_6A88_85A3_08D3 ^ bytes.len() as u64);
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = mix64(h ^ u64::from_le_bytes(word));
    }
    h
}
