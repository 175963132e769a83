//! The training loop, in nanoGPT's fixed order: learning rate → micro-steps (forward,
//! backward) → clip → AdamW → log → maybe evaluate → maybe checkpoint.
//!
//! Exact resume: the batch for step s and its dropout masks are derived from (seed, s), the
//! optimizer moments and step count are saved, and the schedule is a function of the step, so a
//! run resumed from its checkpoint at step s computes the same losses as one never stopped.

use crate::budget::TimeBudget;
use crate::checkpoint::{self, Checkpoint, CheckpointMeta, CKPT_VERSION};
use crate::config::{Batching, RunConfig};
use crate::eval::evaluate;
use crate::metrics::{self, MetricRow};
use crate::schedule::lr_at;
use crate::step::StepRunner;
use candle_core::Device;
use jielong_core::{Error, Result};
use jielong_data::{RandomWindows, SequentialStreams, TokenDataset, UnigramBaseline};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// What the loop reports to its caller (the CLI draws a progress bar from these).
#[derive(Debug, Clone)]
pub enum Event {
    /// Training is about to start at `step` of `max_steps`.
    Start { step: u64, max_steps: u64, n_params: usize, tokens_per_step: usize, resumed: bool, model: String },
    Step { step: u64, loss: f64, lr: f64, grad_norm: f64, tokens_per_s: f64 },
    Eval { step: u64, val_loss: f64 },
    /// After `Eval` when training with `train.sentence_task`: the validation pairs' figures
    /// (`val_loss` of `Eval` is then the MLM loss alone).
    SentenceEval { step: u64, task: jielong_models::SentenceTask, stats: crate::sentence::PairStats },
    Checkpoint { step: u64, path: std::path::PathBuf },
    /// `train.init_embeddings` copied word vectors into the embedding table (fresh runs only).
    EmbeddingsInitialized(crate::EmbeddingInit),
}

#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub steps: u64,
    pub tokens_seen: u64,
    pub train_loss: f64,
    pub val_loss: Option<f64>,
    /// Unigram baseline on the validation split (or train, when there is no validation).
    pub baseline_loss: f64,
    pub interrupted: bool,
    pub elapsed_s: f64,
    pub checkpoint: std::path::PathBuf,
    /// Losses of every step run in this call, in order (for tests and reports).
    pub step_losses: Vec<(u64, f64)>,
}

fn copy_tokenizer(data_dir: &Path, run_dir: &Path) -> Result<()> {
    let src = data_dir.join("tokenizer.json");
    let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
    jielong_core::fs::write_atomic(&run_dir.join("tokenizer.json"), &bytes)
}

