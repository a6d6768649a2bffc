//! `pointsman train`: fit a router of any kind on a dataset's train split and save it.

use std::path::PathBuf;

use anyhow::Result;
use pointsman::data::{Dataset, Split};
use pointsman::registry::{
    AnyRouter, AutoOptions, AutoProgress, AutoReport, FitOptions, RouterConfig, RouterKind,
    RouterSpec,
};
use pointsman::rng::SplitMix64;
use pointsman::tuning::{Criterion, SearchReport};

use crate::progress::Progress;

/// Arguments of `pointsman train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Dataset folder in the shared schema.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// The router kind (see `pointsman train --help` for the list): knn, mf and irt are fitted
    /// by a cross-validated search, cascade by a leave-one-out search with a simulated judge, the
    /// bandits are warm-started from the train split, the baselines take its means;
    /// fixed:<model id> always picks that model; auto cross-validates every pre-call kind and a
    /// stack of them and saves the best.
    #[arg(long, value_name = "KIND", long_help = kinds_help())]
    pub router: String,

    /// Where to save the router (one .safetensors file).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// Seed of the search's folds, of training and of random draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// With --router cascade: the error rate of the simulated judge the cascade is tuned with
    /// (the datasets carry no confidences) [default: 0.1].
    #[arg(long, value_name = "EPS")]
    pub judge_noise: Option<f64>,

    /// Skip the search and fit this JSON config (fields not given keep their defaults), e.g.
    /// '{"k": 50, "same_task": true}'; the search prints its candidates in this form.
    #[arg(long, value_name = "JSON")]
    pub config: Option<String>,

    /// With --router auto: the metric the candidates are ranked by (aiq, apgr, max-quality);
    /// default aiq, or apgr on two-model data.
    #[arg(long, value_name = "METRIC")]
    pub criterion: Option<String>,

    /// With --router auto: the kinds to try, comma-separated (default: every pre-call kind this
    /// build can fit; `stack` stacks the listed estimators).
    #[arg(long, value_name = "KINDS", value_delimiter = ',')]
    pub kinds: Vec<String>,

    /// With --router auto: rank knn, mf, irt and the stack by their search winners' own
    /// cross-validated figures instead of nested cross-validation (several times faster: the
    /// nested searches take up to folds + 1 times as long; those figures are flattered by the
    /// choice among each search's settings, larger grids more).
    #[arg(long)]
    pub no_nested: bool,

    /// With --router auto: the cross-validation folds (at least 2; default 5). Fewer let a
    /// small train split be cross-validated (nested, each fold's complement again).
    #[arg(long, value_name = "N")]
    pub folds: Option<usize>,

    /// Train on only this many train queries, drawn by a seeded shuffle (--seed): a quick trial
    /// of a search or of auto before the whole split.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,

    /// The embedding model, for a dataset without embeddings (they are computed, and cached in
    /// the dataset folder when it is writable).
    #[command(flatten)]
    pub model: crate::embed_cmd::ModelArgs,
}

/// The kinds, one per line, for `--help`.
fn kinds_help() -> String {
    let mut s = String::from("The router kind:\n");
    s.push_str(&format!(
        "  {:<22} cross-validate the pre-call kinds and a stack of them, keep the best\n",
        pointsman::RouterKind::AUTO
    ));
    for kind in pointsman::RouterKind::ALL {
        let name = match kind {
            pointsman::RouterKind::Fixed => format!("{kind}:<model id>"),
            _ => kind.to_string(),
        };
        s.push_str(&format!("  {name:<22} {}\n", kind.summary()));
    }
    s
}

/// The train split, or a seeded sample of `--limit` of its queries (in file order).
fn train_split<'a>(ds: &'a Dataset, args: &TrainArgs) -> Result<std::borrow::Cow<'a, Split>> {
    let train = ds.train();
    match args.limit {
        None => Ok(std::borrow::Cow::Borrowed(train)),
        Some(0) => anyhow::bail!("--limit takes a positive number of train queries"),
        Some(n) if n >= train.len() => Ok(std::borrow::Cow::Borrowed(train)),
        Some(n) => {
            let mut rows: Vec<usize> = (0..train.len()).collect();
            SplitMix64::new(args.seed).shuffle(&mut rows);
            rows.truncate(n);
            rows.sort_unstable();
            Ok(std::borrow::Cow::Owned(train.subset(&rows, "train")))
        }
    }
}

