//! `pointsman embed`, and the embeddings `eval` and `train` compute for a dataset without them.

use std::path::PathBuf;

use anyhow::{bail, Result};
use pointsman::data::Dataset;
use pointsman::embed::{embed_dataset, DatasetEmbeddings, Embedder, EmbedderOptions};

use crate::progress::Progress;

/// Where the embedding model is and how many threads it may use.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// The embedding model folder (sentence-transformers layout). Default: $POINTSMAN_MODEL_DIR,
    /// else the cache folder scripts/fetch-model.sh installs all-MiniLM-L6-v2 into.
    #[arg(long, value_name = "DIR")]
    pub model_dir: Option<PathBuf>,

    /// Threads for the embedder (0: all cores).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub embed_threads: usize,
}

impl ModelArgs {
    /// Loads the embedder.
    pub fn load(&self) -> Result<Embedder> {
        let options = EmbedderOptions {
            threads: self.embed_threads,
            ..Default::default()
        };
        Ok(match &self.model_dir {
            Some(dir) => Embedder::load(dir, &options)?,
            None => Embedder::load_default(&options)?,
        })
    }
}

/// Arguments of `pointsman embed`.
#[derive(Debug, clap::Args)]
pub struct EmbedArgs {
    /// The dataset folder (the layout of ../shared/data, SCHEMA.md).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    #[command(flatten)]
    pub model: ModelArgs,

    /// Recompute and overwrite the embeddings the dataset already has.
    #[arg(long)]
    pub force: bool,
}

/// `pointsman embed`.
pub fn embed(args: &EmbedArgs, progress: &Progress) -> Result<()> {
    // With --force the cached embeddings are not read: damaged ones are what it repairs.
    let ds = if args.force {
        Dataset::load_without_embeddings(&args.data)?
    } else {
        Dataset::load(&args.data)?
    };
    if ds.has_embeddings() && !args.force {
        bail!(
            "{} already has embeddings ({}); pass --force to recompute them",
            ds.name(),
            pointsman::data::embeddings_path(ds.dir(), ds.name()).display()
        );
    }
    let computed = compute(&ds, &args.model, progress)?;
    let (npy, _) = computed.write(ds.dir(), ds.name())?;
    crate::output::emit(&format!(
        "{}: {} prompts × {} ({}), {} truncated at {} word pieces, {:.1} s\n",
        npy.display(),
        computed.rows,
        computed.dim,
        computed.model,
        computed.truncated_rows,
        computed.max_tokens,
        computed.seconds
    ))?;
    Ok(())
}

/// Gives `ds` embeddings when it has none: computes them, caches them in the dataset folder when
/// it is writable (else keeps them for this run only, with a warning).
pub fn ensure_embeddings(ds: &mut Dataset, model: &ModelArgs, progress: &Progress) -> Result<()> {
    if ds.has_embeddings() {
        return Ok(());
    }
    tracing::info!("{} has no embeddings: computing them", ds.name());
    let computed = compute(ds, model, progress)?;
    match computed.write(ds.dir(), ds.name()) {
        Ok((npy, _)) => tracing::info!("embeddings cached in {}", npy.display()),
        Err(e) => tracing::warn!("cannot cache the embeddings ({e}); using them for this run only"),
    }
    computed.apply(ds)?;
    Ok(())
}

fn compute(ds: &Dataset, model: &ModelArgs, progress: &Progress) -> Result<DatasetEmbeddings> {
    let pb = progress.spinner("loading the embedding model");
    let embedder = model.load()?;
    pb.finish_and_clear();
    let pb = progress.bar(ds.len() as u64, format!("embedding {}", ds.name()));
    let computed = embed_dataset(ds, &embedder, &mut |done, _| pb.set_position(done as u64))?;
    pb.finish_and_clear();
    Ok(computed)
}
