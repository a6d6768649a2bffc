//! Ordered rules: a condition on the request (prompt length, keywords, regular expressions, task
//! tag, tenant, metadata) and an action (restrict or exclude models, force a model, set the cost
//! weight). The first rule that matches acts and ends the evaluation unless it says
//! `continue`; every rule that acted is named in the decision's audit.
//!
//! Conditions on the text apply only where the text is given (the text-routing calls); a rule
//! with a text condition never matches a request that carries features alone, so metadata rules
//! (task tag, tenant, prompt tokens, metadata) keep working for callers without text.
//!
//! Keywords are matched case-insensitively as substrings; regular expressions use the `regex`
//! crate's syntax (linear time in the text, no back-references), compiled once when the policy
//! is built.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pool::ModelPool;

/// One rule: when its conditions all hold, its action applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The rule's name, reported in the audit.
    pub name: String,
    /// Conditions, all of which must hold (an empty condition always holds).
    #[serde(default)]
    pub when: Condition,
    /// What the rule does.
    #[serde(default)]
    pub then: Action,
    /// Whether later rules are still evaluated after this one matched (default false: the first
    /// match wins).
    #[serde(default, rename = "continue")]
    pub continue_: bool,
}

/// The conditions of a [`Rule`]; unset ones are not checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Condition {
    /// The prompt has at least this many tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_prompt_tokens: Option<f64>,
    /// The prompt has at most this many tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_prompt_tokens: Option<f64>,
    /// The text contains one of these (case-insensitive). Needs the text.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "non_empty_keywords"
    )]
    pub keywords: Vec<String>,
    /// The text matches one of these regular expressions. Needs the text.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "non_empty_regex"
    )]
    pub regex: Vec<String>,
    /// The request's task tag is one of these.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "non_empty_task"
    )]
    pub task: Vec<String>,
    /// The request's tenant is one of these.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "non_empty_tenant"
    )]
    pub tenant: Vec<String>,
    /// The request's metadata has each of these keys with the value given.
    #[serde(
        skip_serializing_if = "std::collections::BTreeMap::is_empty",
        deserialize_with = "non_empty_metadata"
    )]
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// A condition's list or table as written, refused when empty: "one of none" would match no
/// request, and a leftover `tenant = []` read as "unset" would apply its rule to every request.
fn non_empty<'de, D, T>(d: D, field: &str) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + IntoIterator + Clone,
{
    let value = T::deserialize(d)?;
    if value.clone().into_iter().next().is_none() {
        return Err(serde::de::Error::custom(format!(
            "{field}: an empty list or table in a rule's condition would match no request: \
             leave the condition out, or name what it matches"
        )));
    }
    Ok(value)
}

/// [`non_empty`] for each field (serde's errors do not say which field they came from).
macro_rules! non_empty_field {
    ($($f:ident: $name:literal),*) => {$(
        fn $f<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
        where
            D: serde::Deserializer<'de>,
            T: Deserialize<'de> + IntoIterator + Clone,
        {
            non_empty(d, $name)
        }
    )*};
}

non_empty_field!(
    non_empty_keywords: "keywords",
    non_empty_regex: "regex",
    non_empty_task: "task",
    non_empty_tenant: "tenant",
    non_empty_metadata: "metadata"
);

/// What a matching [`Rule`] does; several fields may be set at once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Action {
    /// Only these models may be chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// These models may not be chosen.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// This model is chosen (if the caps and capabilities let it; else the request is refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force: Option<String>,
    /// The cost weight, quality points per USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_weight: Option<f64>,
}

/// What the request offers the rules to match on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts<'a> {
    pub text: Option<&'a str>,
    pub prompt_tokens: Option<f64>,
    pub task: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub metadata: &'a [(String, String)],
}

/// A rule ready to match: lower-cased keywords, compiled expressions, resolved model indices.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub name: String,
    when: Condition,
    keywords: Vec<String>,
    regex: Option<regex::RegexSet>,
    pub allow: Option<Vec<usize>>,
    pub exclude: Vec<usize>,
    pub force: Option<usize>,
    pub cost_weight: Option<f64>,
    pub continue_: bool,
}

impl Rule {
    /// Checks what the rule says without a pool (its model ids are checked when the policy is
    /// bound to a router): its name, numbers, keywords and regular expressions.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the rule and what is wrong.
    pub fn check(&self) -> Result<()> {
        self.checked_regex().map(|_| ())
    }