/// `pointsman train`.
pub fn train(args: &TrainArgs, progress: &Progress) -> Result<()> {
    if args.router == pointsman::RouterKind::AUTO {
        return train_auto(args, progress);
    }
    if args.criterion.is_some() || !args.kinds.is_empty() || args.no_nested || args.folds.is_some()
    {
        anyhow::bail!("--criterion, --kinds, --no-nested and --folds go with --router auto");
    }
    // `train` also knows `auto` (handled above): its list of known routers says so.
    let spec = RouterSpec::parse(&args.router).map_err(|e| match e {
        pointsman::Error::InvalidInput(m) if m.starts_with("unknown router") => anyhow::anyhow!(
            "{}",
            m.replacen("(known: ", &format!("(known: {}, ", RouterKind::AUTO), 1)
        ),
        e => e.into(),
    })?;
    if let RouterSpec::File(_) = spec {
        anyhow::bail!(
            "--router names a kind to train, not a saved file: {}",
            args.router
        );
    }
    // Accepted and ignored before: the judge only tunes a cascade.
    if args.judge_noise.is_some() && !matches!(spec, RouterSpec::Kind(RouterKind::Cascade)) {
        anyhow::bail!(
            "--judge-noise tunes a cascade: it does not go with --router {}",
            args.router
        );
    }
    if args.judge_noise.is_some() && args.config.is_some() {
        anyhow::bail!(
            "--judge-noise tunes a cascade's search; with --config there is no search (the \
             config's thresholds are used)"
        );
    }
    let config = match (&spec, &args.config) {
        (RouterSpec::Fixed(model), _) => Some(RouterConfig::Baseline(
            pointsman::routers::baseline::Baseline::Fixed {
                model: model.clone(),
            },
        )),
        (RouterSpec::Kind(kind), Some(json)) => Some(RouterConfig::parse(*kind, json, args.seed)?),
        _ => None,
    };
    let pb = progress.spinner(format!("loading {}", args.data.display()));
    let mut ds = Dataset::load(&args.data)?;
    pb.finish_and_clear();
    spec.check(ds.pool())?;
    crate::embed_cmd::ensure_embeddings(&mut ds, &args.model, progress)?;
    // After the embeddings: they may just have been cached beside the records.
    pointsman::files::refuse_output_among_inputs(&args.out, &ds.files())?;
    let train = train_split(&ds, args)?;
    let what = match (&spec, &config) {
        (RouterSpec::Kind(k), None) if k.family() != pointsman::registry::Family::Baseline => {
            "searching"
        }
        _ => "fitting",
    };
    let message = format!("{what} {} on {} train queries", args.router, train.len());
    let started = std::time::Instant::now();
    let (pb, router, search) = match config {
        Some(config) => {
            let pb = progress.spinner(message);
            (pb, AnyRouter::fit_config(&config, &train)?, None)
        }
        None => {
            // A search counts its steps (settings scored, or folds fitted): a bar; a kind
            // fitted without a search never reports, and its bar shows the elapsed time.
            let pb = progress.bar(0, message);
            let bar = pb.clone();
            let options = FitOptions {
                seed: args.seed,
                judge_noise: args
                    .judge_noise
                    .unwrap_or(pointsman::routers::cascade::DEFAULT_JUDGE_NOISE),
                progress: pointsman::tuning::Progress::new(move |done, total| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                }),
                ..Default::default()
            };
            let kind = spec.kind().expect("a kind: files are refused above");
            let fitted = AnyRouter::fit(kind, &train, &options)?;
            (pb, fitted.router, fitted.search)
        }
    };
    pb.finish_and_clear();
    router.save(&args.out)?;
    if let Some(s) = &search {
        crate::output::emit(&search_table(s))?;
    }
    // The searches need full labels: with partial ones the kind's defaults were fitted.
    let unsearched = search.is_none()
        && !train.is_fully_labelled()
        && matches!(
            spec.kind(),
            Some(RouterKind::Knn | RouterKind::Mf | RouterKind::Irt)
        )
        && args.config.is_none();
    crate::output::emit(&format!(
        "trained {} on {} queries in {:.1} s{}; config {}\nsaved {}\n",
        router.kind(),
        train.len(),
        started.elapsed().as_secs_f64(),
        if unsearched {
            " (partial labels: the default configuration, no search)"
        } else {
            ""
        },
        router.to_saved()?.config,
        args.out.display()
    ))?;
    Ok(())
}

