//! One optimizer step over a model of any family: the objective's loss, forward and backward
//! on each micro-batch, gradients summed, averaged, clipped to a global norm, then AdamW.
//! Shared by `jielong train` and `jielong bench train`, so the benchmark measures exactly the
//! training path.

use crate::adamw::{AdamW, AdamWParams};
use crate::config::TrainConfig;
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use jielong_core::{Result, Rng};
use jielong_data::Batch;
use crate::objective::Objective;
use jielong_models::{ForwardOpts, Model, ModelConfig};
use jielong_nn::ParamStore;
use rayon::prelude::*;
use rayon::ThreadPool;
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// Automatic data parallelism stops where the shards' gradients would take more than this.
const SHARD_GRADIENT_BUDGET: usize = 2 << 30;

pub struct StepRunner {
    pub model: Box<dyn Model>,
    pub objective: Objective,
    pub params: ParamStore,
    pub opt: AdamW,
    pub device: Device,
    /// `train.data_parallel`: shards per micro-batch (0 = automatic, 1 = off).
    data_parallel: usize,
    /// Worker pools by shard count, built on first use and kept.
    pools: Mutex<Vec<Arc<Vec<ThreadPool>>>>,
    /// `batching = "sequential"`: the recurrent state (n_state, batch_size, hidden) at the end
    /// of the last micro-batch, detached; the next micro-batch starts from it.
    pub carry: Option<Tensor>,
    /// `objective = "mlm"`: the collator that masks each batch (set by the trainer, which
    /// knows the tokenizer).
    pub masker: Option<Arc<crate::mlm::MlmMasker>>,
    /// `train.sentence_task`: the pair maker (set by the trainer with the masker); each
    /// window then becomes a masked `[CLS] A [SEP] B [SEP]` pair.
    pub pairs: Option<Arc<crate::sentence::PairMaker>>,
}

#[derive(Debug, Clone, Copy)]
pub struct StepStats {
    /// Mean training loss over the micro-batches (nats per token).
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// With a sentence task: its loss and accuracy, and the MLM loss on its own (`loss` is
    /// then the MLM loss too; the model is trained on the sum).
    pub pair: Option<crate::sentence::PairStats>,
}

/// Mean cross-entropy of `logits` (b, t, v) against `targets` (b, t), through the fused kernel
/// (`jielong_nn::cross_entropy`, checked against candle-nn's composed path in its tests).
pub fn lm_loss(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let (b, t, v) = logits.dims3()?;
    jielong_nn::cross_entropy(&logits.reshape((b * t, v))?, &targets.reshape(b * t)?)
}

pub fn batch_tensors(batch: &Batch, dev: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    rows_tensors(batch, 0..batch.batch_size, dev)
}

/// Sequences `rows` of `batch` as (ids, targets) tensors of shape (rows, seq_len).
fn rows_tensors(batch: &Batch, rows: Range<usize>, dev: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let t = batch.seq_len;
    let shape = (rows.len(), t);
    let span = rows.start * t..rows.end * t;
    Ok((Tensor::from_slice(&batch.inputs[span.clone()], shape, dev)?, Tensor::from_slice(&batch.targets[span], shape, dev)?))
}

/// Sequences `rows` of `batch` masked for MLM: (inputs, targets), targets `IGNORE` where
/// nothing is predicted.
pub fn masked_tensors(m: &crate::mlm::MlmMasker, batch: &Batch, rows: Range<usize>, rng: &mut jielong_core::Rng, dev: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let t = batch.seq_len;
    let (inputs, targets) = m.mask(&batch.inputs[rows.start * t..rows.end * t], rows.len(), t, rng);
    Ok((Tensor::from_vec(inputs, (rows.len(), t), dev)?, Tensor::from_vec(targets, (rows.len(), t), dev)?))
}

/// `rows` sequences cut into `n` contiguous ranges whose sizes differ by at most one.
fn split_rows(rows: usize, n: usize) -> Vec<Range<usize>> {
    (0..n).map(|i| (i * rows / n)..((i + 1) * rows / n)).collect()
}

