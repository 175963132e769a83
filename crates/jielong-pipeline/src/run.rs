//! The local executor: shards by document count, passes split at the dedup stages.
//!
//! With stages `a b D c E f` (D, E dedup) the run makes three passes:
//!
//! 1. read the inputs in order, cut them into shards of `shard_docs` documents, run `a b` on
//!    every document and write D's signature record (map);
//!    then D's reduce turns every shard's records into a plan;
//! 2. per shard: D's filter, then `c`, then E's signatures; E's reduce;
//! 3. per shard: E's filter, then `f`, and the final output.
//!
//! Documents of a shard are processed in parallel (rayon) and folded back in input order, and
//! shards of later passes run in parallel, so every output byte is the same whatever the
//! thread count. Each shard's statistics file is written last, after its data files were
//! renamed into place: it marks the shard done, and `--resume` skips done shards and done
//! reduce steps, so an interrupted run continues without duplicating output.
//!
//! Folder layout: `shard-NNNNN.jsonl.zst` (the kept documents, one JSON object per line with
//! `text`), `removed/pass-P-shard-NNNNN.jsonl.zst` (removed documents with their stage and
//! rule, for `jielong data inspect`), `report.json`, `report.md`, `run.json` (the pipeline
//! and inputs, to recognise the same run), and `work/` while the run is in progress.

use crate::config::{Pipeline, Stage};
use crate::dedup::Plan;
use crate::sigfile::Signatures;
use crate::doc::{Doc, Removed};
use crate::html;
use crate::input::{self, RawDoc, ReadStats};
use crate::report::{Example, Report, StageReport};
use crate::stage::{Counters, Verdict};
use jielong_core::error::IoContext;
use jielong_core::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct RunOptions {
    pub out: PathBuf,
    /// Worker threads; 0 = every core.
    pub threads: usize,
    /// Continue an interrupted run in `out`.
    pub resume: bool,
    /// Stop on the first input that cannot be read instead of counting it.
    pub strict: bool,
    /// Print progress to stderr.
    pub progress: bool,
    /// Stop with an error after this many shards were written, as a killed run would: lets
    /// the tests check that `--resume` continues without duplicating anything.
    #[doc(hidden)]
    pub fail_after_shards: Option<usize>,
}

/// What identifies a run: the pipeline and the inputs (path and size).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Manifest {
    version: u32,
    pipeline: String,
    inputs: Vec<(String, u64)>,
}

/// One pass over the shards.
#[derive(Debug, Clone)]
struct Pass {
    /// The dedup stage whose plan filters documents first.
    pre: Option<usize>,
    /// Per-document stages, in order.
    docs: Vec<usize>,
    /// The dedup stage whose signatures this pass writes.
    post: Option<usize>,
}

fn passes(stages: &[Stage]) -> Vec<Pass> {
    let mut out = vec![Pass { pre: None, docs: Vec::new(), post: None }];
    for (i, s) in stages.iter().enumerate() {
        match s {
            Stage::Doc(_) => out.last_mut().expect("one pass").docs.push(i),
            Stage::Dedup(_) => {
                out.last_mut().expect("one pass").post = Some(i);
                out.push(Pass { pre: Some(i), docs: Vec::new(), post: None });
            }
        }
    }
    out
}

/// Per-shard statistics: one report per slot (slot 0 = HTML extraction, slot i + 1 = stage i).
#[derive(Debug, Default, Serialize, Deserialize)]
struct ShardStats {
    slots: Vec<StageReport>,
    docs_in: u64,
    bytes_in: u64,
    docs_out: u64,
    bytes_out: u64,
}

/// What happened to one document in one pass.
struct Outcome {
    doc: Doc,
    /// (slot, bytes in, bytes out or the rule that removed it).
    steps: Vec<(usize, u64, std::result::Result<u64, &'static str>)>,
    counters: Vec<(usize, Counters)>,
}

impl Outcome {
    fn removed(&self) -> Option<(usize, &'static str)> {
        self.steps.last().and_then(|&(slot, _, r)| r.err().map(|rule| (slot, rule)))
    }
}

struct Ctx<'a> {
    pipeline: &'a Pipeline,
    out: &'a Path,
    work: PathBuf,
    passes: Vec<Pass>,
    plans: Vec<Option<Plan>>,
    done: std::sync::atomic::AtomicUsize,
    fail_after: Option<usize>,
}

