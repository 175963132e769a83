//! Supervised fine-tuning (`jielong sft`): a checkpoint trained further on conversations, the
//! loss on the assistant's tokens only: every weight (`Regime::Full`), LoRA adapters alone
//! (`Regime::Lora`), or virtual tokens alone (`Regime::Prefix`, `Regime::Prompt`:
//! `jielong_models::soft_prompt`).
//!
//! The template's turn tokens are added to the tokenizer where it lacks them; the token table
//! (and an untied head) grows by as many rows, each initialised to the mean of the existing
//! rows (a new token then starts as an "average" token rather than a random one, as Hewitt
//! 2021 recommends). Steps run through the pretraining loop's `StepRunner` (same micro-batches,
//! clipping, AdamW, checkpoints); the batch of step s is drawn from (seed, s), so a resumed run
//! computes the losses the uninterrupted one would.
//!
//! Output folder: a full run is a run folder like `jielong train`'s (`ckpt-NNNNNN/`, its
//! tokenizer) plus `tokenizer_config.json` with the chat template, so `chat`, `generate --chat`
//! and `serve` render conversations as the model was tuned on them. A LoRA run keeps its
//! resumable state in `ckpt-NNNNNN/` (the adapter's tensors and optimizer) and writes the
//! adapter in PEFT's layout at the top (`crate::adapter`).

use crate::adapter::{self, AdapterBase};
use crate::budget::TimeBudget;
use crate::checkpoint::{self, Checkpoint, CheckpointMeta, CKPT_VERSION};
use crate::config::TrainConfig;
use crate::metrics::{self, MetricRow};
use crate::schedule::lr_at;
use crate::step::StepRunner;
use crate::trainer::Event;
use crate::Objective;
use candle_core::{Device, Tensor};
use jielong_core::{Error, Result};
use jielong_data::sft::{read_chat_jsonl, LossOn, SftData, SftSampler};
use jielong_models::{Model, ModelConfig, SoftPrompt, SoftPromptKind};
use jielong_nn::{Lora, LoraConfig, ParamStore};
use jielong_tokenizer::ChatTemplate;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

const _: () = assert!(jielong_data::sft::IGNORE == jielong_models::IGNORE_TARGET);

/// What is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Regime {
    /// Every weight.
    Full,
    /// LoRA adapters on the attention and MLP projections; the base stays as it is.
    Lora,
    /// Prefix tuning: trained keys and values before every layer's own; the base stays.
    Prefix,
    /// Prompt tuning: trained input embeddings before the text; the base stays.
    Prompt,
}

impl Regime {
    /// Whether the base's weights are frozen (an adapter is trained and saved apart).
    pub fn is_adapter(self) -> bool {
        self != Regime::Full
    }
    /// The virtual-token kind of the prefix and prompt regimes.
    pub fn soft_kind(self) -> Option<SoftPromptKind> {
        match self {
            Regime::Prefix => Some(SoftPromptKind::Prefix),
            Regime::Prompt => Some(SoftPromptKind::Prompt),
            _ => None,
        }
    }
}

/// Prefix and prompt tuning's settings (PEFT's `num_virtual_tokens`, and prompt tuning's
/// `prompt_tuning_init_text`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SoftPromptSettings {
    pub num_virtual_tokens: usize,
    /// Prompt tuning: start from the embeddings of this text's tokens (repeated or cut to
    /// `num_virtual_tokens`, as PEFT's `PromptTuningInit.TEXT`) instead of random vocabulary rows.
    pub init_text: Option<String>,
}

impl Default for SoftPromptSettings {
    fn default() -> Self {
        Self { num_virtual_tokens: 20, init_text: None }
    }
}

/// A fine-tuning run's settings (saved as `sft.json` in the output folder).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SftConfig {
    pub base: PathBuf,
    pub data: PathBuf,
    /// `chatml`, `llama3`, `builtin`, or a `.jinja` / `tokenizer_config.json` file.
    pub template: String,
    pub regime: Regime,
    pub lora: LoraConfig,
    /// Prefix and prompt tuning (absent in runs made before they existed).
    #[serde(default)]
    pub soft: SoftPromptSettings,
    pub loss_on: LossOn,
    pub strict: bool,
    /// Pack several examples into each row (`--packing`): a block-diagonal causal mask and
    /// positions restarting per example (`jielong_models::Packing`); else each example its own
    /// row, padded to the longest of the batch. A step trains on the same examples either way.
    #[serde(default)]
    pub packing: bool,
    pub train: TrainConfig,
}

