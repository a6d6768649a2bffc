//! Prometheus metrics (`GET /metrics`, OpenMetrics text through `prometheus-client`). Every
//! family is listed with its labels in `docs/gateway.md`.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of `pointsman_requests`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `routed` or `passthrough` (`invalid` when the request could not be parsed).
    pub route: &'static str,
    /// The HTTP status returned.
    pub status: u16,
    /// The tenant (`none` without one, `other` past `metrics.max_tenants`).
    pub tenant: String,
}

/// Labels of per-model families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    /// The model id.
    pub model: String,
}

/// Labels of `pointsman_decisions`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// The chosen model.
    pub model: String,
    /// The policy.
    pub policy: String,
}

/// Labels of `pointsman_upstream_errors`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The upstream model id.
    pub model: String,
    /// The failure: `connect`, `timeout`, `status`, `rate_limited`, `malformed`,
    /// `stream_error`.
    pub kind: &'static str,
}

/// Labels of outcome counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `ok` or `error`.
    pub outcome: &'static str,
}

/// Labels of `pointsman_session_requests`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    /// The tenant.
    pub tenant: String,
}

/// Labels of `pointsman_share`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShareLabels {
    /// Which counter of the exchange's statistics.
    pub counter: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs to about 105 s.
    Histogram::new(exponential_buckets(1e-4, 2.0, 21))
}

/// Every metric of the gateway.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Chat requests answered.
    pub requests: Family<RequestLabels, Counter>,
    /// Routing decisions per chosen model.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Failed upstream calls.
    pub upstream_errors: Family<ErrorLabels, Counter>,
    /// Fallbacks away from a model.
    pub fallbacks: Family<ModelLabels, Counter>,
    /// Budget refusals (402).
    pub budget_exhausted: Counter,
    /// Embedding + routing step, seconds.
    pub routing_seconds: Histogram,
    /// Embedding alone, seconds.
    pub embed_seconds: Histogram,
    /// Upstream call to its answer (non-streaming) or first event (streaming), per model.
    pub upstream_seconds: HistogramFamily<ModelLabels>,
    /// 1 while a model's circuit is open.
    pub circuit_open: Family<ModelLabels, Gauge>,
    /// Times a model's circuit opened.
    pub circuit_opened: Family<ModelLabels, Counter>,
    /// Requests in flight.
    pub in_flight: Gauge,
    /// USD spent per model, from usage.
    pub cost_usd: Family<ModelLabels, Counter<f64, AtomicU64>>,
    /// Feedback calls by outcome.
    pub feedback: Family<OutcomeLabels, Counter>,
    /// The learner's observation count (0 for routers that do not learn).
    pub learner_observations: Gauge,
    /// Learner state saves by outcome.
    pub learner_saves: Family<OutcomeLabels, Counter>,
    /// Router reloads by outcome.
    pub reloads: Family<OutcomeLabels, Counter>,
    /// Requests that carried a session id, per tenant.
    pub session_requests: Family<TenantLabels, Counter>,
    /// The learner's exchange with other replicas (`[learning.share]`), by counter: set from
    /// its statistics at each scrape.
    pub share: Family<ShareLabels, Gauge>,
    tenants: Mutex<HashSet<String>>,
    max_tenants: usize,
}

