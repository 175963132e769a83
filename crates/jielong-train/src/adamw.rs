//! AdamW (Loshchilov & Hutter): Adam with weight decay applied to the weights directly,
//! p ← p·(1 − lr·wd) − lr·m̂ / (√v̂ + eps), as torch.optim.AdamW. Decay applies to tensors of
//! rank ≥ 2 (matrices, embeddings), not to biases and norm gains. Its moments are saved
//! with every checkpoint (`optim.safetensors`, `exp_avg.NAME` / `exp_avg_sq.NAME`).
//!
//! On CPU f32 each parameter's update is one fused in-place pass (`jielong_nn::optim`); the
//! composed tensor-op update below is the reference path (`--reference-kernels`, other
//! devices, and the parity test).

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use jielong_core::{Error, Result};
use jielong_nn::optim::AdamWStep;
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
    /// First and second moments, flat, in the parameter's element order.
    m: Vec<f32>,
    v: Vec<f32>,
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
                let n = var.elem_count();
                let decay = var.rank() >= 2;
                Slot { name, var, m: vec![0.0; n], v: vec![0.0; n], decay }
            })
            .collect();
        Ok(Self { slots, t: 0, params })
    }

    /// Global L2 norm of the gradients of all parameters.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut total = 0f64;
        for s in &self.slots {
            if let Some(g) = grads.get(s.var.as_tensor()) {
                total += jielong_nn::optim::sum_squares(g)?;
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
            let p = s.var.as_tensor();
            if jielong_nn::fused_for(p) && p.is_contiguous() {
                let h = AdamWStep {
                    lr: lr as f32,
                    beta1: beta1 as f32,
                    beta2: beta2 as f32,
                    eps: eps as f32,
                    weight_decay: if s.decay { weight_decay as f32 } else { 0.0 },
                    bias_correction1: bc1 as f32,
                    bias_correction2: bc2 as f32,
                    grad_scale: grad_scale as f32,
                };
                jielong_nn::optim::adamw_update(p, g, &mut s.m, &mut s.v, h)?;
            } else {
                Self::step_reference(s, g, lr, grad_scale, (bc1, bc2), self.params)?;
            }
        }
        Ok(())
    }

    /// The composed update, one tensor op at a time.
    fn step_reference(s: &mut Slot, g: &Tensor, lr: f64, grad_scale: f64, (bc1, bc2): (f64, f64), hp: AdamWParams) -> Result<()> {
        let AdamWParams { beta1, beta2, eps, weight_decay } = hp;
        let p = s.var.as_tensor();
        let (dev, shape) = (p.device().clone(), p.shape().clone());
        // Gradients carry candle's op graph back into the forward pass; detach them.
        let g = g.detach().to_dtype(p.dtype())?;
        let g = if grad_scale != 1.0 { (g * grad_scale)? } else { g };
        let m = Tensor::from_slice(&s.m, &shape, &dev)?.to_dtype(p.dtype())?;
        let v = Tensor::from_slice(&s.v, &shape, &dev)?.to_dtype(p.dtype())?;
        let m = ((m * beta1)? + (&g * (1.0 - beta1))?)?;
        let v = ((v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
        let denom = ((&v / bc2)?.sqrt()? + eps)?;
        let update = ((&m / bc1)? / denom)?;
        let p = if s.decay && weight_decay > 0.0 { (p * (1.0 - lr * weight_decay))? } else { p.clone() };
        s.var.set(&(p - (update * lr)?)?.detach())?;
        s.m = m.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1()?;
        s.v = v.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1()?;
        Ok(())
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = Vec::with_capacity(2 * self.slots.len());
        for s in &self.slots {
            let (shape, dev) = (s.var.shape(), s.var.device());
            tensors.push((format!("exp_avg.{}", s.name), Tensor::from_slice(&s.m, shape, dev)?));
            tensors.push((format!("exp_avg_sq.{}", s.name), Tensor::from_slice(&s.v, shape, dev)?));
        }
        save_tensors(path, &tensors)
    }

    /// Restore moments saved by `save`; `t` comes from the checkpoint's meta.json.
    pub fn load(&mut self, path: &Path, t: u64) -> Result<()> {
        let map: HashMap<String, Tensor> = load_tensors(path)?.into_iter().collect();
        for s in &mut self.slots {
            let shape = s.var.shape().clone();
            for (prefix, slot) in [("exp_avg", &mut s.m), ("exp_avg_sq", &mut s.v)] {
                let key = format!("{prefix}.{}", s.name);
                let t = map.get(&key).ok_or_else(|| Error::format(path, format!("missing `{key}`: optimizer state does not match the model")))?;
                if t.shape() != &shape {
                    return Err(Error::format(path, format!("`{key}` has the wrong shape for this model")));
                }
                *slot = t.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1()?;
            }
        }
        self.t = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Three steps of the fused update against the composed one: same parameters and moments.
    #[test]
    fn fused_adamw_matches_composed_update() {
        let dev = Device::Cpu;
        let hp = AdamWParams { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 };
        let init = [Tensor::randn(0f32, 1.0, (37, 29), &dev).unwrap(), Tensor::randn(0f32, 1.0, 50_000, &dev).unwrap()];
        let make = || {
            let vars: Vec<(String, Var)> = init.iter().enumerate().map(|(i, t)| (format!("p{i}"), Var::from_tensor(&t.copy().unwrap()).unwrap())).collect();
            AdamW::new(vars, hp).unwrap()
        };
        let (mut fused, mut composed) = (make(), make());
        // Fixed random gradients per step (loss Σ p·r), so both see exactly the same ones.
        let rs: Vec<Vec<Tensor>> = (0..3).map(|_| init.iter().map(|t| Tensor::randn(0f32, 1.0, t.shape(), &dev).unwrap()).collect()).collect();
        for r_step in &rs {
            let loss = |o: &AdamW| -> Tensor {
                let mut total = Tensor::new(0f32, &dev).unwrap();
                for (s, r) in o.slots.iter().zip(r_step) {
                    total = (total + (s.var.as_tensor() * r).unwrap().sum_all().unwrap()).unwrap();
                }
                total
            };
            let (ga, gb) = (loss(&fused).backward().unwrap(), loss(&composed).backward().unwrap());
            fused.step(&ga, 1e-2, 0.5).unwrap();
            composed.t += 1;
            let (bc1, bc2) = (1.0 - 0.9f64.powi(composed.t as i32), 1.0 - 0.95f64.powi(composed.t as i32));
            for s in &mut composed.slots {
                let g = gb.get(s.var.as_tensor()).unwrap().clone();
                AdamW::step_reference(s, &g, 1e-2, 0.5, (bc1, bc2), hp).unwrap();
            }
        }
        for (a, b) in fused.slots.iter().zip(&composed.slots) {
            let d: f32 = (a.var.as_tensor() - b.var.as_tensor()).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            assert!(d < 1e-5, "{}: parameters differ by {d}", a.name);
            for (x, y) in a.m.iter().zip(&b.m).chain(a.v.iter().zip(&b.v)) {
                // Gradients are O(1); m can cancel to near zero, so the floor is absolute.
                assert!((x - y).abs() <= 1e-5 * y.abs() + 1e-6, "{}: moments differ: {x} vs {y}", a.name);
            }
        }
    }

    fn loss_grads(o: &AdamW, dev: &Device) -> GradStore {
        let mut total = Tensor::new(0f32, dev).unwrap();
        for s in &o.slots {
            total = (total + s.var.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap();
        }
        total.backward().unwrap()
    }

    #[test]
    fn grad_norm_is_the_global_l2_norm() {
        let dev = Device::Cpu;
        let hp = AdamWParams { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.0 };
        let a = Var::from_tensor(&Tensor::new(&[3f32, 0.0], &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::new(&[[0f32, 2.0], [0.0, 0.0]], &dev).unwrap()).unwrap();
        let o = AdamW::new(vec![("a".into(), a), ("b".into(), b)], hp).unwrap();
        // Gradient of Σ x² is 2x: (6, 0) and (0, 4, 0, 0): norm √(36 + 16).
        let n = o.grad_norm(&loss_grads(&o, &dev)).unwrap();
        assert!((n - 52f64.sqrt()).abs() < 1e-6, "{n}");
    }
}