impl Ctx<'_> {
    fn slot_names(&self) -> Vec<String> {
        std::iter::once("extract".to_string()).chain(self.pipeline.stages.iter().map(|s| s.name().to_string())).collect()
    }

    fn pass_dir(&self, p: usize) -> PathBuf {
        self.work.join(format!("pass-{p}"))
    }

    fn data_path(&self, p: usize, k: usize) -> PathBuf {
        if p + 1 == self.passes.len() {
            self.out.join(format!("shard-{k:05}.jsonl.zst"))
        } else {
            self.pass_dir(p).join(format!("shard-{k:05}.jsonl.zst"))
        }
    }

    fn stats_path(&self, p: usize, k: usize) -> PathBuf {
        self.pass_dir(p).join(format!("shard-{k:05}.stats.json"))
    }

    fn sig_path(&self, p: usize, k: usize) -> PathBuf {
        self.pass_dir(p).join("sigs").join(format!("shard-{k:05}.bin"))
    }

    fn plan_path(&self, stage: usize) -> PathBuf {
        self.work.join(format!("plan-stage-{stage}.bin"))
    }

    /// Run pass `p` on one document.
    fn process(&self, p: usize, mut doc: Doc, html_url: Option<Option<String>>) -> Outcome {
        let mut o = Outcome { doc: Doc::new(0, "", ""), steps: Vec::new(), counters: Vec::new() };
        let pass = &self.passes[p];
        if let Some(url) = html_url {
            let bytes_in = doc.text.len() as u64;
            match html::extract(&doc.text, url.as_deref()) {
                Some((_, t)) => {
                    doc.text = t;
                    o.steps.push((0, bytes_in, Ok(doc.text.len() as u64)));
                }
                None => {
                    o.steps.push((0, bytes_in, Err("no_article_text")));
                    o.doc = doc;
                    return o;
                }
            }
        }
        let mut stages: Vec<usize> = pass.pre.into_iter().collect();
        stages.extend(&pass.docs);
        for i in stages {
            let bytes_in = doc.text.len() as u64;
            let mut c = Counters::default();
            let verdict = match &self.pipeline.stages[i] {
                Stage::Doc(s) => s.apply(&mut doc, &mut c),
                Stage::Dedup(d) => d.filter(self.plans[i].as_ref().expect("plan made before its filter pass"), &mut doc, &mut c),
            };
            if !c.0.is_empty() {
                o.counters.push((i + 1, c));
            }
            match verdict {
                Verdict::Keep => o.steps.push((i + 1, bytes_in, Ok(doc.text.len() as u64))),
                Verdict::Drop(rule) => {
                    o.steps.push((i + 1, bytes_in, Err(rule)));
                    break;
                }
            }
        }
        o.doc = doc;
        o
    }

    /// Process one shard of pass `p` and write its files; the stats file goes last.
    fn shard(&self, p: usize, k: usize, docs: Vec<(Doc, Option<Option<String>>)>) -> Result<()> {
        let pass = &self.passes[p];
        let (docs_in, bytes_in) = (docs.len() as u64, docs.iter().map(|(d, _)| d.text.len() as u64).sum());
        let outcomes: Vec<Outcome> = docs.into_par_iter().map(|(d, h)| self.process(p, d, h)).collect();
        let n_slots = self.pipeline.stages.len() + 1;
        let names = self.slot_names();
        let mut stats = ShardStats { slots: names.iter().map(|n| StageReport::new(n)).collect(), docs_in, bytes_in, ..Default::default() };
        let mut kept = Vec::new();
        let mut removed = Vec::new();
        let mut sigs = Signatures::default();
        let per_rule = self.pipeline.settings.examples_per_rule;
        for o in &outcomes {
            for &(slot, bin, r) in &o.steps {
                let st = &mut stats.slots[slot];
                st.docs_in += 1;
                st.bytes_in += bin;
                match r {
                    Ok(bout) => {
                        st.docs_out += 1;
                        st.bytes_out += bout;
                    }
                    Err(rule) => {
                        *st.removed.entry(rule.to_string()).or_insert(0) += 1;
                        let ex = st.examples.entry(rule.to_string()).or_default();
                        if ex.len() < per_rule {
                            ex.push(Example::new(o.doc.id, &o.doc.source, &o.doc.text));
                        }
                    }
                }
            }
            for (slot, c) in &o.counters {
                for (key, v) in &c.0 {
                    *stats.slots[*slot].counters.entry(key.clone()).or_insert(0) += v;
                }
            }
            match o.removed() {
                Some((slot, rule)) => {
                    if self.pipeline.settings.keep_removed {
                        removed.push(Removed { id: o.doc.id, source: o.doc.source.clone(), stage: names[slot].clone(), rule: rule.to_string(), text: o.doc.text.clone() });
                    }
                }
                None => {
                    if let Some(post) = pass.post {
                        match &self.pipeline.stages[post] {
                            Stage::Dedup(d) => d.sign(&o.doc, &mut sigs),
                            Stage::Doc(_) => unreachable!("post stages are dedup stages"),
                        }
                    }
                    stats.docs_out += 1;
                    stats.bytes_out += o.doc.text.len() as u64;
                    kept.push(&o.doc);
                }
            }
        }
        debug_assert_eq!(stats.slots.len(), n_slots);
        write_jsonl_zst(&self.data_path(p, k), &kept)?;
        if !removed.is_empty() {
            write_jsonl_zst(&self.out.join("removed").join(format!("pass-{p}-shard-{k:05}.jsonl.zst")), &removed)?;
        }
        if let Some(post) = pass.post {
            if let Stage::Dedup(d) = &self.pipeline.stages[post] {
                sigs.write(&self.sig_path(p, k), d.channels())?;
            }
        }
        jielong_core::fs::write_json_atomic(&self.stats_path(p, k), &stats)?;
        let done = self.done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if self.fail_after.is_some_and(|n| done >= n) {
            return Err(Error::input(format!("interrupted after {done} shards (fail_after_shards)")));
        }
        Ok(())
    }
}

