//! [`PolicyConfig`]: the whole policy as one document, read from JSON or TOML (by the file's
//! extension: `.toml` is TOML, anything else JSON). Unknown keys are refused, so a typo is an
//! error rather than a setting silently ignored. The reference is `docs/policies.md`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::budget::{BudgetConfig, PacingConfig};
use super::caps::{Caps, Weights};
use super::guard::{GuardAction, GuardConfig, GuardSource};
use super::rules::Rule;
use super::sticky::StickyConfig;
use crate::error::{Error, Result};

/// The version of the policy file format this build reads and writes.
pub const POLICY_FORMAT_VERSION: u32 = 1;

fn default_version() -> u32 {
    POLICY_FORMAT_VERSION
}

/// A decision-time policy: rules, caps and weights, budgets, stickiness and a guard.
///
/// # Example
///
/// ```
/// use pointsman::policy::PolicyConfig;
/// let config = PolicyConfig::from_toml(r#"
/// cost_weight = 100
/// [caps]
/// max_latency_s = 2.0
/// [[rules]]
/// name = "code"
/// when = { keywords = ["python", "rust"] }
/// then = { exclude = ["codegemma-7b"] }
/// [[budgets]]
/// key = "tenant"
/// limit_usd = 200
/// window = { kind = "rolling", seconds = 86400 }
/// [sticky]
/// margin = 0.05
/// "#, "policy.toml")?;
/// assert_eq!(config.rules[0].name, "code");
/// # Ok::<(), pointsman::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The format version (1).
    #[serde(default = "default_version")]
    pub version: u32,
    /// The base cost weight, quality points per USD (default: the request's, else 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_weight: Option<f64>,
    /// Weights of latency and energy.
    #[serde(default)]
    pub weights: Weights,
    /// Hard caps.
    #[serde(default)]
    pub caps: Caps,
    /// Ordered rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// Spend budgets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<BudgetConfig>,
    /// Stickiness (absent: sessions are not kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<StickyConfig>,
    /// The out-of-distribution guard (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<GuardConfig>,
    /// The budget controller's curve.
    #[serde(default)]
    pub pacing: PacingConfig,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            version: POLICY_FORMAT_VERSION,
            cost_weight: None,
            weights: Weights::default(),
            caps: Caps::default(),
            rules: Vec::new(),
            budgets: Vec::new(),
            sticky: None,
            guard: None,
            pacing: PacingConfig::default(),
        }
    }
}