impl SftConfig {
    /// The chat template the settings name.
    pub fn chat_template(&self) -> Result<ChatTemplate> {
        template_by_name_or_file(&self.template)
    }
}

/// `chatml`, `llama3`, `builtin`, or a template file (`.jinja`, or a `tokenizer_config.json`
/// with a `chat_template`).
pub fn template_by_name_or_file(spec: &str) -> Result<ChatTemplate> {
    match spec {
        "chatml" | "llama3" | "builtin" => ChatTemplate::named(spec),
        // A bare word that is no file: a misspelt name, said as such.
        name if !Path::new(name).exists() && !name.contains(['/', '.']) => ChatTemplate::named(name),
        path => ChatTemplate::load(Path::new(path)),
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SftSummary {
    pub steps: u64,
    pub examples: usize,
    /// "N of M lines skipped (…)" when the data had bad lines or unusable examples.
    pub skipped: Option<String>,
    pub truncated: usize,
    pub added_tokens: Vec<String>,
    pub trainable: usize,
    pub total_params: usize,
    /// Mean loss on the assistant tokens of the data, before the first step (with untrained
    /// virtual tokens for prefix and prompt runs) and after the last.
    pub loss_before: f64,
    pub loss_after: f64,
    pub tokens_per_s: f64,
    /// Mean positions (rows × length, padding included) a step's micro-batches ran.
    pub positions_per_step: f64,
    pub interrupted: bool,
    pub elapsed_s: f64,
    pub out: PathBuf,
    pub step_losses: Vec<(u64, f64)>,
}

/// The base's weights in a model of config `cfg` (whose vocabulary may be larger): every
/// tensor loaded as it is, except the vocabulary tables (`tables`), which keep their rows and
/// get the mean row at the `fresh` ids.
fn load_grown(path: &Path, params: &ParamStore, tables: &[&str], fresh: &[u32]) -> Result<()> {
    let vars: BTreeMap<String, candle_core::Var> = params.vars().into_iter().collect();
    let tensors = jielong_nn::params::load_tensors(path)?;
    for (name, t) in &tensors {
        let var = vars.get(name).ok_or_else(|| Error::format(path, format!("holds `{name}`, which the model does not have")))?;
        if !tables.contains(&name.as_str()) {
            if var.dims() != t.dims() {
                return Err(Error::format(path, format!("`{name}` has shape {:?}, the model expects {:?}", t.dims(), var.dims())));
            }
            var.set(t)?;
            continue;
        }
        let (old, c) = t.dims2()?;
        let (new, c2) = var.as_tensor().dims2()?;
        if c != c2 || new < old {
            return Err(Error::format(path, format!("`{name}` has shape {:?}, the model expects {:?}", t.dims(), var.dims())));
        }
        let rows = t.to_vec2::<f32>()?;
        let kept: Vec<&Vec<f32>> = rows.iter().enumerate().filter(|(i, _)| !fresh.contains(&(*i as u32))).map(|(_, r)| r).collect();
        let mean: Vec<f32> = (0..c).map(|j| kept.iter().map(|r| r[j]).sum::<f32>() / kept.len().max(1) as f32).collect();
        let mut data = Vec::with_capacity(new * c);
        for i in 0..new {
            match rows.get(i).filter(|_| !fresh.contains(&(i as u32))) {
                Some(row) => data.extend_from_slice(row),
                None => data.extend_from_slice(&mean),
            }
        }
        var.set(&Tensor::from_vec(data, (new, c), &Device::Cpu)?)?;
    }
    if tensors.len() != vars.len() {
        return Err(Error::format(path, format!("holds {} of the model's {} tensors", tensors.len(), vars.len())));
    }
    Ok(())
}

/// Mean loss on the assistant tokens of `data` (token-weighted over all examples).
pub fn assistant_loss(model: &dyn Model, data: &SftData, batch_size: usize, pad: u32) -> Result<f64> {
    let (mut sum, mut n) = (0f64, 0usize);
    let rows: Vec<&jielong_data::sft::Encoded> = data.examples.iter().collect();
    for chunk in rows.chunks(batch_size.max(1)) {
        let b = jielong_data::sft::batches::padded(chunk, pad);
        let (ids, targets) = crate::step::batch_tensors(&b, &Device::Cpu)?;
        let tokens: usize = chunk.iter().map(|e| e.n_loss()).sum();
        let loss = Objective::Sft.loss(model, &ids, &targets, Default::default())?.to_scalar::<f32>()? as f64;
        sum += loss * tokens as f64;
        n += tokens;
    }
    Ok(sum / n.max(1) as f64)
}

/// Fine-tune (or resume, with `resume`, the run in `out`). Setting `stop` ends the run after
/// the current step with a checkpoint.
pub fn sft(out: &Path, mut cfg: SftConfig, resume: bool, stop: &AtomicBool, on_event: &mut dyn FnMut(Event)) -> Result<SftSummary> {
    let dev = Device::Cpu;
    cfg.train.objective = Objective::Sft;
    cfg.train.validate()?;
    let sft_json = out.join("sft.json");
    if resume {
        let text = jielong_core::fs::read_to_string(&sft_json)?;
        let saved: SftConfig = serde_json::from_str(&text).map_err(|e| Error::format(&sft_json, format!("not a jielong sft record ({e})")))?;
        let mut same = saved.clone();
        same.train.max_steps = cfg.train.max_steps;
        if same != cfg {
            return Err(Error::input(format!("the settings differ from the run's ({}): resume with the ones it started with (only --max-steps may change)", sft_json.display())));
        }
    } else if !checkpoint::list(out)?.is_empty() || adapter::is_adapter_dir(out) {
        return Err(Error::input(format!("{} already holds a fine-tuning run: continue it with --resume, or pick another --out", out.display())));
    }
    if cfg.packing && cfg.regime == Regime::Prompt {
        return Err(Error::input("--packing cannot be used with --regime prompt (each packed example would need its own virtual tokens): drop --packing, or use --regime prefix"));
    }
    let base = Checkpoint::open(&cfg.base)?;
    let tk0 = base.load_tokenizer(None)?;
    let template = cfg.chat_template()?;
    let (tk, added) = tk0.with_special_tokens(&template.special_tokens().iter().map(String::as_str).collect::<Vec<_>>())?;
    if cfg.regime.is_adapter() && !added.is_empty() {
        return Err(Error::input(format!(
            "template {} needs tokens the base's tokenizer lacks ({}): a {:?} adapter cannot add tokens; use --regime full, or --template builtin",
            template.origin,
            added.join(" "),
            cfg.regime
        )));
    }
    let fresh: Vec<u32> = added.iter().filter_map(|t| tk.inner().token_to_id(t)).collect();
    let mut mcfg: ModelConfig = base.meta.model.clone();
    if tk.vocab_size() > mcfg.vocab_size() {
        mcfg.set_vocab_size(tk.vocab_size());
    }
    // Adapter runs read the base detached: no gradient is computed for its weights.
    let params = if cfg.regime == Regime::Full { ParamStore::new(cfg.train.seed) } else { ParamStore::frozen(cfg.train.seed) };
    let mut model = mcfg.build(params.var_builder(&dev))?;
    let tables: Vec<&str> = mcfg.token_embedding().map(|(n, _)| n).into_iter().chain(["lm_head.weight"]).collect();
    load_grown(&base.dir.join("model.safetensors"), &params, &tables, &fresh)?;

    // The data, before anything is written.
    let report = read_chat_jsonl(&cfg.data, cfg.strict)?;
    // Virtual tokens take their share of the context: examples are cut to what is left.
    let soft = match cfg.regime.soft_kind() {
        Some(kind) => Some(Arc::new(new_soft_prompt(kind, &cfg.soft, &*model, &params, &tk, cfg.train.seed)?)),
        None => None,
    };
    let n_virtual = soft.as_ref().map_or(0, |s| s.n);
    let max_len = model.as_causal_lm().map(|lm| lm.max_seq_len() - n_virtual + 1).unwrap_or(2);
    // A packed row holds up to the context's positions (an example's last token included).
    let window = max_len - 1;
    let data = SftData::encode(&report.examples, &template, &tk, cfg.loss_on, max_len, cfg.strict, &cfg.data.display().to_string())?;
    let pad = tk.eot_id().unwrap_or(0);

    let lora = match cfg.regime {
        Regime::Full => None,
        Regime::Lora => {
            let l = Arc::new(Lora::new(&cfg.lora, &model.linear_sites(), cfg.train.seed, &dev)?);
            model.set_lora(Some(l.clone()))?;
            Some(l)
        }
        Regime::Prefix | Regime::Prompt => {
            model.set_soft_prompt(soft.clone())?;
            None
        }
    };
    // Before the first step: the base itself for full and LoRA runs (an untrained LoRA changes
    // nothing); for prefix and prompt runs the base reading its untrained virtual tokens (and
    // the text n positions later), which is what their training starts from.
    let loss_before = assistant_loss(&*model, &data, cfg.train.batch_size, pad)?;
    let total_params = params.n_params();
    let trainable = match (&lora, &soft) {
        (Some(l), _) => l.params().clone(),
        (None, Some(s)) => s.params().clone(),
        _ => params.clone(),
    };
    let mut runner = StepRunner::from_parts(model, trainable, &cfg.train, &dev)?;
    let sampler = SftSampler::new(data.examples.len(), cfg.train.batch_size, cfg.train.seed)?;
    let base_hash = adapter::weights_hash(&base.dir)?;

    let metrics_path = out.join("metrics.jsonl");
    let (mut step, mut tokens_seen, mut elapsed_before) = (0u64, 0u64, 0f64);
    if resume {
        let ckpt = Checkpoint::open(out)?;
        runner.params.load(&ckpt.dir.join("model.safetensors"), |n| Some(n.to_string()))?;
        runner.opt.load(&ckpt.dir.join("optim.safetensors"), ckpt.meta.step)?;
        (step, tokens_seen, elapsed_before) = (ckpt.meta.step, ckpt.meta.tokens_seen, ckpt.meta.elapsed_s);
        metrics::truncate_after(&metrics_path, step)?;
    } else {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let _ = std::fs::remove_file(&metrics_path);
        jielong_core::fs::write_json_atomic(&sft_json, &cfg)?;
    }
    if cfg.regime == Regime::Full {
        tk.save(out)?;
    }
    jielong_core::fs::write_json_atomic(&out.join("tokenizer_config.json"), &template.to_tokenizer_config())?;

    // A run for a wall-clock budget (`train.max_minutes`, `jielong sft --budget`): a few timed
    // passes fit `max_steps` to the budget before the first step, the measured pace re-plans it
    // (crate::budget, as `jielong train` does), and the clock ends the run if steps run slower
    // still. The planned steps are written to sft.json, so `--resume` continues that schedule.
    let began = Instant::now();
    let mut budget = None;
    if !resume && cfg.train.max_minutes > 0.0 {
        let budget_s = cfg.train.max_minutes * 60.0;
        let per_step = time_sft_step(&runner, &sampler, &data, &cfg, window, pad)?;
        let cap = cfg.train.max_steps;
        cfg.train.max_steps = cap.min(((budget_s / per_step).floor() as u64).max(1));
        cfg.train.warmup_steps = cfg.train.warmup_steps.min(cfg.train.max_steps / 10);
        jielong_core::fs::write_json_atomic(&sft_json, &cfg)?;
        budget = Some((TimeBudget::new(budget_s, began, cap, cfg.train.max_steps), budget_s));
    }
    let mut tc = cfg.train.clone();
    on_event(Event::Start {
        step,
        max_steps: tc.max_steps,
        n_params: runner.params.n_params(),
        tokens_per_step: tc.batch_size * tc.grad_accum * max_len,
        resumed: resume,
        model: format!("{} · {:?} fine-tuning", mcfg.describe(), cfg.regime).to_lowercase(),
    });
    let started = Instant::now();
    let (mut step_losses, mut interrupted, mut tokens_timed, mut secs_timed) = (Vec::new(), false, 0usize, 0f64);
    let steps_at_start = step;
    while step < tc.max_steps {
        let t0 = Instant::now();
        let lr = lr_at(&tc, step);
        let batches: Vec<_> = (0..tc.grad_accum as u64)
            .map(|m| {
                let k = step * tc.grad_accum as u64 + m;
                if cfg.packing {
                    sampler.packed_batch(&data, k, window, pad)
                } else {
                    sampler.batch(&data, k, pad)
                }
            })
            .collect();
        let tokens: usize = batches.iter().map(|b| b.batch_size * b.seq_len).sum();
        let stats = runner.step(&batches, lr, tc.grad_clip, tc.seed, step)?;
        if !stats.loss.is_finite() {
            return Err(Error::Other(format!("loss became {} at step {step}: lower --lr", stats.loss)));
        }
        step += 1;
        if let Some((b, budget_s)) = budget.as_mut() {
            let mut plan = b.after_step(step);
            if began.elapsed().as_secs_f64() >= *budget_s && step < plan.unwrap_or(tc.max_steps) {
                plan = Some(step); // out of time: this step is the last
            }
            if let Some(m) = plan.filter(|&m| m != tc.max_steps) {
                (tc.max_steps, cfg.train.max_steps) = (m, m);
                jielong_core::fs::write_json_atomic(&sft_json, &cfg)?;
            }
        }
        tokens_seen += tokens as u64;
        let dt = t0.elapsed().as_secs_f64();
        (tokens_timed, secs_timed) = (tokens_timed + tokens, secs_timed + dt);
        step_losses.push((step, stats.loss));
        let elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
        metrics::append(&metrics_path, &MetricRow { step, loss: Some(stats.loss), val_loss: None, lr: Some(lr), grad_norm: Some(stats.grad_norm), tokens_per_s: Some(tokens as f64 / dt), tokens_seen, elapsed_s })?;
        on_event(Event::Step { step, loss: stats.loss, lr, grad_norm: stats.grad_norm, tokens_per_s: tokens as f64 / dt });
        let last = step == tc.max_steps;
        interrupted = stop.load(Ordering::SeqCst) && !last;
        if step.is_multiple_of(tc.checkpoint_interval) || last || interrupted {
            let meta = CheckpointMeta {
                format_version: CKPT_VERSION,
                family: mcfg.family().into(),
                model: mcfg.clone(),
                objective: Objective::Sft,
                tokenizer_hash: tk.hash().to_string(),
                step,
                tokens_seen,
                seed: tc.seed,
                val_loss: None,
                train_loss: Some(stats.loss),
                elapsed_s,
            };
            let path = checkpoint::save(out, &meta, &runner.params, &runner.opt, tc.keep_checkpoints, None)?;
            on_event(Event::Checkpoint { step, path });
        }
        if interrupted {
            break;
        }
    }
    if let Some(l) = &lora {
        let record = AdapterBase {
            base_hash: base_hash.clone(),
            base_checkpoint: base.dir.clone(),
            family: mcfg.family().into(),
            rank: cfg.lora.rank,
            alpha: cfg.lora.alpha,
            dropout: cfg.lora.dropout,
            targets: cfg.lora.targets.clone(),
        };
        adapter::save(out, l, &record)?;
    }
    if let Some(s) = &soft {
        let record = AdapterBase { base_hash, base_checkpoint: base.dir.clone(), family: mcfg.family().into(), rank: 0, alpha: 0.0, dropout: 0.0, targets: Vec::new() };
        adapter::save_soft(out, s, &record)?;
    }
    let loss_after = assistant_loss(&*runner.model, &data, tc.batch_size, pad)?;
    let mut skipped = report.bad.clone();
    skipped.extend(data.bad.iter().cloned());
    skipped.sort();
    let skipped = (!skipped.is_empty()).then(|| {
        let r = jielong_data::sft::ReadReport { examples: Vec::new(), bad: skipped, lines: report.lines };
        r.bad_summary().unwrap_or_default()
    });
    Ok(SftSummary {
        steps: step,
        examples: data.examples.len(),
        skipped,
        truncated: data.truncated,
        added_tokens: added,
        trainable: runner.params.n_params(),
        total_params,
        loss_before,
        loss_after,
        tokens_per_s: tokens_timed as f64 / secs_timed.max(1e-9),
        positions_per_step: tokens_timed as f64 / (step - steps_at_start).max(1) as f64,
        interrupted,
        elapsed_s: elapsed_before + started.elapsed().as_secs_f64(),
        out: out.to_path_buf(),
        step_losses,
    })
}

/// Seconds one step of `cfg` takes on its data (`StepRunner::seconds_per_step`, one warm-up).
fn time_sft_step(runner: &StepRunner, sampler: &SftSampler, data: &SftData, cfg: &SftConfig, window: usize, pad: u32) -> Result<f64> {
    let batches: Vec<_> = (0..cfg.train.grad_accum as u64)
        .map(|k| if cfg.packing { sampler.packed_batch(data, k, window, pad) } else { sampler.batch(data, k, pad) })
        .collect();
    runner.seconds_per_step(&batches, 1)
}

/// The virtual tokens a prefix or prompt run starts from: a prompt from the embeddings of
/// `init_text` (its tokens repeated or cut to n, as PEFT's `PromptTuningInit.TEXT`) or of
/// random vocabulary rows; a prefix from N(0, 0.02).
fn new_soft_prompt(kind: SoftPromptKind, s: &SoftPromptSettings, model: &dyn Model, params: &ParamStore, tk: &jielong_tokenizer::Tokenizer, seed: u64) -> Result<SoftPrompt> {
    let shape = model
        .soft_prompt_shape()
        .ok_or_else(|| Error::input(format!("family {} cannot take prompt or prefix tuning (gpt and llama can)", model.config().family())))?;
    jielong_models::soft_prompt::check_length(s.num_virtual_tokens, shape.max_seq_len)?;
    let table = model.config().token_embedding().and_then(|(name, _)| params.vars().into_iter().find(|(n, _)| n == name)).map(|(_, v)| v.as_tensor().clone());
    let n = s.num_virtual_tokens;
    match (&s.init_text, kind, &table) {
        (Some(text), SoftPromptKind::Prompt, Some(table)) => {
            let ids = tk.encode(text)?;
            if ids.is_empty() {
                return Err(Error::input("--prompt-init-text has no tokens: give a sentence describing the task"));
            }
            let ids: Vec<u32> = ids.iter().cycle().take(n).copied().collect();
            let init = table.index_select(&Tensor::new(ids.as_slice(), &Device::Cpu)?, 0)?;
            SoftPrompt::new(kind, shape, &init)
        }
        (Some(_), SoftPromptKind::Prefix, _) => Err(Error::input("--prompt-init-text applies to --regime prompt (a prefix is keys and values, not embeddings)")),
        _ => SoftPrompt::random(kind, shape, n, table.as_ref(), seed, &Device::Cpu),
    }
}

/// An adapter as loaded: LoRA, or virtual tokens (prefix or prompt tuning).
#[derive(Clone)]
pub enum LoadedAdapter {
    Lora(Arc<Lora>),
    Soft(Arc<SoftPrompt>),
}

/// Load checkpoint `base` with the adapter in `adapter_dir` on it (LoRA, prefix or prompt
/// tuning, by its `peft_type`); a LoRA is merged into the base weights when `merge`
/// (generation then costs what the base costs). Returns the model and the adapter.
pub fn load_with_adapter(base: &Checkpoint, adapter_dir: &Path, merge: bool, dev: &Device) -> Result<(Box<dyn Model>, LoadedAdapter)> {
    let (mut model, params) = base.load_params(dev)?;
    if let Some(soft) = adapter::load_soft(adapter_dir, &base.dir, &mut *model)? {
        return Ok((model, LoadedAdapter::Soft(soft)));
    }
    let lora = adapter::load(adapter_dir, &base.dir, &mut *model)?;
    if merge {
        lora.merge(&params)?;
    }
    Ok((model, LoadedAdapter::Lora(lora)))
}
