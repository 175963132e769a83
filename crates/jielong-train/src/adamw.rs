//! AdamW (Loshchilov & Hutter): Adam with weight decay applied to the weights directly,
//! p ← p·(1 − lr·wd) − lr·m̂ / (√v̂ + eps), as torch.optim.AdamW. Decay applies to tensors of
//! rank ≥ 2 (matrices, embeddings), not to biases and norm gains. Its moments are saved
//! with every checkpoint (`optim.safetensors`, `exp_avg.NAME` / `exp_avg_sq.NAME`).

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use jielong_core::{Error, Result};
use jielong_nn::params::{load_tensors, save_tensors};
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Clone, Copy)]
pub struct AdamWParams {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
    decay: bool,
}

pub struct AdamW {
    slots: Vec<Slot>,
    /// Optimizer steps taken so far.
    pub t: u64,
    pub params: AdamWParams,
}

impl AdamW {
    pub fn new(vars: Vec<(String, Var)>, params: AdamWParams) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let m = var.as_tensor().zeros_like()?;
                let v = var.as_tensor().zeros_like()?;
                let decay = var.rank() >= 2;
                Ok(Slot { name, var, m, v, decay })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self { slots, t: 0, params })
    }

    /// Global L2 norm of the gradients of all parameters.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut total = 0f64;
        for s in &self.slots {
            if let Some(g) = grads.get(s.var.as_tensor()) {
                total += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
            }
        }
        Ok(total.sqrt())
    }

    /// One update with learning rate `lr`, gradients multiplied by `grad_scale` first
    /// (clipping and accumulation averaging).
    pub fn step(&mut self, grads: &GradStore, lr: f64, grad_scale: f64) -> Result<()> {
        self.t += 1;
        let AdamWParams { beta1, beta2, eps, weight_decay } = self.params;
        let bc1 = 1.0 - beta1.powi(self.t as i32);
        let bc2 = 1.0 - beta2.powi(self.t as i32);
        for s in &mut self.slots {
            let Some(g) = grads.get(s.var.as_tensor()) else { continue };
            // Gradients carry candle's op graph back into the forward pass; detach them, or the
            // moments would keep every past step's graph alive.
            let g = g.detach();
            let g = if grad_scale != 1.0 { (g * grad_scale)? } else { g };
            s.m = ((&s.m * beta1)? + (&g * (1.0 - beta1))?)?;
            s.v = ((&s.v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let denom = ((&s.v / bc2)?.sqrt()? + eps)?;
            let update = ((&s.m / bc1)? / denom)?;
            let p = s.var.as_tensor();
            let p = if s.decay && weight_decay > 0.0 { (p * (1.0 - lr * weight_decay))? } else { p.clone() };
            s.var.set(&(p - (update * lr)?)?.detach())?;
            s.m = s.m.detach();
            s.v = s.v.detach();
        }
        Ok(())
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = Vec::with_capacity(2 * self.slots.len());
        for s in &self.slots {
            tensors.push((format!("exp_avg.{}", s.name), s.m.clone()));
            tensors.push((format!("exp_avg_sq.{}", s.name), s.v.clone()));
        }
        save_tensors(path, &tensors)
    }

    /// Restore moments saved by `save`; `t` comes from the checkpoint's meta.json.
    pub fn load(&mut self, path: &Path, t: u64) -> Result<()> {
        let map: HashMap<String, Tensor> = load_tensors(path)?.into_iter().collect();
        for s in &mut self.slots {
            for (prefix, slot) in [("exp_avg", &mut s.m), ("exp_avg_sq", &mut s.v)] {
                let key = format!("{prefix}.{}", s.name);
                let t = map.get(&key).ok_or_else(|| Error::format(path, format!("missing `{key}`: optimizer state does not match the model")))?;
                if t.shape() != slot.shape() {
                    return Err(Error::format(path, format!("`{key}` has the wrong shape for this model")));
                }
                *slot = t.clone();
            }
        }
        self.t = t;
        Ok(())
    }
}
