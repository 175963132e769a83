//! `train.objective = "seq2seq"`: an encoder-decoder trained with teacher forcing on JSON lines
//! `{"source": …, "target": …}` (what `jielong task make` writes).
//!
//! `data.dir` is a folder holding `train.jsonl` (and `val.jsonl`, optional) or one `.jsonl`
//! file. Source and target share one tokenizer: `tokenizer.json` beside the data when there is
//! one, else a character-level tokenizer trained on the pairs themselves (saved in the run
//! folder, so `generate`, `eval` and `--resume` read the same one). Each source becomes its
//! ids; the decoder reads `<|endoftext|>` + target and learns to write target +
//! `<|endoftext|>`.
//!
//! The batch for step s is drawn from `Rng::derive(seed, [step, micro])`, the optimizer state
//! is saved, so a resumed run computes the same losses as one never stopped (the causal-LM
//! loop's guarantee).

use crate::checkpoint::{self, Checkpoint, CheckpointMeta, CKPT_VERSION};
use crate::config::RunConfig;
use crate::metrics::{self, MetricRow};
use crate::budget::TimeBudget;
use crate::schedule::lr_at;
use crate::step::StepRunner;
use crate::trainer::{Event, TrainSummary};
use candle_core::{Device, Tensor};
use jielong_core::{Error, Result, Rng};
use jielong_models::{ForwardOpts, Seq2seq};
use jielong_tokenizer::{Tokenizer, TokenizerKind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// One example read from a JSONL file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Pair {
    pub source: String,
    pub target: String,
}

/// Read `{"source": …, "target": …}` lines; blank lines are skipped. A bad line is an error
/// naming the file and line.
pub fn read_pairs(path: &Path) -> Result<Vec<Pair>> {
    if !path.exists() {
        return Err(Error::input(format!("{}: file not found (JSON lines {{\"source\": …, \"target\": …}}, e.g. from `jielong task make`)", path.display())));
    }
    let text = jielong_core::fs::read_to_string(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| Error::format(path, format!("line {}: not JSON ({e})", i + 1)))?;
        let field = |k: &str| match v.get(k) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(Error::format(path, format!("line {}: \"{k}\" must be a string", i + 1))),
            None => Err(Error::format(path, format!("line {}: no \"{k}\" field; each line needs {{\"source\": …, \"target\": …}}", i + 1))),
        };
        out.push(Pair { source: field("source")?, target: field("target")? });
    }
    if out.is_empty() {
        return Err(Error::input(format!("{}: holds no pairs", path.display())));
    }
    Ok(out)
}

/// The training and validation files of `data.dir`.
pub fn data_files(dir: &Path) -> Result<(PathBuf, Option<PathBuf>)> {
    if dir.is_file() {
        return Ok((dir.to_path_buf(), None));
    }
    let train = dir.join("train.jsonl");
    if !train.exists() {
        return Err(Error::input(format!(
            "{}: objective seq2seq reads data.dir/train.jsonl (and val.jsonl) or a .jsonl file; make one with `jielong task make reverse --n 5000 --out {}`",
            dir.display(),
            train.display()
        )));
    }
    let val = dir.join("val.jsonl");
    Ok((train, val.exists().then_some(val)))
}

/// Pairs as token ids: sources, and targets without start or end token.
#[derive(Debug, Clone, Default)]
pub struct PairIds {
    pub src: Vec<Vec<u32>>,
    pub tgt: Vec<Vec<u32>>,
}

impl PairIds {
    /// Encode `pairs`; a source or target (plus its end token) longer than `max_len` is an
    /// error that names the line.
    pub fn encode(tok: &Tokenizer, pairs: &[Pair], max_len: usize, origin: &Path) -> Result<Self> {
        let mut out = PairIds::default();
        for (i, p) in pairs.iter().enumerate() {
            let (s, t) = (tok.encode(&p.source)?, tok.encode(&p.target)?);
            if s.is_empty() {
                return Err(Error::format(origin, format!("pair {}: the source is empty", i + 1)));
            }
            if s.len() > max_len || t.len() + 1 > max_len {
                return Err(Error::format(origin, format!(
                    "pair {}: {} source and {} target tokens, more than model.max_seq_len = {max_len} (the target needs one more for its end): raise model.max_seq_len",
                    i + 1,
                    s.len(),
                    t.len()
                )));
            }
            out.src.push(s);
            out.tgt.push(t);
        }
        Ok(out)
    }

