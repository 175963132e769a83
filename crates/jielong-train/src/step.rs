//! One optimizer step over a GPT: forward and backward on each micro-batch, gradients summed,
//! averaged, clipped to a global norm, then AdamW. Shared by `jielong train` and
//! `jielong bench train`, so the benchmark measures exactly the training path.

use crate::adamw::{AdamW, AdamWParams};
use crate::config::TrainConfig;
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use jielong_core::{Result, Rng};
use jielong_data::Batch;
use jielong_models::gpt::{ForwardOpts, Gpt, GptConfig};
use jielong_nn::ParamStore;

pub struct StepRunner {
    pub model: Gpt,
    pub params: ParamStore,
    pub opt: AdamW,
    pub device: Device,
}

#[derive(Debug, Clone, Copy)]
pub struct StepStats {
    /// Mean training loss over the micro-batches (nats per token).
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// Mean cross-entropy of `logits` (b, t, v) against `targets` (b, t), through the fused kernel
/// (`jielong_nn::cross_entropy`, checked against candle-nn's composed path in its tests).
pub fn lm_loss(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let (b, t, v) = logits.dims3()?;
    jielong_nn::cross_entropy(&logits.reshape((b * t, v))?, &targets.reshape(b * t)?)
}

pub fn batch_tensors(batch: &Batch, dev: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let shape = (batch.batch_size, batch.seq_len);
    Ok((Tensor::from_slice(&batch.inputs, shape, dev)?, Tensor::from_slice(&batch.targets, shape, dev)?))
}

impl StepRunner {
    /// A freshly initialised model (weights from `seed`) and optimizer.
    pub fn new(model_cfg: &GptConfig, train: &TrainConfig, device: &Device) -> Result<Self> {
        let params = ParamStore::new(train.seed);
        let model = Gpt::new(model_cfg, params.var_builder(device))?;
        let opt = AdamW::new(
            params.vars(),
            AdamWParams { beta1: train.beta1, beta2: train.beta2, eps: train.eps, weight_decay: train.weight_decay },
        )?;
        Ok(Self { model, params, opt, device: device.clone() })
    }

    /// Forward + backward over the micro-batches; returns summed gradients and the mean loss.
    pub fn gradients(&self, batches: &[Batch], dropout_seeds: &[u64]) -> Result<(GradStore, f64)> {
        let mut total: Option<GradStore> = None;
        let mut loss_sum = 0f64;
        for (batch, &seed) in batches.iter().zip(dropout_seeds) {
            let (ids, targets) = batch_tensors(batch, &self.device)?;
            let loss = self.model.forward_loss(&ids, &targets, ForwardOpts { dropout_seed: Some(seed) })?;
            loss_sum += loss.to_scalar::<f32>()? as f64;
            let grads = loss.backward()?;
            total = Some(match total {
                None => grads,
                Some(mut acc) => {
                    for (_, var) in self.params.vars() {
                        let t = var.as_tensor();
                        if let Some(g) = grads.get(t) {
                            let sum = match acc.get(t) {
                                Some(a) => (a + g)?,
                                None => g.clone(),
                            };
                            acc.insert(t, sum);
                        }
                    }
                    acc
                }
            });
        }
        let grads = total.expect("at least one micro-batch");
        Ok((grads, loss_sum / batches.len() as f64))
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
        let (grads, loss) = self.gradients(batches, &seeds)?;
        let accum = 1.0 / batches.len() as f64;
        let grad_norm = self.opt.grad_norm(&grads)? * accum;
        let clip = if grad_clip > 0.0 && grad_norm > grad_clip { grad_clip / (grad_norm + 1e-6) } else { 1.0 };
        self.opt.step(&grads, lr, accum * clip)?;
        Ok(StepStats { loss, grad_norm })
    }
}