    /// [`Rule::check`], returning the compiled regular expressions.
    fn checked_regex(&self) -> Result<Option<regex::RegexSet>> {
        let bad = |m: String| Error::Config(format!("rule {:?}: {m}", self.name));
        if self.name.trim().is_empty() {
            return Err(Error::Config("a rule needs a name".into()));
        }
        if self.then.allow.as_ref().is_some_and(Vec::is_empty) {
            return Err(bad("allow is empty".into()));
        }
        if let Some(w) = self.then.cost_weight {
            if !w.is_finite() || w < 0.0 {
                return Err(bad(format!("cost_weight {w} is not a non-negative number")));
            }
        }
        for (field, v) in [
            ("min_prompt_tokens", self.when.min_prompt_tokens),
            ("max_prompt_tokens", self.when.max_prompt_tokens),
        ] {
            if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
                return Err(bad(format!("{field} is not a non-negative number")));
            }
        }
        if let (Some(min), Some(max)) = (self.when.min_prompt_tokens, self.when.max_prompt_tokens) {
            if min > max {
                return Err(bad(format!(
                    "min_prompt_tokens {min} is above max_prompt_tokens {max}: no prompt matches"
                )));
            }
        }
        if self.when.keywords.iter().any(|k| k.is_empty()) {
            return Err(bad(
                "keywords holds an empty string, which every text contains".into(),
            ));
        }
        if self.when.regex.is_empty() {
            return Ok(None);
        }
        regex::RegexSet::new(&self.when.regex)
            .map(Some)
            .map_err(|e| bad(format!("bad regular expression: {e}")))
    }

    /// Checks the rule and compiles it against `pool`.
    pub(crate) fn compile(&self, pool: &ModelPool) -> Result<CompiledRule> {
        let regex = self.checked_regex()?;
        let bad = |m: String| Error::Config(format!("rule {:?}: {m}", self.name));
        let index = |id: &String, field: &str| {
            pool.index_of(id)
                .map_err(|_| bad(format!("{field} names {id:?}, which is not in the pool")))
        };
        let allow = match &self.then.allow {
            None => None,
            Some(ids) => Some(
                ids.iter()
                    .map(|id| index(id, "allow"))
                    .collect::<Result<Vec<_>>>()?,
            ),
        };
        let exclude = self
            .then
            .exclude
            .iter()
            .map(|id| index(id, "exclude"))
            .collect::<Result<Vec<_>>>()?;
        let force = self
            .then
            .force
            .as_ref()
            .map(|id| index(id, "force"))
            .transpose()?;
        Ok(CompiledRule {
            name: self.name.clone(),
            keywords: self
                .when
                .keywords
                .iter()
                .map(|k| k.to_lowercase())
                .collect(),
            when: self.when.clone(),
            regex,
            allow,
            exclude,
            force,
            cost_weight: self.then.cost_weight,
            continue_: self.continue_,
        })
    }
}

impl CompiledRule {
    /// Whether every condition holds for `facts`; `lower` is the text lower-cased, computed by
    /// the caller once for all rules when some rule has keywords.
    pub(crate) fn matches(&self, facts: &Facts<'_>, lower: Option<&str>) -> bool {
        let w = &self.when;
        if let Some(min) = w.min_prompt_tokens {
            if facts.prompt_tokens.is_none_or(|t| t < min) {
                return false;
            }
        }
        if let Some(max) = w.max_prompt_tokens {
            if facts.prompt_tokens.is_none_or(|t| t > max) {
                return false;
            }
        }
        if !w.task.is_empty() && !facts.task.is_some_and(|t| w.task.iter().any(|x| x == t)) {
            return false;
        }
        if !w.tenant.is_empty()
            && !facts
                .tenant
                .is_some_and(|t| w.tenant.iter().any(|x| x == t))
        {
            return false;
        }
        for (k, v) in &w.metadata {
            if !facts.metadata.iter().any(|(mk, mv)| mk == k && mv == v) {
                return false;
            }
        }
        if !self.keywords.is_empty() {
            match lower {
                Some(text) if self.keywords.iter().any(|k| text.contains(k.as_str())) => {}
                _ => return false,
            }
        }
        if let Some(set) = &self.regex {
            match facts.text {
                Some(text) if set.is_match(text) => {}
                _ => return false,
            }
        }
        true
    }