impl StepRunner {
    /// A freshly initialised model (weights from `seed`) and optimizer.
    pub fn new(model_cfg: &ModelConfig, train: &TrainConfig, device: &Device) -> Result<Self> {
        let params = ParamStore::new(train.seed);
        let model = model_cfg.build(params.var_builder(device))?;
        train.objective.check(&*model)?;
        let opt = AdamW::new(
            params.vars(),
            AdamWParams { beta1: train.beta1, beta2: train.beta2, eps: train.eps, weight_decay: train.weight_decay },
        )?;
        Ok(Self { model, objective: train.objective, params, opt, device: device.clone(), data_parallel: train.data_parallel, pools: Mutex::new(Vec::new()), carry: None, masker: None, pairs: None })
    }

    /// Shards for a micro-batch of `rows` sequences (see `TrainConfig::data_parallel`).
    pub fn shards_for(&self, rows: usize) -> usize {
        if !self.device.is_cpu() {
            return 1;
        }
        let wanted = match self.data_parallel {
            0 => {
                let grad_bytes = 4 * self.params.vars().iter().map(|(_, v)| v.as_tensor().elem_count()).sum::<usize>();
                rayon::current_num_threads().min(SHARD_GRADIENT_BUDGET / grad_bytes.max(1))
            }
            n => n,
        };
        wanted.min(rows).max(1)
    }