/// Train (or resume, when `resume` is true and `run_dir` holds a checkpoint). Setting `stop`
/// makes the loop write a checkpoint after the current step and return with `interrupted`.
pub fn train(
    run_dir: &Path,
    mut cfg: RunConfig,
    resume: bool,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event),
) -> Result<TrainSummary> {
    // issue 15: an encoder-decoder reads pairs, not token shards.
    if cfg.train.objective == crate::Objective::Seq2seq {
        return crate::seq2seq::train(run_dir, cfg, resume, stop, on_event);
    }
    let began = Instant::now();
    let dev = Device::Cpu;
    let train_data = TokenDataset::open(&cfg.data.dir, "train")?;
    let val_data = TokenDataset::open(&cfg.data.dir, "val")?;
    let meta = train_data.meta.clone();
    if cfg.train.init_from.is_some() && cfg.train.init_embeddings.is_some() && !resume {
        return Err(Error::input("train.init_from and train.init_embeddings (--init-embeddings) cannot both be set: a checkpoint already has its embeddings"));
    }
    // A run that starts from another checkpoint's weights takes its model config too.
    let init = match (&cfg.train.init_from, resume) {
        (Some(path), false) => {
            let ckpt = Checkpoint::open(path)?;
            if ckpt.meta.tokenizer_hash != meta.tokenizer_hash {
                return Err(Error::input(format!(
                    "train.init_from: {} was trained with another tokenizer than the data in {}: prepare the data with its tokenizer ({})",
                    ckpt.dir.display(),
                    cfg.data.dir.display(),
                    ckpt.tokenizer_path().display()
                )));
            }
            cfg.model = ckpt.meta.model.clone();
            Some(ckpt)
        }
        _ => None,
    };
    if cfg.model.vocab_size() == 0 {
        cfg.model.set_vocab_size(meta.vocab_size);
    } else if cfg.model.vocab_size() < meta.vocab_size {
        return Err(Error::input(format!(
            "model.vocab_size = {} is smaller than the tokenizer's {} ids: raise it or leave it out",
            cfg.model.vocab_size(),
            meta.vocab_size
        )));
    }
    cfg.model.validate()?;
    let t = cfg.model.max_seq_len();
    let sampler = RandomWindows::new(&train_data, cfg.train.seed, cfg.train.batch_size, t)?;
    let mut runner = StepRunner::new(&cfg.model, &cfg.train, &dev)?;
    if cfg.train.objective == crate::Objective::Mlm {
        let tk = jielong_tokenizer::Tokenizer::load(&cfg.data.dir.join("tokenizer.json"))?;
        runner.masker = Some(std::sync::Arc::new(crate::mlm::MlmMasker::new(&tk, cfg.train.mlm_probability, cfg.train.whole_word_mask)?));
        if let Some(task) = cfg.train.sentence_task.task() {
            crate::sentence::check_model(task, &*runner.model)?;
            if t < 8 {
                return Err(Error::input(format!("train.sentence_task = \"{}\" cuts each window into [CLS] A [SEP] B [SEP]: model.max_seq_len = {t} is too short, use at least 8", task.name())));
            }
            runner.pairs = Some(std::sync::Arc::new(crate::sentence::PairMaker::new(&tk, task)?));
        }
    }
    // Sequential batching (recurrent families): streams read in order, the state carried.
    let streams = match cfg.train.batching {
        Batching::Random => None,
        Batching::Sequential => {
            if runner.model.as_recurrent().is_none() {
                return Err(Error::input(format!(
                    "train.batching = \"sequential\" carries a recurrent state from batch to batch; family {} has none: use batching = \"random\" or family rnn, lstm or gru",
                    cfg.model.family()
                )));
            }
            Some(SequentialStreams::new(train_data.len(), cfg.train.batch_size, t)?)
        }
    };
    if let Some(ckpt) = &init {
        runner.params.load(&ckpt.dir.join("model.safetensors"), |n| Some(n.to_string()))?;
    }

    let metrics_path = run_dir.join("metrics.jsonl");
    let mut start_step = 0u64;
    let mut tokens_seen = 0u64;
    let mut elapsed_before = 0f64;
    let mut last_val = None;
    // A run for a wall-clock budget re-plans its steps from the measured pace (crate::budget).
    let mut budget = None;
    if resume {
        let ckpt = Checkpoint::open(run_dir)?;
        if ckpt.meta.tokenizer_hash != meta.tokenizer_hash {
            return Err(Error::input(format!(
                "the data in {} was made with a different tokenizer than the checkpoint {}: resume with the data the run started with",
                cfg.data.dir.display(),
                ckpt.dir.display()
            )));
        }
        if ckpt.meta.model != cfg.model {
            return Err(Error::input("the model config differs from the checkpoint's: model.* cannot change on resume"));
        }
        runner.params.load(&ckpt.dir.join("model.safetensors"), |n| Some(n.to_string()))?;
        runner.opt.load(&ckpt.dir.join("optim.safetensors"), ckpt.meta.step)?;
        if streams.is_some() {
            runner.carry = checkpoint::load_carry(&ckpt.dir)?;
            if runner.carry.is_none() && ckpt.meta.step > 0 {
                return Err(Error::input(format!(
                    "{} holds no carried state (carry.safetensors): it was trained with batching = \"random\"; resume with the batching it started with",
                    ckpt.dir.display()
                )));
            }
        }
        start_step = ckpt.meta.step;
        tokens_seen = ckpt.meta.tokens_seen;
        elapsed_before = ckpt.meta.elapsed_s;
        last_val = ckpt.meta.val_loss;
        metrics::truncate_after(&metrics_path, start_step)?;
    } else {
        if !checkpoint::list(run_dir)?.is_empty() {
            return Err(Error::input(format!(
                "{} already holds checkpoints: continue it with --resume {0}, or pick another --out",
                run_dir.display()
            )));
        }
        // Before the run folder is made: a bad vectors folder leaves nothing behind.
        if let Some(dir) = &cfg.train.init_embeddings {
            let tokenizer = jielong_tokenizer::Tokenizer::load(&cfg.data.dir.join("tokenizer.json"))?;
            let done = crate::init_embeddings(&runner.params, &cfg.model, &tokenizer, dir)?;
            on_event(Event::EmbeddingsInitialized(done));
        }
        std::fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, e))?;
        let _ = std::fs::remove_file(&metrics_path);
        if cfg.train.max_minutes > 0.0 {
            let (budget_s, cap) = (cfg.train.max_minutes * 60.0, cfg.train.max_steps);
            calibrate(&mut cfg, &runner, &train_data, &sampler)?;
            budget = Some(TimeBudget::new(budget_s, began, cap, cfg.train.max_steps));
        }
    }
    copy_tokenizer(&cfg.data.dir, run_dir)?;
    checkpoint::save_config(run_dir, &cfg)?;

    let baseline_ids = if val_data.is_empty() { train_data.to_vec() } else { val_data.to_vec() };
    let baseline = UnigramBaseline::fit(&train_data.to_vec(), cfg.model.vocab_size()).cross_entropy(&baseline_ids);
    let tokens_per_step = cfg.train.batch_size * cfg.train.grad_accum * t;
    on_event(Event::Start {
        step: start_step,
        max_steps: cfg.train.max_steps,
        n_params: runner.params.n_params(),
        tokens_per_step,
        resumed: resume,
        model: cfg.model.describe(),
    });

    let started = Instant::now();
    let mut step_losses = Vec::new();
    let mut interrupted = false;
    let mut last_ckpt = None;
    let mut step = start_step;
    let mut tc = cfg.train.clone();
    while step < tc.max_steps {
        let t0 = Instant::now();
        let lr = lr_at(&tc, step);
        let stats = match &streams {
            None => {
                let batches: Vec<_> = (0..tc.grad_accum as u64).map(|m| sampler.batch(&train_data, step, m)).collect();
                runner.step(&batches, lr, tc.grad_clip, tc.seed, step)?
            }
            Some(streams) => {
                let ks: Vec<u64> = (0..tc.grad_accum as u64).map(|m| step * tc.grad_accum as u64 + m).collect();
                let batches: Vec<_> = ks.iter().map(|&k| streams.batch(&train_data, k)).collect();
                let resets: Vec<bool> = ks.iter().map(|&k| streams.starts_epoch(k)).collect();
                runner.step_carried(&batches, &resets, lr, tc.grad_clip, tc.seed, step)?
            }
        };
        if !stats.loss.is_finite() {
            return Err(Error::Other(format!(
                "loss became {} at step {step}: lower train.learning_rate or set train.grad_clip",
                stats.loss
            )));
        }
        step += 1;
        if let Some(max_steps) = budget.as_mut().and_then(|b: &mut TimeBudget| b.after_step(step)) {
            replan(run_dir, &mut cfg, &mut tc, max_steps)?;
        }
        tokens_seen += tokens_per_step as u64;
        let tokens_per_s = tokens_per_step as f64 / t0.elapsed().as_secs_f64();
        step_losses.push((step, stats.loss));
        let elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
        let row = MetricRow {
            step,
            loss: Some(stats.loss),
            val_loss: None,
            lr: Some(lr),
            grad_norm: Some(stats.grad_norm),
            tokens_per_s: Some(tokens_per_s),
            tokens_seen,
            elapsed_s,
        };
        metrics::append_with_pairs(&metrics_path, &row, runner.pairs.as_deref().map(|p| p.task), stats.pair.as_ref(), "")?;
        on_event(Event::Step { step, loss: stats.loss, lr, grad_norm: stats.grad_norm, tokens_per_s });

        let last = step == tc.max_steps;
        interrupted = stop.load(Ordering::SeqCst) && !last;
        if (step.is_multiple_of(tc.eval_interval) || last) && !val_data.is_empty() {
            let r = evaluate(&*runner.model, tc.objective, &val_data, tc.batch_size, t, tc.eval_windows, &dev, runner.masker.as_deref(), runner.pairs.as_deref())?;
            last_val = Some(r.loss);
            let row = MetricRow {
                step,
                loss: None,
                val_loss: Some(r.loss),
                lr: None,
                grad_norm: None,
                tokens_per_s: None,
                tokens_seen,
                elapsed_s,
            };
            metrics::append_with_pairs(&metrics_path, &row, runner.pairs.as_deref().map(|p| p.task), r.pair.as_ref(), "val_")?;
            on_event(Event::Eval { step, val_loss: r.loss });
            if let (Some(pm), Some(stats)) = (&runner.pairs, r.pair) {
                on_event(Event::SentenceEval { step, task: pm.task, stats });
            }
            write_plot(run_dir, baseline)?;
        }
        if step.is_multiple_of(tc.checkpoint_interval) || last || interrupted {
            let meta = CheckpointMeta {
                format_version: CKPT_VERSION,
                family: cfg.model.family().into(),
                model: cfg.model.clone(),
                objective: tc.objective,
                tokenizer_hash: meta.tokenizer_hash.clone(),
                step,
                tokens_seen,
                seed: tc.seed,
                val_loss: last_val,
                train_loss: Some(stats.loss),
                elapsed_s: elapsed_before + started.elapsed().as_secs_f64(),
            };
            let path = checkpoint::save(run_dir, &meta, &runner.params, &runner.opt, tc.keep_checkpoints, runner.carry.as_ref())?;
            on_event(Event::Checkpoint { step, path: path.clone() });
            last_ckpt = Some(path);
        }
        if interrupted {
            break;
        }
    }
    write_plot(run_dir, baseline)?;
    let checkpoint = match last_ckpt {
        Some(p) => p,
        None => checkpoint::latest(run_dir)?.ok_or_else(|| Error::Other("no checkpoint was written".into()))?,
    };
    let train_eval = evaluate(&*runner.model, tc.objective, &train_data, tc.batch_size, t, tc.eval_windows, &dev, runner.masker.as_deref(), runner.pairs.as_deref())?;
    Ok(TrainSummary {
        steps: step,
        tokens_seen,
        train_loss: train_eval.loss,
        val_loss: last_val,
        baseline_loss: baseline,
        interrupted,
        elapsed_s: elapsed_before + started.elapsed().as_secs_f64(),
        checkpoint,
        step_losses,
    })
}

