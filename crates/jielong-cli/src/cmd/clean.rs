//! `jielong data clean` and `jielong data inspect`.

use anyhow::Result;
use clap::Args as ClapArgs;
use jielong_core::Error;
use jielong_pipeline::doc::{Doc, Removed};
use jielong_pipeline::run::read_jsonl_zst;
use jielong_pipeline::{Pipeline, RunOptions};
use std::path::{Path, PathBuf};

#[derive(ClapArgs)]
pub struct CleanArgs {
    /// Pipeline TOML ([[stage]] tables); without it, the built-in default
    /// (print it with --show-default).
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// Override a threshold: KIND.KEY=VALUE (e.g. gopher_quality.min_doc_words=30,
    /// language.languages=["zh"], settings.shard_docs=1000).
    #[arg(long = "set", value_name = "KIND.KEY=VALUE")]
    pub set: Vec<String>,
    #[arg(long, required_unless_present = "show_default")]
    pub out: Option<PathBuf>,
    /// Worker threads (0 = every core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Continue an interrupted run in --out.
    #[arg(long)]
    pub resume: bool,
    /// Stop at the first input that cannot be read (default: count it in the report, go on).
    #[arg(long)]
    pub strict: bool,
    /// Print the built-in pipeline and exit.
    #[arg(long)]
    pub show_default: bool,
    /// Text, Markdown, JSONL, HTML or WARC files (optionally .gz/.zst), or folders of them.
    #[arg(required_unless_present = "show_default")]
    pub inputs: Vec<PathBuf>,
}

pub fn clean(a: CleanArgs) -> Result<()> {
    if a.show_default {
        print!("{}", jielong_pipeline::config::DEFAULT_TOML);
        return Ok(());
    }
    let out = a.out.clone().expect("clap requires --out");
    let pipeline = match &a.pipeline {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::input(format!("{}: cannot read the pipeline ({e})", p.display())))?;
            Pipeline::parse(&text, p.parent().unwrap_or(Path::new(".")), &a.set)?
        }
        None => Pipeline::default_pipeline(&a.set)?,
    };
    let report = jielong_pipeline::run(&pipeline, &a.inputs, &RunOptions { out: out.clone(), threads: a.threads, resume: a.resume, strict: a.strict, progress: true, fail_after_shards: None })?;
    println!(
        "{} documents → {} kept ({:.1}%), {:.1} MB → {:.1} MB, in {:.1} s on {} threads",
        report.docs_in,
        report.docs_out,
        100.0 * report.docs_out as f64 / report.docs_in.max(1) as f64,
        report.bytes_in as f64 / 1e6,
        report.bytes_out as f64 / 1e6,
        report.seconds,
        report.threads
    );
    for st in &report.stages {
        let gone = st.docs_in - st.docs_out;
        let rules: Vec<String> = st.removed.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let counters: Vec<String> = st.counters.iter().filter(|(k, _)| !k.starts_with("lang:")).map(|(k, n)| format!("{k} {n}")).collect();
        let extra = [rules.join(", "), counters.join(", ")].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join("; ");
        println!("  {:<18} {:>8} → {:>8}  (−{gone}){}", st.name, st.docs_in, st.docs_out, if extra.is_empty() { String::new() } else { format!("  {extra}") });
    }
    if !report.problems.is_empty() {
        println!("  {} input files could not be read fully (see report.md)", report.problems.len());
    }
    println!("wrote {} (report.md, report.json; removed documents under removed/)", out.display());
    Ok(())
}

#[derive(ClapArgs)]
pub struct InspectArgs {
    /// A `data clean` output folder, or one of its shard files.
    pub path: PathBuf,
    /// How many kept and how many removed documents to show.
    #[arg(long, default_value_t = 3)]
    pub n: usize,
    /// Show only documents removed by this rule (e.g. gopher_short_doc) or stage (e.g. c4).
    #[arg(long)]
    pub rule: Option<String>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Characters of each document to show.
    #[arg(long, default_value_t = 400)]
    pub chars: usize,
}

fn shard_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.to_string_lossy().ends_with(".jsonl.zst")).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    Ok(v)
}

/// `k` indices out of `n`, chosen by a seeded generator, in order.
fn sample(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut rng = jielong_core::rng::Rng::new(seed);
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..k.min(n) {
        let j = i + rng.below((n - i) as u64) as usize;
        idx.swap(i, j);
    }
    let mut v = idx[..k.min(n)].to_vec();
    v.sort_unstable();
    v
}

fn clip(text: &str, chars: usize) -> String {
    let t: String = text.chars().take(chars).collect();
    if t.len() < text.len() {
        format!("{t} …")
    } else {
        t
    }
}

pub fn inspect(a: InspectArgs) -> Result<()> {
    let (kept_files, removed_files) = if a.path.is_dir() {
        if !a.path.join("run.json").exists() {
            return Err(Error::input(format!("{}: not a `jielong data clean` output folder (no run.json)", a.path.display())).into());
        }
        (shard_files(&a.path)?, shard_files(&a.path.join("removed"))?)
    } else if a.path.exists() {
        let is_removed = a.path.parent().is_some_and(|p| p.ends_with("removed"));
        if is_removed { (Vec::new(), vec![a.path.clone()]) } else { (vec![a.path.clone()], Vec::new()) }
    } else {
        return Err(Error::input(format!("{}: no such file or folder", a.path.display())).into());
    };
    let mut kept: Vec<Doc> = Vec::new();
    for f in &kept_files {
        kept.extend(read_jsonl_zst::<Doc>(f)?);
    }
    let mut removed: Vec<Removed> = Vec::new();
    for f in &removed_files {
        removed.extend(read_jsonl_zst::<Removed>(f)?);
    }
    if let Some(r) = &a.rule {
        removed.retain(|d| &d.rule == r || &d.stage == r);
        if removed.is_empty() {
            println!("no removed documents match `{r}` (it names neither a rule that fired nor a stage)");
        }
    }
    removed.sort_by_key(|d| d.id);
    let show_kept = if a.rule.is_some() { Vec::new() } else { sample(kept.len(), a.n, a.seed) };
    let show_removed = sample(removed.len(), a.n, a.seed.wrapping_add(1));
    println!("{} kept, {} removed{}", kept.len(), removed.len(), a.rule.as_ref().map(|r| format!(" by {r}")).unwrap_or_default());
    for (kept_doc, removed_doc) in show_kept.iter().map(Some).chain(std::iter::repeat(None)).zip(show_removed.iter().map(Some).chain(std::iter::repeat(None))).take(show_kept.len().max(show_removed.len())) {
        if let Some(&i) = kept_doc {
            let d = &kept[i];
            let lang = d.lang.as_ref().map(|l| format!(" [{l} {:.2}]", d.lang_score.unwrap_or(0.0))).unwrap_or_default();
            println!("\n── KEPT #{} {}{lang}\n{}", d.id, d.source, clip(&d.text, a.chars));
        }
        if let Some(&i) = removed_doc {
            let d = &removed[i];
            println!("\n── REMOVED #{} {} by {} / {}\n{}", d.id, d.source, d.stage, d.rule, clip(&d.text, a.chars));
        }
    }
    Ok(())
}