impl Metrics {
    /// Registers every family; at most `max_tenants` tenants get their own label value.
    pub fn new(max_tenants: usize) -> Metrics {
        let mut registry = Registry::with_prefix("pointsman");
        let m = Metrics {
            requests: Family::default(),
            decisions: Family::default(),
            upstream_errors: Family::default(),
            fallbacks: Family::default(),
            budget_exhausted: Counter::default(),
            routing_seconds: latency_histogram(),
            embed_seconds: latency_histogram(),
            upstream_seconds: Family::new_with_constructor(latency_histogram),
            circuit_open: Family::default(),
            circuit_opened: Family::default(),
            in_flight: Gauge::default(),
            cost_usd: Family::default(),
            feedback: Family::default(),
            learner_observations: Gauge::default(),
            learner_saves: Family::default(),
            reloads: Family::default(),
            session_requests: Family::default(),
            share: Family::default(),
            tenants: Mutex::new(HashSet::new()),
            max_tenants,
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "requests",
            "Chat completion requests answered",
            m.requests.clone(),
        );
        r.register(
            "decisions",
            "Routing decisions per chosen model and policy",
            m.decisions.clone(),
        );
        r.register(
            "upstream_errors",
            "Failed upstream calls per model and kind",
            m.upstream_errors.clone(),
        );
        r.register(
            "fallbacks",
            "Fallbacks away from a failed model",
            m.fallbacks.clone(),
        );
        r.register(
            "budget_exhausted",
            "Requests refused with 402: no allowed model within the maximum cost",
            m.budget_exhausted.clone(),
        );
        r.register(
            "routing_seconds",
            "Embedding plus routing decision, seconds",
            m.routing_seconds.clone(),
        );
        r.register(
            "embed_seconds",
            "Embedding the routed text, seconds",
            m.embed_seconds.clone(),
        );
        r.register(
            "upstream_seconds",
            "Upstream call to its answer (streams: first event), seconds",
            m.upstream_seconds.clone(),
        );
        r.register(
            "upstream_circuit_open",
            "1 while the model's circuit breaker skips it",
            m.circuit_open.clone(),
        );
        r.register(
            "upstream_circuit_opened",
            "Times the model's circuit breaker opened",
            m.circuit_opened.clone(),
        );
        r.register(
            "in_flight_requests",
            "Requests being served",
            m.in_flight.clone(),
        );
        r.register(
            "cost_usd",
            "USD spent per model, from the upstreams' usage and the configured prices",
            m.cost_usd.clone(),
        );
        r.register("feedback", "Feedback calls by outcome", m.feedback.clone());
        r.register(
            "learner_observations",
            "Observations the online learner has learned from",
            m.learner_observations.clone(),
        );
        r.register(
            "learner_saves",
            "Saves of the learner's state by outcome",
            m.learner_saves.clone(),
        );
        r.register("reloads", "Router reloads by outcome", m.reloads.clone());
        r.register(
            "session_requests",
            "Requests that carried a session id, per tenant",
            m.session_requests.clone(),
        );
        r.register(
            "share",
            "The learner's exchange through Redis ([learning.share]): syncs, failures, \
             published and applied observations, rejected increments, unpublished increments",
            m.share.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Sets the `share` gauges from the exchange's statistics.
    pub fn set_share(&self, s: &pointsman::share::ShareStats) {
        for (counter, value) in [
            ("syncs", s.syncs),
            ("failures", s.failures),
            ("published_observations", s.published_observations),
            ("applied_observations", s.applied_observations),
            ("rejected", s.rejected),
            ("unpublished", s.unpublished),
            ("dropped_observations", s.dropped_observations),
            ("rejoins", s.rejoins),
        ] {
            self.share
                .get_or_create(&ShareLabels {
                    counter: counter.to_string(),
                })
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
    }

    /// The label value of `tenant`: itself for the first `max_tenants` seen, then `other`.
    pub fn tenant_label(&self, tenant: Option<&str>) -> String {
        let Some(t) = tenant else {
            return "none".into();
        };
        let mut seen = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(t) {
            return t.to_string();
        }
        if seen.len() < self.max_tenants {
            seen.insert(t.to_string());
            return t.to_string();
        }
        "other".into()
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_tenants() {
        let m = Metrics::new(1);
        assert_eq!(m.tenant_label(Some("a")), "a");
        assert_eq!(m.tenant_label(Some("b")), "other");
        assert_eq!(m.tenant_label(Some("a")), "a");
        assert_eq!(m.tenant_label(None), "none");
        m.requests
            .get_or_create(&RequestLabels {
                route: "routed",
                status: 200,
                tenant: "a".into(),
            })
            .inc();
        m.upstream_seconds
            .get_or_create(&ModelLabels { model: "x".into() })
            .observe(0.01);
        let text = m.encode();
        assert!(
            text.contains(
                "pointsman_requests_total{route=\"routed\",status=\"200\",tenant=\"a\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("pointsman_upstream_seconds_bucket{le="),
            "{text}"
        );
    }
}
