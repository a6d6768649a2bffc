//! [`RouterSpec`]: a router as named on the command line.

use super::config::fixed_needs_a_model;
use super::RouterKind;
use crate::error::{Error, Result};
use crate::pool::ModelPool;

/// A router as named on the command line: a kind, the fixed baseline with its model
/// (`fixed:<model id>`), or a saved router file (`file:<path>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterSpec {
    /// A kind, fitted by [`AnyRouter::fit`].
    ///
    /// [`AnyRouter::fit`]: crate::AnyRouter::fit
    Kind(RouterKind),
    /// The fixed baseline for this model id.
    Fixed(String),
    /// A saved router, loaded by [`AnyRouter::load`].
    ///
    /// [`AnyRouter::load`]: crate::AnyRouter::load
    File(std::path::PathBuf),
}

impl RouterSpec {
    /// The prefix of a saved router's name.
    pub const FILE_PREFIX: &'static str = "file:";

    /// Parses `knn`, `zero`, `fixed:<model id>`, `file:<path>`, …
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an unknown name (listing the known ones), `fixed` without a
    /// model or `file:` without a path.
    pub fn parse(name: &str) -> Result<RouterSpec> {
        if let Some(path) = name.strip_prefix(RouterSpec::FILE_PREFIX) {
            if path.is_empty() {
                return Err(Error::InvalidInput(format!("{name:?} names no file")));
            }
            return Ok(RouterSpec::File(path.into()));
        }
        let fixed = RouterKind::Fixed.name();
        if let Some(model) = name
            .strip_prefix(fixed)
            .and_then(|rest| rest.strip_prefix(':'))
        {
            if model.is_empty() {
                return Err(Error::InvalidInput(format!("{name:?} names no model")));
            }
            return Ok(RouterSpec::Fixed(model.to_string()));
        }
        match RouterKind::from_name(name) {
            Some(RouterKind::Fixed) => Err(Error::InvalidInput(
                fixed_needs_a_model(RouterKind::Fixed)
                    .to_string()
                    .replace("invalid config: ", ""),
            )),
            Some(kind) => Ok(RouterSpec::Kind(kind)),
            None => Err(Error::InvalidInput(format!(
                "unknown router {name:?} (known: {}, {fixed}:<model id>, file:<saved router>)",
                RouterKind::ALL
                    .iter()
                    .filter(|k| **k != RouterKind::Fixed)
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The kind named; `None` for a file, whose kind is known once it is loaded.
    pub fn kind(&self) -> Option<RouterKind> {
        match self {
            RouterSpec::Kind(k) => Some(*k),
            RouterSpec::Fixed(_) => Some(RouterKind::Fixed),
            RouterSpec::File(_) => None,
        }
    }

    /// Checks what can be checked without fitting or loading: the fixed model is in `pool`, the
    /// file exists.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`] or [`Error::Io`].
    pub fn check(&self, pool: &ModelPool) -> Result<()> {
        match self {
            RouterSpec::Kind(_) => Ok(()),
            RouterSpec::Fixed(model) => pool.index_of(model).map(|_| ()),
            RouterSpec::File(path) => std::fs::metadata(path)
                .map(|_| ())
                .map_err(|e| Error::io(path, e)),
        }
    }
}
