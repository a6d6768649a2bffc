//! [`RouterConfig`]: every kind's config, tagged by kind, and how it is parsed and printed.

use serde::{Deserialize, Serialize};

use super::{Family, RouterKind};
use crate::error::{Error, Result};
use crate::routers::bandit::{ClusterUcbConfig, KnnUcbConfig, LinearConfig};
use crate::routers::baseline::Baseline;
use crate::routers::cascade::CascadeConfig;
use crate::routers::irt::IrtConfig;
use crate::routers::knn::KnnConfig;
use crate::routers::mf::MfConfig;
use crate::routers::stack::StackConfig;

/// A router's configuration, tagged by kind: what a saved file holds (`{"type": "knn", …}`) and
/// what [`AnyRouter::fit_config`] fits.
///
/// [`AnyRouter::fit_config`]: crate::AnyRouter::fit_config
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RouterConfig {
    /// A baseline (its rule is a second tag, `"rule"`).
    Baseline(Baseline),
    /// A kNN router.
    Knn(KnnConfig),
    /// A matrix-factorisation router.
    Mf(MfConfig),
    /// An item-response-theory router.
    Irt(IrtConfig),
    /// A stack of routers.
    Stack(StackConfig),
    /// A LinUCB bandit.
    Linucb(LinearConfig),
    /// A linear Thompson-sampling bandit.
    Thompson(LinearConfig),
    /// A neighbourhood (kNN-UCB) bandit.
    KnnUcb(KnnUcbConfig),
    /// A cluster bandit with an additive prior.
    ClusterUcb(ClusterUcbConfig),
    /// A cascade.
    Cascade(CascadeConfig),
}

impl RouterConfig {
    /// The kind this config makes.
    pub fn kind(&self) -> RouterKind {
        match self {
            RouterConfig::Baseline(b) => b.kind(),
            RouterConfig::Knn(_) => RouterKind::Knn,
            RouterConfig::Mf(_) => RouterKind::Mf,
            RouterConfig::Irt(_) => RouterKind::Irt,
            RouterConfig::Stack(_) => RouterKind::Stack,
            RouterConfig::Linucb(_) => RouterKind::Linucb,
            RouterConfig::Thompson(_) => RouterKind::Thompson,
            RouterConfig::KnnUcb(_) => RouterKind::KnnUcb,
            RouterConfig::ClusterUcb(_) => RouterKind::ClusterUcb,
            RouterConfig::Cascade(_) => RouterKind::Cascade,
        }
    }

    /// The default configuration of `kind`, with `seed` for every kind whose config has one
    /// (random draws, training shuffles, projections).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for `fixed`, which needs a model (`fixed:<model id>`).
    pub fn default_for(kind: RouterKind, seed: u64) -> Result<RouterConfig> {
        let config = match kind.family() {
            crate::kind::Family::Baseline => RouterConfig::Baseline(
                Baseline::of(kind, seed).ok_or_else(|| fixed_needs_a_model(kind))?,
            ),
            _ => match kind {
                RouterKind::Knn => RouterConfig::Knn(KnnConfig::default()),
                RouterKind::Mf => RouterConfig::Mf(MfConfig::default()),
                RouterKind::Irt => RouterConfig::Irt(IrtConfig::default()),
                RouterKind::Stack => RouterConfig::Stack(StackConfig::default()),
                RouterKind::Linucb => RouterConfig::Linucb(LinearConfig::default()),
                RouterKind::Thompson => RouterConfig::Thompson(LinearConfig::thompson()),
                RouterKind::KnnUcb => RouterConfig::KnnUcb(KnnUcbConfig::default()),
                RouterKind::ClusterUcb => RouterConfig::ClusterUcb(ClusterUcbConfig::default()),
                _ => RouterConfig::Cascade(CascadeConfig::default()),
            },
        };
        // Every kind whose config has a seed takes the caller's.
        let mut value = config.to_value();
        match value.get_mut("seed") {
            Some(s) => *s = seed.into(),
            None => return Ok(config),
        }
        Ok(serde_json::from_value(value).expect("a config with its seed replaced parses"))
    }

