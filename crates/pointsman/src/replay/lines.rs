//! `replay.jsonl`: one line per router and step, and the runs rebuilt from it.

use serde::{Deserialize, Serialize};

use super::{Run, Stream};
use crate::error::{Error, Result};

/// One line of `replay.jsonl`: the model a router chose at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayLine {
    /// The router's name.
    pub router: String,
    /// The step (0-based).
    pub t: usize,
    /// The query's id.
    pub id: String,
    /// The chosen model's id.
    pub model: String,
}

impl ReplayLine {
    /// The line as written to `replay.jsonl`, with the field order and spacing the format
    /// specifies: `{"router": "<name>", "t": <step>, "id": "<query id>", "model": "<model id>"}`.
    pub fn to_json(&self) -> String {
        let quote = |s: &str| serde_json::Value::from(s).to_string();
        format!(
            "{{\"router\": {}, \"t\": {}, \"id\": {}, \"model\": {}}}",
            quote(&self.router),
            self.t,
            quote(&self.id),
            quote(&self.model)
        )
    }
}

/// The lines of a run.
pub fn lines<'a>(
    name: &'a str,
    run: &'a Run,
    stream: &'a Stream,
) -> impl Iterator<Item = ReplayLine> + 'a {
    run.choices
        .iter()
        .enumerate()
        .map(move |(t, &m)| ReplayLine {
            router: name.to_string(),
            t,
            id: stream.ids[t].clone(),
            model: stream.pool.id(m as usize).to_string(),
        })
}

/// Rebuilds runs (choices only) from replay lines and the stream they were made on, grouped by
/// router in order of first appearance.
///
/// # Errors
///
/// [`Error::InvalidInput`] naming the router and step of a line whose query id differs from
/// the stream's at that step, a repeated or missing step; [`Error::UnknownModel`].
pub fn runs_from_lines(
    stream: &Stream,
    lines: impl IntoIterator<Item = ReplayLine>,
) -> Result<Vec<(String, Run)>> {
    let mut runs: Vec<(String, Vec<Option<u32>>)> = Vec::new();
    for line in lines {
        let pos = match runs.iter().position(|(n, _)| *n == line.router) {
            Some(p) => p,
            None => {
                runs.push((line.router.clone(), vec![None; stream.len()]));
                runs.len() - 1
            }
        };
        let slot = runs[pos].1.get_mut(line.t).ok_or_else(|| {
            Error::InvalidInput(format!(
                "{}: step {} is beyond the stream's {} steps",
                line.router,
                line.t,
                stream.len()
            ))
        })?;
        if stream.ids[line.t] != line.id {
            return Err(Error::InvalidInput(format!(
                "{} step {}: query {:?}, the stream has {:?} (another seed?)",
                line.router, line.t, line.id, stream.ids[line.t]
            )));
        }
        if slot
            .replace(stream.pool.index_of(&line.model)? as u32)
            .is_some()
        {
            return Err(Error::InvalidInput(format!(
                "{} step {} appears twice",
                line.router, line.t
            )));
        }
    }
    runs.into_iter()
        .map(|(name, choices)| {
            let choices = choices
                .into_iter()
                .enumerate()
                .map(|(t, c)| {
                    c.ok_or_else(|| Error::InvalidInput(format!("{name}: no choice at step {t}")))
                })
                .collect::<Result<Vec<u32>>>()?;
            Ok((
                name,
                Run {
                    choices,
                    alarms: Vec::new(),
                    seconds: 0.0,
                },
            ))
        })
        .collect()
}