pub(crate) fn write_plot(run_dir: &Path, baseline: f64) -> Result<()> {
    let rows = metrics::read(&run_dir.join("metrics.jsonl"));
    jielong_core::fs::write_atomic(&run_dir.join("loss.svg"), metrics::plot_svg(&rows, Some(baseline)).as_bytes())
}

/// Lay the schedule out for `max_steps` from here on, and save it in the run's config so that
/// a resumed run follows the same schedule.
pub(crate) fn replan(run_dir: &Path, cfg: &mut RunConfig, tc: &mut crate::TrainConfig, max_steps: u64) -> Result<()> {
    if max_steps != tc.max_steps {
        tc.max_steps = max_steps;
        cfg.train.max_steps = max_steps;
        checkpoint::save_config(run_dir, cfg)?;
    }
    Ok(())
}

/// Time a few forward/backward passes (no update) and cap `max_steps` to fit `max_minutes`.
fn calibrate(cfg: &mut RunConfig, runner: &StepRunner, data: &TokenDataset, sampler: &RandomWindows) -> Result<()> {
    let per_step = time_step(cfg, runner, data, sampler)?;
    let fit = ((cfg.train.max_minutes * 60.0) / per_step).floor().max(1.0) as u64;
    cfg.train.max_steps = cfg.train.max_steps.min(fit);
    cfg.train.warmup_steps = cfg.train.warmup_steps.min(cfg.train.max_steps / 10);
    cfg.train.max_minutes = 0.0;
    Ok(())
}