    /// A configuration of `kind` from a JSON object of its fields: fields not given keep the
    /// kind's defaults ([`RouterConfig::default_for`], with `seed`).
    /// The object may carry the kind's own `"type"` tag (as saved files and
    /// [`RouterConfig::to_json`] write it).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for JSON that is not an object, a tag of another kind, an unknown field
    /// or a value of the wrong type, naming it.
    ///
    /// # Example
    ///
    /// ```
    /// use pointsman::registry::{RouterConfig, RouterKind};
    /// let c = RouterConfig::parse(RouterKind::Knn, r#"{"k": 50, "same_task": true}"#, 0)?;
    /// assert_eq!(c.kind(), RouterKind::Knn);
    /// assert!(RouterConfig::parse(RouterKind::Knn, r#"{"kk": 50}"#, 0).is_err());
    /// # Ok::<(), pointsman::Error>(())
    /// ```
    pub fn parse(kind: RouterKind, json: &str, seed: u64) -> Result<RouterConfig> {
        let bad = |m: String| Error::Config(format!("{kind} config: {m}"));
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| bad(format!("not JSON: {e}")))?;
        let serde_json::Value::Object(mut fields) = value else {
            return Err(bad(format!("{json} is not a JSON object")));
        };
        let tag = kind_tag(kind);
        if let Some(t) = fields.remove("type") {
            if t.as_str() != Some(tag) {
                return Err(bad(format!("\"type\" is {t}, not {tag:?}")));
            }
        }
        if kind.family() == crate::kind::Family::Baseline {
            if let Some(r) = fields.remove("rule") {
                if r.as_str() != Some(kind.name()) {
                    return Err(bad(format!("\"rule\" is {r}, not {:?}", kind.name())));
                }
            }
        }
        // Start from the kind's defaults (with the caller's seed); the fields given replace them.
        let mut value = match RouterConfig::default_for(kind, seed) {
            Ok(d) => d.to_value(),
            Err(_) => serde_json::json!({}),
        };
        let object = value.as_object_mut().expect("configs are JSON objects");
        object.extend(fields);
        object.insert("type".into(), tag.into());
        if kind.family() == crate::kind::Family::Baseline {
            object.insert("rule".into(), kind.name().into());
        }
        let config: RouterConfig = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        Ok(config)
    }

    /// The configuration as a JSON value, tagged by kind.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("router configs serialise to JSON")
    }

    /// The configuration's own fields as a JSON object, without the kind's tags: what
    /// `pointsman train --router <kind> --config` accepts.
    pub fn to_json(&self) -> String {
        let mut v = self.to_value();
        if let Some(o) = v.as_object_mut() {
            o.remove("type");
            if self.kind().family() == crate::kind::Family::Baseline {
                o.remove("rule");
            }
        }
        v.to_string()
    }
}

impl RouterConfig {
    /// The fields that differ from the kind's defaults, as a JSON object: a short form that
    /// `pointsman train --config` (and [`RouterConfig::parse`]) turns back into this config.
    pub fn changes(&self) -> String {
        let kind = self.kind();
        let mine = self.to_value();
        let seed = mine
            .get("seed")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let base = RouterConfig::default_for(kind, seed).map(|d| d.to_value());
        let mut out = serde_json::Map::new();
        if let Some(fields) = mine.as_object() {
            for (k, v) in fields {
                let tag = k == "type" || (kind.family() == Family::Baseline && k == "rule");
                let default = base.as_ref().ok().and_then(|b| b.get(k));
                if !tag && default != Some(v) {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        serde_json::Value::Object(out).to_string()
    }
}

/// The `"type"` tag under which a kind's config is saved.
pub(super) fn kind_tag(kind: RouterKind) -> &'static str {
    if kind.family() == crate::kind::Family::Baseline {
        RouterKind::BASELINE_TAG
    } else {
        kind.name()
    }
}

pub(super) fn fixed_needs_a_model(kind: RouterKind) -> Error {
    Error::Config(format!(
        "the {kind} baseline needs a model: name it {kind}:<model id>"
    ))
}
