//! Text in, decision out: an embedder and a router behind one call.

use std::sync::Arc;

use super::{Embedder, TokenInfo};
use crate::{Decision, Error, Objective, QueryFeatures, Result, Router};

/// Checks that `router` reads the embeddings `embedder` makes: the same dimension and, when the
/// router names its embedding model, the same model.
///
/// # Errors
///
/// [`Error::DimensionMismatch`] when the router reads embeddings of another size, and
/// [`Error::EmbeddingMismatch`] when the router names another embedding model than the
/// embedder's.
pub fn check_compatible(embedder: &Embedder, router: &dyn Router) -> Result<()> {
    if router.dim() != embedder.dim() {
        return Err(Error::DimensionMismatch {
            expected: router.dim(),
            got: embedder.dim(),
        });
    }
    if let Some(expected) = router.embedding_model() {
        if expected != embedder.model_name() {
            return Err(Error::EmbeddingMismatch {
                expected: expected.to_string(),
                got: embedder.model_name().to_string(),
            });
        }
    }
    Ok(())
}

/// An [`Embedder`] and a [`Router`] that reads its embeddings: `route_text(text, objective)`.
///
/// `Send + Sync`: share one pipeline between threads (behind an `Arc`); concurrent calls each use
/// their own scratch space.
#[derive(Debug)]
pub struct Pipeline {
    embedder: Embedder,
    router: Arc<dyn Router>,
}

impl Pipeline {
    /// Pairs an embedder with a router.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] when the router reads embeddings of another size, and
    /// [`Error::EmbeddingMismatch`] when the router names another embedding model than the
    /// embedder's.
    pub fn new(embedder: Embedder, router: Arc<dyn Router>) -> Result<Pipeline> {
        check_compatible(&embedder, router.as_ref())?;
        Ok(Pipeline { embedder, router })
    }

    /// The embedder.
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// The router.
    pub fn router(&self) -> &Arc<dyn Router> {
        &self.router
    }

    /// Embeds `text` and routes it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when the text is empty or whitespace only; the router's errors
    /// (for example [`Error::UnknownModel`] for an objective that allows a model the router does
    /// not know).
    pub fn route_text(&self, text: &str, objective: &Objective) -> Result<Decision> {
        Ok(self.route_text_with_info(text, objective)?.0)
    }

    /// [`Pipeline::route_text`], also returning the text's word-piece count and whether it was
    /// truncated to the embedder's window.
    ///
    /// # Errors
    ///
    /// As [`Pipeline::route_text`].
    pub fn route_text_with_info(
        &self,
        text: &str,
        objective: &Objective,
    ) -> Result<(Decision, TokenInfo)> {
        let (features, info) = self.embedder.features(text)?;
        Ok((self.router.route(&features, objective)?, info))
    }

    /// Embeds the texts as one batch and routes each; decisions in input order.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the first empty or whitespace-only text; the router's
    /// errors.
    pub fn route_texts(&self, texts: &[&str], objective: &Objective) -> Result<Vec<Decision>> {
        self.embedder
            .features_batch(texts)?
            .into_iter()
            .map(|(features, _)| self.router.route(&features, objective))
            .collect()
    }

    /// The features the router would see for `text` (see [`Embedder::features`]).
    ///
    /// # Errors
    ///
    /// As [`Embedder::features`].
    pub fn features(&self, text: &str) -> Result<(QueryFeatures, TokenInfo)> {
        self.embedder.features(text)
    }
}