/// Write JSON lines, zstd-compressed, atomically.
pub fn write_jsonl_zst<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut buf = Vec::new();
    for r in rows {
        serde_json::to_writer(&mut buf, r).map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
        buf.push(b'\n');
    }
    let z = zstd::stream::encode_all(&buf[..], 3).at(path)?;
    jielong_core::fs::write_atomic(path, &z)
}

/// Read JSON lines written by [`write_jsonl_zst`].
pub fn read_jsonl_zst<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let f = std::fs::File::open(path).at(path)?;
    let raw = zstd::stream::decode_all(f).map_err(|e| Error::format(path, format!("not a zstd file this run wrote ({e})")))?;
    raw.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).map_err(|e| Error::format(path, format!("bad JSON line ({e})"))))
        .collect()
}

fn check_out(out: &Path, manifest: &Manifest, resume: bool) -> Result<()> {
    let run_json = out.join("run.json");
    if run_json.exists() {
        let text = std::fs::read_to_string(&run_json).at(&run_json)?;
        let old: Manifest = serde_json::from_str(&text).map_err(|_| Error::format(&run_json, "not a jielong data clean run file"))?;
        if !resume {
            return Err(Error::input(format!(
                "{} already holds a cleaning run; pass --resume to continue it, or choose another --out",
                out.display()
            )));
        }
        if &old != manifest {
            return Err(Error::input(format!(
                "{} holds a different run (another pipeline or other inputs); choose another --out, or delete the folder",
                out.display()
            )));
        }
        return Ok(());
    }
    if out.exists() && std::fs::read_dir(out).at(out)?.next().is_some() {
        return Err(Error::input(format!("{} exists and is not empty; choose a new --out folder", out.display())));
    }
    std::fs::create_dir_all(out).at(out)?;
    jielong_core::fs::write_json_atomic(&run_json, manifest)
}