/// The search's settings, best first (at most ten), each as the JSON `--config` accepts (the
/// fields that differ from the kind's defaults).
fn search_table(s: &SearchReport<RouterConfig>) -> String {
    let how = match s.validation {
        pointsman::tuning::Validation::KFold { folds } => format!("over {folds} folds"),
        pointsman::tuning::Validation::LeaveOneOut => "leave-one-out".to_string(),
    };
    let mut out = format!(
        "search: {} settings by {} {how} of the train split ({:.1} s); best {}:\n",
        s.trials.len(),
        s.describe(),
        s.seconds,
        s.trials.len().min(10)
    );
    for t in s.trials.iter().take(10) {
        out.push_str(&format!("  {:.4}  {}\n", t.score, t.config.changes()));
    }
    out
}

/// `pointsman train --router auto`: the automatic choice, on the train split only.
fn train_auto(args: &TrainArgs, progress: &Progress) -> Result<()> {
    if args.config.is_some() {
        anyhow::bail!("--config names one kind's settings: it does not go with --router auto");
    }
    if args.judge_noise.is_some() {
        anyhow::bail!("--judge-noise tunes a cascade, which auto does not consider");
    }
    let criterion = match &args.criterion {
        Some(name) => Some(Criterion::from_name(name).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown --criterion {name:?} (known: {})",
                Criterion::ALL
                    .map(|c| c.name().replace('_', "-"))
                    .join(", ")
            )
        })?),
        None => None,
    };
    let kinds = args
        .kinds
        .iter()
        .map(|k| {
            RouterKind::from_name(k.trim()).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown kind {k:?} in --kinds (known: {})",
                    RouterKind::names()
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let pb = progress.spinner(format!("loading {}", args.data.display()));
    let mut ds = Dataset::load(&args.data)?;
    pb.finish_and_clear();
    crate::embed_cmd::ensure_embeddings(&mut ds, &args.model, progress)?;
    pointsman::files::refuse_output_among_inputs(&args.out, &ds.files())?;
    // The choice sees the train split (or --limit of its queries) and nothing else.
    let train = train_split(&ds, args)?;
    // One line: the candidate, and the count of its own search's steps where it has one.
    let pb = progress.bar(0, format!("auto on {} train queries", train.len()));
    let bar = pb.clone();
    let options = AutoOptions {
        seed: args.seed,
        criterion,
        kinds,
        nested: !args.no_nested,
        folds: args.folds.unwrap_or(AutoOptions::default().folds),
        progress: pointsman::tuning::Progress::new(move |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }),
    };
    options.candidates()?;
    let quiet = progress.is_quiet();
    let (router, report) = AnyRouter::fit_auto(&train, &options, &mut |event| match event {
        AutoProgress::Started { kind, index, total } => {
            pb.set_message(format!("cross-validating {kind} ({}/{total})", index + 1));
            // Kinds without a search of their own show the elapsed time only.
            pb.set_length(0);
            pb.set_position(0);
        }
        AutoProgress::Finished {
            candidate,
            index,
            total,
        } if !quiet => {
            pb.suspend(|| {
                eprintln!(
                    "[{}/{total}] {:<12} cv {:.4}  ({:.1} s)",
                    index + 1,
                    candidate.kind.name(),
                    candidate.score,
                    candidate.seconds
                );
            });
        }
        _ => {}
    })?;
    pb.finish_and_clear();
    router.save(&args.out)?;
    print!("{}", auto_table(&report));
    let chosen = report.chosen();
    println!(
        "chose {} (cv {} {:.4}) in {:.1} s; saved {}",
        chosen.kind,
        report.criterion.name(),
        chosen.score,
        report.seconds,
        args.out.display()
    );
    // The table cuts settings to a line; the chosen one in full, as `--config` takes it.
    println!(
        "config {}",
        serde_json::to_string(&chosen.config).map_err(|e| anyhow::anyhow!("{e}"))?
    );
    Ok(())
}