    pub fn len(&self) -> usize {
        self.src.len()
    }

    pub fn is_empty(&self) -> bool {
        self.src.is_empty()
    }
}

/// A padded batch.
pub struct PairBatch {
    pub src: Tensor,
    pub src_lens: Vec<usize>,
    pub tgt_in: Tensor,
    pub targets: Tensor,
    pub tgt_lens: Vec<usize>,
}

/// Pad the pairs `rows` of `data` into tensors; `bos_eos` starts the decoder input and ends
/// the target.
pub fn make_batch(data: &PairIds, rows: &[usize], bos_eos: u32, dev: &Device) -> Result<PairBatch> {
    let s_max = rows.iter().map(|&r| data.src[r].len()).max().unwrap_or(1);
    let t_max = rows.iter().map(|&r| data.tgt[r].len() + 1).max().unwrap_or(1);
    let (mut src, mut tin, mut tout) = (Vec::new(), Vec::new(), Vec::new());
    for &r in rows {
        let s = &data.src[r];
        src.extend(s.iter().copied().chain(std::iter::repeat_n(0, s_max - s.len())));
        let t = &data.tgt[r];
        tin.extend(std::iter::once(bos_eos).chain(t.iter().copied()).chain(std::iter::repeat_n(0, t_max - t.len() - 1)));
        tout.extend(t.iter().copied().chain(std::iter::once(bos_eos)).chain(std::iter::repeat_n(0, t_max - t.len() - 1)));
    }
    let b = rows.len();
    Ok(PairBatch {
        src: Tensor::from_vec(src, (b, s_max), dev)?,
        src_lens: rows.iter().map(|&r| data.src[r].len()).collect(),
        tgt_in: Tensor::from_vec(tin, (b, t_max), dev)?,
        targets: Tensor::from_vec(tout, (b, t_max), dev)?,
        tgt_lens: rows.iter().map(|&r| data.tgt[r].len() + 1).collect(),
    })
}

/// The rows of micro-batch `micro` of step `step`: drawn with replacement.
fn rows_for(n: usize, batch_size: usize, seed: u64, step: u64, micro: u64) -> Vec<usize> {
    let mut rng = Rng::derive(seed, &[step, micro, 0x5E0]);
    (0..batch_size).map(|_| (rng.next_u64() % n as u64) as usize).collect()
}

/// Mean teacher-forced cross-entropy (nats per target token, end token included) over
/// every pair of `data` (at most `max_pairs`).
pub fn eval_loss(model: &dyn Seq2seq, data: &PairIds, bos_eos: u32, batch_size: usize, max_pairs: usize) -> Result<f64> {
    let n = data.len().min(max_pairs.max(1));
    let (mut sum, mut count) = (0f64, 0usize);
    let rows: Vec<usize> = (0..n).collect();
    for chunk in rows.chunks(batch_size.max(1)) {
        let b = make_batch(data, chunk, bos_eos, &Device::Cpu)?;
        let loss = model.loss(&b.src, &b.src_lens, &b.tgt_in, &b.targets, &b.tgt_lens, ForwardOpts::default())?;
        let k: usize = b.tgt_lens.iter().sum();
        sum += loss.to_scalar::<f32>()? as f64 * k as f64;
        count += k;
    }
    Ok(sum / count.max(1) as f64)
}

/// The tokenizer of a seq2seq run: the run folder's (resume), `tokenizer.json` beside the
/// data, or a character-level one trained on the pairs.
fn tokenizer_for(data_dir: &Path, run_dir: &Path, resume: bool, pairs: &[Pair]) -> Result<Tokenizer> {
    if resume {
        return Tokenizer::load(&run_dir.join("tokenizer.json"));
    }
    let beside = if data_dir.is_file() { data_dir.with_file_name("tokenizer.json") } else { data_dir.join("tokenizer.json") };
    if beside.exists() {
        return Tokenizer::load(&beside);
    }
    let texts = pairs.iter().flat_map(|p| [p.source.as_str(), p.target.as_str()]);
    Tokenizer::train(TokenizerKind::Char, 100_000, texts)
}

