//! `pointsman import`, `pointsman onboard` and `pointsman reprice`: a team's own data and models
//! (docs/own-data.md). Argument parsing and printing only; the work is the library's.

use std::path::PathBuf;

use anyhow::{bail, Result};
use pointsman::data::{
    onboarding_card, read_prices, Dataset, ImportFormat, ImportOptions, LogMapping,
};
use pointsman::rng::SplitMix64;
use pointsman::AnyRouter;

/// Arguments of `pointsman import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The source format: `log` (a JSONL or CSV file, one (query, model, outcome) record per
    /// line, fields named by the --*-field options), `llmrouter` (LLMRouter's `data/` folder),
    /// `routellm` (RouteLLM's `evals/` folder), `routerbench` (RouterBench's wide table as CSV;
    /// its pickle through the Python package), `gateway-log` (the gateway's decision log with
    /// feedback). See docs/own-data.md.
    #[arg(long = "from", value_name = "FORMAT")]
    pub from: String,

    /// The files or the folder to import.
    #[arg(value_name = "INPUT", required = true, num_args = 1..)]
    pub inputs: Vec<PathBuf>,

    /// The models and their prices: a models.json in the dataset schema (docs/datasets.md).
    /// Required by log, routellm and gateway-log.
    #[arg(long, value_name = "FILE")]
    pub models: Option<PathBuf>,

    /// The dataset folder to write (atomically: whole or not at all).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Replace the folder when it exists (only a dataset folder: one holding a dataset's files
    /// alone and none of the inputs).
    #[arg(long)]
    pub replace: bool,

    /// Do not compute the prompts' embeddings now (`pointsman train`/`embed` compute them on
    /// first use).
    #[arg(long)]
    pub no_embed: bool,

    /// Output tokens assumed per answer where the source has no answer (the cost estimate of
    /// SCHEMA.md); default: 256, RouteLLM's models.json's.
    #[arg(long, value_name = "N")]
    pub default_output_tokens: Option<f64>,

    /// routellm: add MT-Bench's judgements as preference pairs.
    #[arg(long)]
    pub mt_bench: bool,

    /// log: field of the query id (records sharing it are one query); default: the prompt.
    #[arg(long, value_name = "NAME")]
    pub id_field: Option<String>,

    /// log: field of the prompt text.
    #[arg(long, default_value = "prompt", value_name = "NAME")]
    pub prompt_field: String,

    /// log: field of the model id.
    #[arg(long, default_value = "model", value_name = "NAME")]
    pub model_field: String,

    /// log: field of the outcome, in [0, 1] (in JSON lines also true/false: 1/0).
    #[arg(long, default_value = "score", value_name = "NAME")]
    pub score_field: String,

    /// log: field of the task tag.
    #[arg(long, value_name = "NAME")]
    pub task_field: Option<String>,

    /// log: field of the split ("train" / "test"); default: the shipped split rule.
    #[arg(long, value_name = "NAME")]
    pub split_field: Option<String>,

    /// log: field of the observed cost in USD.
    #[arg(long, value_name = "NAME")]
    pub cost_field: Option<String>,

    /// log: field of the logging policy's choice probability (for inverse-propensity weighting).
    #[arg(long, value_name = "NAME")]
    pub propensity_field: Option<String>,

    /// log: a second record of the same (query, model) — refuse (an error naming its line),
    /// mean (average the outcomes and costs) or last (keep the last record).
    #[arg(long, default_value = "refuse", value_name = "WHAT")]
    pub duplicates: String,

    /// The embedding model.
    #[command(flatten)]
    pub embed: crate::embed_cmd::ModelArgs,
}

/// `pointsman import`.
pub fn import(args: &ImportArgs, progress: &crate::progress::Progress) -> Result<()> {
    let format: ImportFormat = args.from.parse()?;
    let options = ImportOptions {
        models: args.models.clone(),
        mapping: LogMapping {
            id: args.id_field.clone(),
            prompt: args.prompt_field.clone(),
            model: args.model_field.clone(),
            score: args.score_field.clone(),
            task: args.task_field.clone(),
            split: args.split_field.clone(),
            cost: args.cost_field.clone(),
            propensity: args.propensity_field.clone(),
            duplicates: args.duplicates.parse()?,
        },
        default_output_tokens: args.default_output_tokens,
        mt_bench: args.mt_bench,
    };
    let mut draft = pointsman::data::import(format, &args.inputs, &options)?;
    // Refused now rather than after minutes of embedding.
    draft.check_destination(&args.out, args.replace)?;
    if !args.no_embed && draft.embeddings.is_none() {
        let pb = progress.spinner("loading the embedding model");
        let embedder = args.embed.load()?;
        pb.finish_and_clear();
        let pb = progress.bar(draft.rows.len() as u64, "embedding the prompts".to_string());
        pointsman::embed::embed_draft(&mut draft, &embedder, &mut |done, _| {
            pb.set_position(done as u64)
        })?;
        pb.finish_and_clear();
    }
    let dir = draft.write(&args.out, args.replace)?;
    let observed: usize = draft
        .rows
        .iter()
        .map(|r| r.scores.iter().flatten().count())
        .sum();
    let preferences: usize = draft.rows.iter().map(|r| r.preferences.len()).sum();
    println!(
        "imported {} queries ({} scores, {} preference pairs over {} model{}{}) into {}{}",
        draft.rows.len(),
        observed,
        preferences,
        draft.pool.len(),
        if draft.pool.len() == 1 { "" } else { "s" },
        if draft.dropped.is_empty() {
            String::new()
        } else {
            format!("; dropped {:?}", draft.dropped)
        },
        dir.display(),
        if draft.embeddings.is_some() {
            ""
        } else {
            "; embeddings are computed by `pointsman train` or `pointsman embed`"
        }
    );
    Ok(())
}