impl PolicyConfig {
    /// Checks every value (the rules' model ids are checked against a pool when the policy is
    /// bound to a router).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first value out of range; [`Error::UnsupportedVersion`]
    /// for a newer format version.
    pub fn validate(&self) -> Result<()> {
        if self.version != POLICY_FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                path: "policy".into(),
                found: self.version.to_string(),
                supported: POLICY_FORMAT_VERSION.to_string(),
            });
        }
        if let Some(w) = self.cost_weight {
            if !w.is_finite() || w < 0.0 {
                return Err(Error::Config(format!(
                    "cost_weight {w} is not a non-negative number"
                )));
            }
        }
        self.weights.validate()?;
        self.caps.validate()?;
        for (i, b) in self.budgets.iter().enumerate() {
            b.validate()?;
            // Budgets count spend under their key (`tenant:acme`): two on one key would each
            // add every call's cost to the same counters, and one's window would drop the
            // other's buckets.
            if self.budgets[..i].iter().any(|o| o.key == b.key) {
                return Err(Error::Config(format!(
                    "budgets: two budgets on the {} key share its spend counters (each would \
                     count every call): keep one budget per key",
                    b.key.name()
                )));
            }
        }
        if let Some(s) = &self.sticky {
            s.validate()?;
        }
        if let Some(g) = &self.guard {
            if g.threshold.is_some_and(|t| !t.is_finite()) {
                return Err(Error::Config("guard.threshold is not a number".into()));
            }
            if g.source == GuardSource::Router
                && g.threshold.is_some_and(|t| !(0.0..=1.0).contains(&t))
            {
                return Err(Error::Config(format!(
                    "guard.threshold {} is outside [0, 1], the range of the router's signal \
                     (a share of training queries): it would fire always or never",
                    g.threshold.unwrap_or_default()
                )));
            }
            if g.source == GuardSource::Router && g.file.is_some() {
                return Err(Error::Config(
                    "guard.file is for source \"embeddings\", not \"router\"".into(),
                ));
            }
            if let GuardAction::Fallback(m) = &g.action {
                if m.trim().is_empty() {
                    return Err(Error::Config("guard fallback model is empty".into()));
                }
            }
        }
        let mut names = std::collections::HashSet::new();
        for r in &self.rules {
            r.check()?;
            if !names.insert(r.name.as_str()) {
                return Err(Error::Config(format!(
                    "rule name {:?} appears twice",
                    r.name
                )));
            }
        }
        self.pacing.validate()
    }

    /// Parses and checks a policy in JSON; `what` names the source in errors.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] for malformed JSON or unknown keys; the errors of
    /// [`PolicyConfig::validate`].
    pub fn from_json(text: &str, what: &str) -> Result<PolicyConfig> {
        let text = crate::data::json::strip_bom(text);
        // serde reads a struct from a sequence too: `[]` would be an empty policy.
        if !text.trim_start().starts_with('{') {
            return Err(Error::format(what, "a policy is a JSON object ({...})"));
        }
        // serde refuses a repeated field of the policy itself, but keeps the last of a map's
        // repeated keys (a rule's `metadata`: one condition would be lost).
        crate::data::json::check_unique_keys(text)
            .map_err(|e| Error::format(what, e.to_string()))?;
        let c: PolicyConfig =
            serde_json::from_str(text).map_err(|e| Error::format(what, e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// Parses and checks a policy in TOML; `what` names the source in errors.
    ///
    /// # Errors
    ///
    /// As [`PolicyConfig::from_json`].
    pub fn from_toml(text: &str, what: &str) -> Result<PolicyConfig> {
        let c: PolicyConfig =
            toml::from_str(text).map_err(|e| Error::format(what, e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// Reads a policy file: TOML for `.toml`, else JSON.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path; the errors of [`PolicyConfig::from_json`].
    pub fn load(path: &Path) -> Result<PolicyConfig> {
        let text = crate::files::read_regular_to_string(path)?;
        let what = path.display().to_string();
        if is_toml(path) {
            PolicyConfig::from_toml(&text, &what)
        } else {
            PolicyConfig::from_json(&text, &what)
        }
    }

    /// The policy as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a policy always serialises")
    }

    /// The policy as TOML.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] if a value has no TOML form.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::format("policy", e.to_string()))
    }

    /// Writes the policy atomically, TOML for `.toml`, else JSON.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = if is_toml(path) {
            self.to_toml()?
        } else {
            // A text file ends with a newline.
            self.to_json() + "\n"
        };
        crate::files::write_atomic(path, text.as_bytes())
    }
}

fn is_toml(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_toml_round_trip() {
        let c = PolicyConfig::from_json(
            r#"{"cost_weight": 50, "caps": {"max_cost": 0.01},
                "rules": [{"name": "r", "when": {"task": ["math"]}, "then": {"cost_weight": 0}}],
                "budgets": [{"key": "tenant", "limit_usd": 10, "window": {"kind": "total", "requests": 100}}],
                "sticky": {"margin": 0.1},
                "guard": {"source": "router", "action": {"fallback": "big"}}}"#,
            "p.json",
        )
        .unwrap();
        assert_eq!(c.budgets[0].stop_margin, 1.0);
        assert_eq!(PolicyConfig::from_json(&c.to_json(), "x").unwrap(), c);
        assert_eq!(
            PolicyConfig::from_toml(&c.to_toml().unwrap(), "x").unwrap(),
            c
        );
        let dir = tempfile::tempdir().unwrap();
        for name in ["p.toml", "p.json"] {
            let path = dir.path().join(name);
            c.save(&path).unwrap();
            assert_eq!(PolicyConfig::load(&path).unwrap(), c);
        }
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        let e = PolicyConfig::from_json(r#"{"cost_wieght": 1}"#, "p.json").unwrap_err();
        assert!(e.to_string().starts_with("p.json: unknown field"), "{e}");
        let e = PolicyConfig::from_json(r#"{"version": 2}"#, "p.json").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::UnsupportedVersion);
        let e = PolicyConfig::from_json(r#"{"caps": {"max_cost": -1}}"#, "p").unwrap_err();
        assert!(e.to_string().contains("caps.max_cost -1"), "{e}");
        let e = PolicyConfig::from_json(r#"{"rules": [{"name": "a"}, {"name": "a"}]}"#, "p")
            .unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
    }
}