/// Seconds one training step of `cfg` takes on its data, as the `max_minutes` schedule fits
/// it (a few timed forward/backward passes, plus 15% for the optimizer, evaluation and
/// checkpoints): how `jielong compare` gives every family the same wall time before training.
pub fn seconds_per_step(cfg: &RunConfig) -> Result<f64> {
    let train_data = TokenDataset::open(&cfg.data.dir, "train")?;
    let mut cfg = cfg.clone();
    if cfg.model.vocab_size() == 0 {
        cfg.model.set_vocab_size(train_data.meta.vocab_size);
    }
    cfg.model.validate()?;
    let sampler = RandomWindows::new(&train_data, cfg.train.seed, cfg.train.batch_size, cfg.model.max_seq_len())?;
    let runner = StepRunner::new(&cfg.model, &cfg.train, &Device::Cpu)?;
    time_step(&cfg, &runner, &train_data, &sampler)
}

/// Time a few forward/backward passes (no update): seconds per step, with 15% for the rest.
fn time_step(cfg: &RunConfig, runner: &StepRunner, data: &TokenDataset, sampler: &RandomWindows) -> Result<f64> {
    let batches: Vec<_> = (0..cfg.train.grad_accum as u64).map(|m| sampler.batch(data, 0, m)).collect();
    runner.seconds_per_step(&batches, 2)
}