    /// `n` thread pools sharing the rayon pool's threads (a pool each when there are more
    /// shards than threads).
    fn pools(&self, n: usize) -> Result<Arc<Vec<ThreadPool>>> {
        let mut cache = self.pools.lock().expect("worker pools");
        if let Some(p) = cache.iter().find(|p| p.len() == n) {
            return Ok(p.clone());
        }
        let threads = rayon::current_num_threads();
        let pools = (0..n)
            .map(|i| {
                let share = (threads / n + usize::from(i < threads % n)).max(1);
                rayon::ThreadPoolBuilder::new()
                    .num_threads(share)
                    .thread_name(move |j| format!("jielong-shard{i}-{j}"))
                    .build()
                    .map_err(|e| jielong_core::Error::Other(format!("cannot start the training threads: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let pools = Arc::new(pools);
        cache.push(pools.clone());
        Ok(pools)
    }

    /// Loss and gradients of sequences `rows` of `batch`, the loss weighted by their share of
    /// the batch (so the shards' gradients add up to the whole batch's).
    fn shard_gradients(&self, batch: &Batch, rows: Range<usize>, seed: u64) -> Result<(GradStore, f64, Option<crate::sentence::PairStats>)> {
        let weight = rows.len() as f64 / batch.batch_size as f64;
        let first_row = rows.start;
        let opts = ForwardOpts { dropout_seed: Some(seed), first_row };
        let mut mask_rng = Rng::derive(seed, &[0x6d6c6d, first_row as u64]);
        let (loss, value, pair) = match (&self.pairs, &self.masker) {
            (Some(pm), Some(m)) => {
                let t = crate::sentence::pair_tensors(pm, m, batch, rows, Rng::derive(seed, &[0x736f70]).next_u64(), &mut mask_rng, &self.device)?;
                let (loss, stats) = crate::sentence::pair_loss(&*self.model, &t, opts)?;
                (loss, stats.mlm_loss, Some(stats))
            }
            _ => {
                let packing = match &batch.segments {
                    Some(segs) => Some(jielong_models::Packing::from_segments(&segs[rows.start * batch.seq_len..rows.end * batch.seq_len], rows.len(), batch.seq_len, &self.device)?),
                    None => None,
                };
                let (ids, targets) = match &self.masker {
                    Some(m) => masked_tensors(m, batch, rows, &mut mask_rng, &self.device)?,
                    None => rows_tensors(batch, rows, &self.device)?,
                };
                let loss = match &packing {
                    Some(p) => self.objective.packed_loss(&*self.model, &ids, &targets, p, opts)?,
                    None => self.objective.loss(&*self.model, &ids, &targets, opts)?,
                };
                let value = loss.to_scalar::<f32>()? as f64;
                (loss, value, None)
            }
        };
        let loss = if weight == 1.0 { loss } else { loss.affine(weight, 0.0)? };
        let pair = pair.map(|p| {
            let mut w = crate::sentence::PairStats::default();
            w.add_weighted(&p, weight);
            w
        });
        Ok((loss.backward()?, value * weight, pair))
    }

    /// Every parameter's gradient summed over `stores`, in parallel over parameters.
    fn sum_gradients(&self, mut stores: Vec<GradStore>) -> Result<GradStore> {
        let mut total = stores.swap_remove(0);
        if stores.is_empty() {
            return Ok(total);
        }
        let vars = self.params.vars();
        let sums = vars
            .par_iter()
            .map(|(_, var)| {
                let t = var.as_tensor();
                let mut sum = total.get(t).cloned();
                for g in stores.iter().filter_map(|s| s.get(t)) {
                    sum = Some(match sum {
                        Some(a) => (a + g)?,
                        None => g.clone(),
                    });
                }
                Ok(sum.map(|s| (t.clone(), s)))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        for (t, sum) in sums.into_iter().flatten() {
            total.insert(&t, sum);
        }
        Ok(total)
    }

    /// Seconds one optimizer step over `batches` takes, for planning a run to a wall-clock
    /// budget: `warmups` untimed forward/backward passes (the first allocates every buffer and
    /// starts the thread pool; a recurrent model's second is still slow), then the median of
    /// three timed ones (one pass slowed by a busy host does not set the plan), plus 15% for
    /// the optimizer, evaluation and checkpoints.
    pub fn seconds_per_step(&self, batches: &[Batch], warmups: usize) -> Result<f64> {
        let seeds = vec![0u64; batches.len()];
        for _ in 0..warmups {
            self.gradients(batches, &seeds)?;
        }
        let mut times = Vec::with_capacity(3);
        for _ in 0..3 {
            let t0 = std::time::Instant::now();
            self.gradients(batches, &seeds)?;
            times.push(t0.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        Ok(times[1] * 1.15)
    }

    /// Forward + backward over the micro-batches; returns summed gradients and the mean loss.
    /// A micro-batch is split into `shards_for` shards of whole sequences, each run on its own
    /// worker pool; dropout masks are drawn per sequence, so they do not depend on the split.
    pub fn gradients(&self, batches: &[Batch], dropout_seeds: &[u64]) -> Result<(GradStore, f64)> {
        self.gradients_with_pairs(batches, dropout_seeds).map(|(g, l, _)| (g, l))
    }

    /// `gradients`, and the sentence task's figures over the micro-batches (losses averaged).
    pub fn gradients_with_pairs(&self, batches: &[Batch], dropout_seeds: &[u64]) -> Result<(GradStore, f64, Option<crate::sentence::PairStats>)> {
        let mut total: Option<GradStore> = None;
        let mut loss_sum = 0f64;
        let mut pairs: Option<crate::sentence::PairStats> = None;
        for (batch, &seed) in batches.iter().zip(dropout_seeds) {
            let shards = self.shards_for(batch.batch_size);
            let parts = if shards == 1 {
                vec![self.shard_gradients(batch, 0..batch.batch_size, seed)?]
            } else {
                let pools = self.pools(shards)?;
                split_rows(batch.batch_size, shards)
                    .into_par_iter()
                    .zip(pools.par_iter())
                    .map(|(rows, pool)| pool.install(|| self.shard_gradients(batch, rows, seed)))
                    .collect::<Result<Vec<_>>>()?
            };
            // Summed as each micro-batch ends, so at most one micro-batch's stores are alive.
            let mut stores: Vec<GradStore> = total.take().into_iter().collect();
            for (grads, loss, pair) in parts {
                stores.push(grads);
                loss_sum += loss;
                if let Some(p) = pair {
                    pairs.get_or_insert_with(Default::default).add_weighted(&p, 1.0 / batches.len() as f64);
                }
            }
            total = Some(self.sum_gradients(stores)?);
        }
        let grads = total.expect("at least one micro-batch");
        Ok((grads, loss_sum / batches.len() as f64, pairs))
    }

    /// A full optimizer step at learning rate `lr`, clipping the global norm to `grad_clip`
    /// (0 = off). Dropout masks for micro-batch i come from `Rng::derive(seed, [step, i])`.
    pub fn step(&mut self, batches: &[Batch], lr: f64, grad_clip: f64, seed: u64, step: u64) -> Result<StepStats> {
        // The whole step runs on a rayon worker: the kernels' parallel loops and matmuls then
        // split from inside the pool (the other worker steals) instead of the main thread
        // handing each one over and sleeping until it is done.
        rayon::scope(|_| self.step_in_pool(batches, lr, grad_clip, seed, step))
    }

    fn step_in_pool(&mut self, batches: &[Batch], lr: f64, grad_clip: f64, seed: u64, step: u64) -> Result<StepStats> {
        let seeds: Vec<u64> = (0..batches.len() as u64).map(|i| Rng::derive(seed, &[step, i, 0xD0]).next_u64()).collect();
        let (grads, loss, pair) = self.gradients_with_pairs(batches, &seeds)?;
        let accum = 1.0 / batches.len() as f64;
        let grad_norm = self.opt.grad_norm(&grads)? * accum;
        let clip = if grad_clip > 0.0 && grad_norm > grad_clip { grad_clip / (grad_norm + 1e-6) } else { 1.0 };
        self.opt.step(&grads, lr, accum * clip)?;
        Ok(StepStats { loss, grad_norm, pair })
    }
}

// --- instruction tuning ---
impl StepRunner {
    /// A runner over a model that is already built, training only the parameters of
    /// `trainable` (the whole model for full fine-tuning, the adapters for LoRA: the base
    /// weights are then never handed to the optimizer, so they cannot change).
    pub fn from_parts(model: Box<dyn Model>, trainable: ParamStore, train: &TrainConfig, device: &Device) -> Result<Self> {
        train.objective.check(&*model)?;
        let opt = AdamW::new(
            trainable.vars(),
            AdamWParams { beta1: train.beta1, beta2: train.beta2, eps: train.eps, weight_decay: train.weight_decay },
        )?;
        Ok(Self { model, objective: train.objective, params: trainable, opt, device: device.clone(), data_parallel: train.data_parallel, pools: Mutex::new(Vec::new()), carry: None, masker: None, pairs: None })
    }
}

/// Truncated backpropagation through time (`batching = "sequential"`).
impl StepRunner {
    /// Forward + backward over micro-batches that continue one another: micro-batch i starts
    /// from the state the previous one ended in (`self.carry`), or from zeros where `resets[i]`
    /// (a new pass over the streams); the state after it, detached, becomes `self.carry`.
    /// Each micro-batch runs whole (no data-parallel shards). Returns the summed gradients and
    /// the mean loss.
    pub fn gradients_carried(&mut self, batches: &[Batch], resets: &[bool], dropout_seeds: &[u64]) -> Result<(GradStore, f64)> {
        let rnn = self.model.as_recurrent().ok_or_else(|| {
            jielong_core::Error::input(format!(
                "train.batching = \"sequential\" carries a recurrent state from batch to batch; family {} has none: use batching = \"random\"",
                self.model.config().family()
            ))
        })?;
        let mut total: Option<GradStore> = None;
        let mut loss_sum = 0f64;
        for ((batch, &reset), &seed) in batches.iter().zip(resets).zip(dropout_seeds) {
            let init = if reset { None } else { self.carry.take() };
            let (ids, targets) = batch_tensors(batch, &self.device)?;
            let (loss, last) = rnn.loss_carried(&ids, &targets, init.as_ref(), ForwardOpts { dropout_seed: Some(seed), first_row: 0 })?;
            loss_sum += loss.to_scalar::<f32>()? as f64;
            let grads = loss.backward()?;
            self.carry = Some(last);
            let mut stores: Vec<GradStore> = total.take().into_iter().collect();
            stores.push(grads);
            total = Some(self.sum_gradients(stores)?);
        }
        let grads = total.expect("at least one micro-batch");
        Ok((grads, loss_sum / batches.len() as f64))
    }

    /// `step` for sequential batching: the same seeds, clipping and update, the state carried.
    pub fn step_carried(&mut self, batches: &[Batch], resets: &[bool], lr: f64, grad_clip: f64, seed: u64, step: u64) -> Result<StepStats> {
        let seeds: Vec<u64> = (0..batches.len() as u64).map(|i| Rng::derive(seed, &[step, i, 0xD0]).next_u64()).collect();
        let (grads, loss) = rayon::scope(|_| self.gradients_carried(batches, resets, &seeds))?;
        let accum = 1.0 / batches.len() as f64;
        let grad_norm = self.opt.grad_norm(&grads)? * accum;
        let clip = if grad_clip > 0.0 && grad_norm > grad_clip { grad_clip / (grad_norm + 1e-6) } else { 1.0 };
        self.opt.step(&grads, lr, accum * clip)?;
        Ok(StepStats { loss, grad_norm, pair: None })
    }
}