/// Run `pipeline` over `inputs` into `opts.out`.
pub fn run(pipeline: &Pipeline, inputs: &[PathBuf], opts: &RunOptions) -> Result<Report> {
    let start = Instant::now();
    let files = input::list_inputs(inputs)?;
    let manifest = Manifest {
        version: 1,
        pipeline: pipeline.toml.clone(),
        inputs: files.iter().map(|f| (f.display().to_string(), std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))).collect(),
    };
    check_out(&opts.out, &manifest, opts.resume)?;
    let report_path = opts.out.join("report.json");
    if opts.resume && report_path.exists() {
        let text = std::fs::read_to_string(&report_path).at(&report_path)?;
        return serde_json::from_str(&text).map_err(|_| Error::format(&report_path, "unreadable report; delete the folder and run again"));
    }
    let threads = if opts.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { opts.threads };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| Error::input(format!("thread pool: {e}")))?;
    let mut ctx = Ctx { pipeline, out: &opts.out, work: opts.out.join("work"), passes: passes(&pipeline.stages), plans: Vec::new(), done: Default::default(), fail_after: opts.fail_after_shards };
    ctx.plans = (0..pipeline.stages.len()).map(|_| None).collect();
    for p in 0..ctx.passes.len() {
        std::fs::create_dir_all(ctx.pass_dir(p).join("sigs")).at(&ctx.work)?;
    }
    std::fs::create_dir_all(opts.out.join("removed")).at(&opts.out)?;

    let mut report = Report { inputs: manifest.inputs.iter().map(|(f, _)| f.clone()).collect(), threads, ..Default::default() };
    let mut n_shards = 0usize;
    pool.install(|| -> Result<()> {
        // Pass 0: read in order, cut into shards, process each shard's documents in parallel.
        let shard_docs = pipeline.settings.shard_docs;
        let mut batch: Vec<(Doc, Option<Option<String>>)> = Vec::with_capacity(shard_docs);
        let mut next_id = 0u64;
        let mut read = ReadStats::default();
        let t0 = Instant::now();
        let flush = |batch: &mut Vec<(Doc, Option<Option<String>>)>, k: usize| -> Result<()> {
            let docs = std::mem::take(batch);
            if !ctx.stats_path(0, k).exists() {
                ctx.shard(0, k, docs)?;
            }
            Ok(())
        };
        for f in &files {
            let mut emit = |raw: RawDoc| -> Result<()> {
                let html = raw.html.then_some(raw.url);
                batch.push((Doc::new(next_id, raw.source, raw.text), html));
                next_id += 1;
                if batch.len() == shard_docs {
                    flush(&mut batch, n_shards)?;
                    n_shards += 1;
                    if opts.progress {
                        eprint!("\rpass 1/{}: {} documents read, {:.0}/s   ", ctx.passes.len(), next_id, next_id as f64 / t0.elapsed().as_secs_f64());
                    }
                }
                Ok(())
            };
            match input::read_file(f, &mut read, &mut emit) {
                Ok(()) => {}
                Err(Ok(e)) => return Err(e),
                Err(Err(problem)) => {
                    if opts.strict {
                        return Err(Error::input(format!("{}: {} (without --strict this is counted and the run goes on)", problem.file, problem.error)));
                    }
                    report.problems.push(problem);
                }
            }
        }
        if !batch.is_empty() || n_shards == 0 {
            flush(&mut batch, n_shards)?;
            n_shards += 1;
        }
        if opts.progress {
            eprintln!("\rpass 1/{}: {} documents in {} shards, {:.1} s            ", ctx.passes.len(), next_id, n_shards, t0.elapsed().as_secs_f64());
        }
        report.read = read;
        if next_id == 0 {
            return Err(Error::input("the inputs hold no documents (empty files, or JSONL lines without a \"text\" or \"html\" field)"));
        }
        // Later passes: reduce the previous pass's signatures, then filter and go on per shard.
        for p in 1..ctx.passes.len() {
            let stage = ctx.passes[p].pre.expect("later passes start with a dedup filter");
            let plan_path = ctx.plan_path(stage);
            let plan = if plan_path.exists() {
                Plan::load(&plan_path)?
            } else {
                let sigs: Vec<PathBuf> = (0..n_shards).map(|k| ctx.sig_path(p - 1, k)).collect();
                let Stage::Dedup(d) = &pipeline.stages[stage] else { unreachable!("pre stages are dedup stages") };
                let plan = d.reduce(&sigs)?;
                plan.save(&plan_path)?;
                plan
            };
            ctx.plans[stage] = Some(plan);
            let t = Instant::now();
            (0..n_shards).into_par_iter().try_for_each(|k| -> Result<()> {
                if ctx.stats_path(p, k).exists() {
                    return Ok(());
                }
                let docs: Vec<Doc> = read_jsonl_zst(&ctx.data_path(p - 1, k))?;
                ctx.shard(p, k, docs.into_iter().map(|d| (d, None)).collect())
            })?;
            if opts.progress {
                eprintln!("pass {}/{}: {} shards, {:.1} s", p + 1, ctx.passes.len(), n_shards, t.elapsed().as_secs_f64());
            }
        }
        Ok(())
    })?;

    // Fold every shard's statistics, in order.
    let names = ctx.slot_names();
    let mut slots: Vec<StageReport> = names.iter().map(|n| StageReport::new(n)).collect();
    let last = ctx.passes.len() - 1;
    for p in 0..ctx.passes.len() {
        for k in 0..n_shards {
            let path = ctx.stats_path(p, k);
            let s: ShardStats = serde_json::from_str(&std::fs::read_to_string(&path).at(&path)?).map_err(|_| Error::format(&path, "unreadable shard statistics"))?;
            for (slot, st) in slots.iter_mut().zip(&s.slots) {
                slot.merge(st, pipeline.settings.examples_per_rule);
            }
            if p == last {
                report.docs_out += s.docs_out;
                report.bytes_out += s.bytes_out;
            }
            if p == 0 {
                report.docs_in += s.docs_in;
                report.bytes_in += s.bytes_in;
            }
        }
    }
    for (i, plan) in ctx.plans.iter().enumerate() {
        if let Some(plan) = plan {
            for (k, v) in &plan.counters.0 {
                *slots[i + 1].counters.entry(k.clone()).or_insert(0) += v;
            }
        }
    }
    // Slot 0 (extraction) only when there was HTML.
    report.stages = slots.into_iter().enumerate().filter(|(i, s)| *i > 0 || s.docs_in > 0).map(|(_, s)| s).collect();
    report.shards = n_shards;
    report.seconds = start.elapsed().as_secs_f64();
    jielong_core::fs::write_atomic(&opts.out.join("report.md"), report.markdown().as_bytes())?;
    jielong_core::fs::write_json_atomic(&report_path, &report)?;
    let _ = std::fs::remove_dir_all(&ctx.work);
    Ok(report)
}