/// Train (or resume) a seq2seq run; the same events and summary as the causal-LM loop.
pub fn train(run_dir: &Path, mut cfg: RunConfig, resume: bool, stop: &AtomicBool, on_event: &mut dyn FnMut(Event)) -> Result<TrainSummary> {
    let began = Instant::now();
    let dev = Device::Cpu;
    let (train_path, val_path) = data_files(&cfg.data.dir)?;
    let train_pairs = read_pairs(&train_path)?;
    let val_pairs = val_path.as_deref().map(read_pairs).transpose()?;
    let tok = tokenizer_for(&cfg.data.dir, run_dir, resume, &train_pairs)?;
    let eos = tok.eot_id().ok_or_else(|| Error::input("the tokenizer has no <|endoftext|> token: a seq2seq model needs it to start and end targets"))?;
    if cfg.train.init_from.is_some() || cfg.train.init_embeddings.is_some() {
        return Err(Error::input("train.init_from and train.init_embeddings are not supported with objective seq2seq yet"));
    }
    if cfg.model.vocab_size() == 0 {
        cfg.model.set_vocab_size(tok.vocab_size());
    } else if cfg.model.vocab_size() < tok.vocab_size() {
        return Err(Error::input(format!("model.vocab_size = {} is smaller than the tokenizer's {} ids: raise it or leave it out", cfg.model.vocab_size(), tok.vocab_size())));
    }
    cfg.model.validate()?;
    let max_len = cfg.model.max_seq_len();
    let train_data = PairIds::encode(&tok, &train_pairs, max_len, &train_path)?;
    let val_data = match (&val_pairs, &val_path) {
        (Some(p), Some(path)) => Some(PairIds::encode(&tok, p, max_len, path)?),
        _ => None,
    };
    let mut runner = StepRunner::new(&cfg.model, &cfg.train, &dev)?;
    let metrics_path = run_dir.join("metrics.jsonl");
    let (mut start_step, mut tokens_seen, mut elapsed_before, mut last_val) = (0u64, 0u64, 0f64, None);
    if resume {
        let ckpt = Checkpoint::open(run_dir)?;
        if ckpt.meta.model != cfg.model {
            return Err(Error::input("the model config differs from the checkpoint's: model.* cannot change on resume"));
        }
        runner.params.load(&ckpt.dir.join("model.safetensors"), |n| Some(n.to_string()))?;
        runner.opt.load(&ckpt.dir.join("optim.safetensors"), ckpt.meta.step)?;
        start_step = ckpt.meta.step;
        tokens_seen = ckpt.meta.tokens_seen;
        elapsed_before = ckpt.meta.elapsed_s;
        last_val = ckpt.meta.val_loss;
        metrics::truncate_after(&metrics_path, start_step)?;
    } else {
        if !checkpoint::list(run_dir)?.is_empty() {
            return Err(Error::input(format!("{} already holds checkpoints: continue it with --resume {0}, or pick another --out", run_dir.display())));
        }
        std::fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, e))?;
        let _ = std::fs::remove_file(&metrics_path);
        tok.save(run_dir)?;
    }
    // A run for a wall-clock budget: no timed calibration here; the first re-plan (after a few
    // steps, inside the warm-up) lays the schedule out from the measured pace (crate::budget).
    let mut budget = (!resume && cfg.train.max_minutes > 0.0).then(|| TimeBudget::new(cfg.train.max_minutes * 60.0, began, cfg.train.max_steps, 400));
    cfg.train.max_minutes = 0.0;
    checkpoint::save_config(run_dir, &cfg)?;
    let model = runner.model.as_seq2seq().ok_or_else(|| Error::Other("objective seq2seq without a seq2seq model".into()))?;
    let mean_target = train_data.tgt.iter().map(|t| t.len() + 1).sum::<usize>() / train_data.len().max(1);
    let tokens_per_step = cfg.train.batch_size * cfg.train.grad_accum * mean_target;
    // The unigram baseline of the targets (end token included).
    let flat = |d: &PairIds| d.tgt.iter().flat_map(|t| t.iter().copied().chain([eos])).collect::<Vec<u32>>();
    let baseline = jielong_data::UnigramBaseline::fit(&flat(&train_data), cfg.model.vocab_size()).cross_entropy(&flat(val_data.as_ref().unwrap_or(&train_data)));
    on_event(Event::Start { step: start_step, max_steps: cfg.train.max_steps, n_params: runner.params.n_params(), tokens_per_step, resumed: resume, model: cfg.model.describe() });

    let mut tc = cfg.train.clone();
    let started = Instant::now();
    let (mut step, mut step_losses, mut interrupted, mut last_ckpt) = (start_step, Vec::new(), false, None);
    while step < tc.max_steps {
        let t0 = Instant::now();
        let lr = lr_at(&tc, step);
        let mut total: Option<Tensor> = None;
        let mut loss_sum = 0f64;
        let mut tokens = 0usize;
        for micro in 0..tc.grad_accum as u64 {
            let rows = rows_for(train_data.len(), tc.batch_size, tc.seed, step, micro);
            let b = make_batch(&train_data, &rows, eos, &dev)?;
            tokens += b.tgt_lens.iter().sum::<usize>();
            let seed = Rng::derive(tc.seed, &[step, micro, 0xD0]).next_u64();
            let loss = model.loss(&b.src, &b.src_lens, &b.tgt_in, &b.targets, &b.tgt_lens, ForwardOpts { dropout_seed: Some(seed), first_row: 0 })?;
            loss_sum += loss.to_scalar::<f32>()? as f64;
            let scaled = loss.affine(1.0 / tc.grad_accum as f64, 0.0)?;
            total = Some(match total {
                None => scaled,
                Some(t) => (t + scaled)?,
            });
        }
        let loss = loss_sum / tc.grad_accum as f64;
        if !loss.is_finite() {
            return Err(Error::Other(format!("loss became {loss} at step {step}: lower train.learning_rate or set train.grad_clip")));
        }
        let grads = total.expect("grad_accum ≥ 1").backward()?;
        let grad_norm = runner.opt.grad_norm(&grads)?;
        let clip = if tc.grad_clip > 0.0 && grad_norm > tc.grad_clip { tc.grad_clip / (grad_norm + 1e-6) } else { 1.0 };
        runner.opt.step(&grads, lr, clip)?;
        step += 1;
        if let Some(max_steps) = budget.as_mut().and_then(|b| b.after_step(step)) {
            crate::trainer::replan(run_dir, &mut cfg, &mut tc, max_steps)?;
        }
        tokens_seen += tokens as u64;
        let tokens_per_s = tokens as f64 / t0.elapsed().as_secs_f64();
        step_losses.push((step, loss));
        let elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
        metrics::append(&metrics_path, &MetricRow { step, loss: Some(loss), val_loss: None, lr: Some(lr), grad_norm: Some(grad_norm), tokens_per_s: Some(tokens_per_s), tokens_seen, elapsed_s })?;
        on_event(Event::Step { step, loss, lr, grad_norm, tokens_per_s });
        let last = step == tc.max_steps;
        interrupted = stop.load(Ordering::SeqCst) && !last;
        if let (true, Some(val)) = (step.is_multiple_of(tc.eval_interval) || last, &val_data) {
            let v = eval_loss(model, val, eos, tc.batch_size, tc.eval_windows * tc.batch_size)?;
            last_val = Some(v);
            metrics::append(&metrics_path, &MetricRow { step, loss: None, val_loss: Some(v), lr: None, grad_norm: None, tokens_per_s: None, tokens_seen, elapsed_s })?;
            on_event(Event::Eval { step, val_loss: v });
            crate::trainer::write_plot(run_dir, baseline)?;
        }
        if step.is_multiple_of(tc.checkpoint_interval) || last || interrupted {
            let meta = CheckpointMeta {
                format_version: CKPT_VERSION,
                family: cfg.model.family().into(),
                model: cfg.model.clone(),
                objective: tc.objective,
                tokenizer_hash: tok.hash().to_string(),
                step,
                tokens_seen,
                seed: tc.seed,
                val_loss: last_val,
                train_loss: Some(loss),
                elapsed_s: elapsed_before + started.elapsed().as_secs_f64(),
            };
            let path = checkpoint::save(run_dir, &meta, &runner.params, &runner.opt, tc.keep_checkpoints, None)?;
            on_event(Event::Checkpoint { step, path: path.clone() });
            last_ckpt = Some(path);
        }
        if interrupted {
            break;
        }
    }
    crate::trainer::write_plot(run_dir, baseline)?;
    let checkpoint = match last_ckpt {
        Some(p) => p,
        None => checkpoint::latest(run_dir)?.ok_or_else(|| Error::Other("no checkpoint was written".into()))?,
    };
    let train_loss = eval_loss(model, &train_data, eos, tc.batch_size, tc.eval_windows * tc.batch_size)?;
    Ok(TrainSummary {
        steps: step,
        tokens_seen,
        train_loss,
        val_loss: last_val,
        baseline_loss: baseline,
        interrupted,
        elapsed_s: elapsed_before + started.elapsed().as_secs_f64(),
        checkpoint,
        step_losses,
    })
}