/// Arguments of `pointsman onboard`.
#[derive(Debug, clap::Args)]
pub struct OnboardArgs {
    /// The fitted router (knn, mf, linucb, thompson, knn-ucb or cluster-ucb).
    #[arg(long, value_name = "FILE")]
    pub router: PathBuf,

    /// The id of the model to add.
    #[arg(long, value_name = "ID")]
    pub model: String,

    /// A dataset whose train split has labelled queries of the model (its card comes from the
    /// dataset's models.json unless --models gives it). Without it: the card alone (price and
    /// description prior).
    #[arg(long, value_name = "DIR")]
    pub labelled: Option<PathBuf>,

    /// A models.json with the model's card (prices, description).
    #[arg(long, value_name = "FILE")]
    pub models: Option<PathBuf>,

    /// Use only this many labelled queries, drawn by a seeded shuffle.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,

    /// Seed of the shuffle behind --limit.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Where to save the router with the model added.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// The embedding model, for a labelled dataset without embeddings.
    #[command(flatten)]
    pub embed: crate::embed_cmd::ModelArgs,
}

/// `pointsman onboard`.
pub fn onboard(args: &OnboardArgs, progress: &crate::progress::Progress) -> Result<()> {
    if args.limit == Some(0) {
        bail!("--limit takes a positive number (leave out --labelled to add the model from its card alone)");
    }
    // The router itself is an input: the onboarded router is saved under another name.
    let inputs: Vec<PathBuf> = args
        .models
        .iter()
        .cloned()
        .chain([args.router.clone()])
        .collect();
    pointsman::files::refuse_output_among_inputs(&args.out, &inputs)?;
    let router = AnyRouter::load(&args.router)?;
    let ds = match &args.labelled {
        Some(dir) => {
            let mut ds = Dataset::load(dir)?;
            crate::embed_cmd::ensure_embeddings(&mut ds, &args.embed, progress)?;
            pointsman::files::refuse_output_among_inputs(&args.out, &ds.files())?;
            Some(ds)
        }
        None => None,
    };
    if args.models.is_none() && ds.is_none() {
        bail!("give the model's card with --models, or labelled queries with --labelled");
    }
    let card = onboarding_card(
        &args.model,
        args.models.as_deref(),
        ds.as_ref().map(|d| d.pool()),
    )?;
    let labelled = ds.as_ref().map(|ds| {
        let train = ds.train();
        match args.limit {
            Some(n) => {
                let mut order: Vec<usize> = (0..train.len()).collect();
                SplitMix64::new(args.seed).shuffle(&mut order);
                order.truncate(n);
                train.subset(&order, "labelled")
            }
            None => train.clone(),
        }
    });
    let started = std::time::Instant::now();
    let out = router.add_model(card, labelled.as_ref())?;
    let seconds = started.elapsed().as_secs_f64();
    out.save(&args.out)?;
    let from = match labelled.as_ref().map(|l| {
        let j = l.pool().index_of(&args.model).unwrap_or(0);
        (0..l.len()).filter(|&r| l.observed(r, j)).count()
    }) {
        None | Some(0) => "its card alone".to_string(),
        Some(1) => "1 labelled query".to_string(),
        Some(n) => format!("{n} labelled queries"),
    };
    println!(
        "added {} to the {} router from {from} in {:.3} s; saved {}",
        args.model,
        out.kind(),
        seconds,
        args.out.display()
    );
    Ok(())
}

/// Arguments of `pointsman reprice`.
#[derive(Debug, clap::Args)]
pub struct RepriceArgs {
    /// The fitted router (any kind but a cascade).
    #[arg(long, value_name = "FILE")]
    pub router: PathBuf,

    /// The new prices: a models.json (dataset schema) with some or all of the router's models.
    #[arg(long, value_name = "FILE")]
    pub prices: PathBuf,

    /// Where to save the repriced router.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// `pointsman reprice`.
pub fn reprice(args: &RepriceArgs) -> Result<()> {
    pointsman::files::refuse_output_among_inputs(&args.out, &[&args.prices, &args.router])?;
    let router = AnyRouter::load(&args.router)?;
    let prices = read_prices(&args.prices, router.models())?;
    let out = router.reprice(&prices)?;
    out.save(&args.out)?;
    println!(
        "repriced {} of the {} router's {} models; saved {}",
        prices.len(),
        out.kind(),
        out.models().len(),
        args.out.display()
    );
    Ok(())
}