/// Every candidate, best first, with its cross-validated figures, time and setting.
fn auto_table(r: &AutoReport) -> String {
    let folds = match r.validation {
        pointsman::tuning::Validation::KFold { folds } => folds,
        pointsman::tuning::Validation::LeaveOneOut => 0,
    };
    let mut out = format!(
        "auto: {} candidates ranked by cv {} over {folds} folds of the train split ({:.1} s):\n",
        r.candidates.len(),
        r.criterion.name(),
        r.seconds
    );
    // The ranking figure first, then the other cross-validated figures the data has (APGR only
    // on two-model data); no column twice.
    let by = r.criterion.name();
    let apgr = r.candidates.iter().any(|c| c.metrics.apgr.is_some());
    let mut columns: Vec<(&str, Cell)> = vec![(by, Box::new(|c| format!("{:.4}", c.score)))];
    if by != "aiq" {
        columns.push(("aiq", Box::new(|c| format!("{:.4}", c.metrics.aiq))));
    }
    if by != "max_quality" {
        columns.push((
            "max_quality",
            Box::new(|c| format!("{:.4}", c.metrics.max_quality)),
        ));
    }
    if apgr && by != "apgr" {
        columns.push((
            "apgr",
            Box::new(|c| {
                c.metrics
                    .apgr
                    .map_or_else(|| "-".into(), |a| format!("{a:.4}"))
            }),
        ));
    }
    // The spread over the folds, and the folds on which the candidate beats the chosen one
    // (paired: the same held-out queries).
    let (chosen_kind, chosen) = (r.chosen().kind, r.chosen().fold_scores.clone());
    columns.push((
        "folds",
        Box::new(|c| {
            let defined: Vec<f64> = c.fold_scores.iter().flatten().copied().collect();
            match (
                defined.iter().copied().reduce(f64::min),
                defined.iter().copied().reduce(f64::max),
            ) {
                // Fewer figures than folds: say over how many (undefined on the others).
                (Some(lo), Some(hi)) if defined.len() < c.fold_scores.len() => format!(
                    "{lo:.3}–{hi:.3} ({}/{})",
                    defined.len(),
                    c.fold_scores.len()
                ),
                (Some(lo), Some(hi)) => format!("{lo:.3}–{hi:.3}"),
                _ => "-".into(),
            }
        }),
    ));
    columns.push((
        "beats chosen",
        Box::new(move |c| {
            let pairs: Vec<(f64, f64)> = c
                .fold_scores
                .iter()
                .zip(&chosen)
                .filter_map(|(a, b)| Some(((*a)?, (*b)?)))
                .collect();
            if c.kind == chosen_kind || pairs.is_empty() {
                return "-".into();
            }
            let wins = pairs.iter().filter(|(a, b)| a > b).count();
            format!("{wins}/{}", pairs.len())
        }),
    ));
    // A nested candidate's search winner's own figure: how much its choice of setting
    // flattered it.
    let nested = r.candidates.iter().any(|c| c.search_score.is_some());
    if nested {
        columns.push((
            "search",
            Box::new(|c| {
                c.search_score
                    .map_or_else(|| "-".into(), |s| format!("{s:.4}"))
            }),
        ));
    }
    out.push_str(&format!("  {:<12}", "kind"));
    for (name, _) in &columns {
        let title = match *name {
            "folds" => "cv per fold".to_string(),
            "beats chosen" => "beats chosen".to_string(),
            "search" => "search's own".to_string(),
            n => format!("cv {}", n.replace('_', " ")),
        };
        out.push_str(&format!(" {title:>14}"));
    }
    out.push_str(&format!(" {:>9}  setting\n", "seconds"));
    for c in &r.candidates {
        out.push_str(&format!("  {:<12}", c.kind.name()));
        for (_, cell) in &columns {
            out.push_str(&format!(" {:>14}", cell(c)));
        }
        out.push_str(&format!(
            " {:>9.1}  {}\n",
            c.seconds,
            short(&c.config.changes(), 60)
        ));
    }
    out.push_str(&format!(
        "  (cv per fold: the lowest and highest {by} on one fold's held-out queries; beats chosen: \
         the folds on which it scores above the chosen candidate — a lead that does not hold on \
         most folds is within the noise)\n"
    ));
    if nested {
        out.push_str(&format!(
            "  (nested: each fold estimated by the knn, mf or irt search rerun without it, or the \
             stack with its shrinkage chosen without it, on members' estimates that saw it; \
             search's own: the {by} of the whole split's search winner, flattered by the choice \
             among its settings)\n"
        ));
    }
    if r.candidates.iter().any(|c| c.kind == RouterKind::Stack) {
        out.push_str(
            "  (the stack's seconds are its own, on top of its members' searches; its setting in \
             full: the saved file's config)\n",
        );
    }
    out
}

/// One column of the auto table: a candidate's figure as printed.
type Cell = Box<dyn Fn(&pointsman::registry::AutoCandidate) -> String>;

/// `text` cut to `max` characters, with an ellipsis when cut.
fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max - 1).collect();
    s.push('…');
    s
}