    pub(crate) fn needs_lowercase(&self) -> bool {
        !self.keywords.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::ModelCard;

    fn pool() -> ModelPool {
        ModelPool::new(vec![
            ModelCard::new("a", 1.0, 1.0),
            ModelCard::new("b", 1.0, 1.0),
        ])
        .unwrap()
    }

    fn facts(text: Option<&str>) -> Facts<'_> {
        Facts {
            text,
            prompt_tokens: Some(100.0),
            task: Some("code"),
            tenant: Some("acme"),
            metadata: &[],
        }
    }

    #[test]
    fn conditions() {
        let rule: Rule = serde_json::from_str(
            r#"{"name": "r", "when": {"keywords": ["Python"], "min_prompt_tokens": 50,
                "task": ["code"]}, "then": {"exclude": ["a"]}}"#,
        )
        .unwrap();
        let c = rule.compile(&pool()).unwrap();
        assert_eq!(c.exclude, [0]);
        let text = "write PYTHON code";
        assert!(c.matches(&facts(Some(text)), Some(&text.to_lowercase())));
        assert!(!c.matches(&facts(Some("java")), Some("java")));
        // A text condition never matches without the text.
        assert!(!c.matches(&facts(None), None));
        let re = Rule {
            name: "re".into(),
            when: Condition {
                regex: vec![r"\bdef \w+\(".into()],
                max_prompt_tokens: Some(200.0),
                ..Default::default()
            },
            then: Action::default(),
            continue_: false,
        }
        .compile(&pool())
        .unwrap();
        assert!(re.matches(&facts(Some("def f(x):")), None));
        assert!(!re.matches(&facts(Some("define")), None));
        let meta = Rule {
            name: "m".into(),
            when: Condition {
                tenant: vec!["acme".into()],
                ..Default::default()
            },
            then: Action::default(),
            continue_: false,
        }
        .compile(&pool())
        .unwrap();
        assert!(meta.matches(&facts(None), None));
    }

    #[test]
    fn bad_rules_name_what_is_wrong() {
        let e = Rule {
            name: "r".into(),
            when: Condition {
                regex: vec!["(".into()],
                ..Default::default()
            },
            then: Action::default(),
            continue_: false,
        }
        .compile(&pool())
        .unwrap_err();
        assert!(
            e.to_string().contains("rule \"r\": bad regular expression"),
            "{e}"
        );
        let e = Rule {
            name: "r".into(),
            when: Condition::default(),
            then: Action {
                force: Some("zz".into()),
                ..Default::default()
            },
            continue_: false,
        }
        .compile(&pool())
        .unwrap_err();
        assert!(e.to_string().contains("force names \"zz\""), "{e}");
        assert!(serde_json::from_str::<Rule>(r#"{"name": "x", "whn": {}}"#).is_err());
        // An empty list or table in a condition is refused, not read as "unset" (which made the
        // rule apply to every request).
        for when in [
            r#"{"tenant": []}"#,
            r#"{"task": []}"#,
            r#"{"keywords": []}"#,
            r#"{"regex": []}"#,
            r#"{"metadata": {}}"#,
        ] {
            let text = format!(r#"{{"name": "x", "when": {when}, "then": {{"exclude": ["a"]}}}}"#);
            let e = serde_json::from_str::<Rule>(&text).unwrap_err();
            let field = when.split('"').nth(1).unwrap();
            assert!(
                e.to_string()
                    .contains(&format!("{field}: an empty list or table")),
                "{when}: {e}"
            );
        }
        // Checked without a pool: an empty keyword, bounds no prompt meets, a bad expression.
        let rule = |when: &str| {
            serde_json::from_str::<Rule>(&format!(r#"{{"name": "x", "when": {when}}}"#))
                .unwrap()
                .check()
                .unwrap_err()
                .to_string()
        };
        assert!(rule(r#"{"keywords": ["py", ""]}"#).contains("every text contains"));
        assert!(
            rule(r#"{"min_prompt_tokens": 100, "max_prompt_tokens": 10}"#)
                .contains("min_prompt_tokens 100 is above max_prompt_tokens 10")
        );
        assert!(rule(r#"{"regex": ["("]}"#).contains("bad regular expression"));
    }
}
