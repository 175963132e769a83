//! `jielong bench train --profile`: where a training step's time goes.
//!
//! Two views. Phases are timed inside real steps (forward with the loss, backward, gradient
//! norm and AdamW), for every family. Components (GPT only: the shapes are GPT-2's) are timed in isolation at the preset's exact shapes, forward and backward
//! together, each multiplied by how often a step runs it: the linear layers' matmuls, the LM
//! head, attention, softmax cross-entropy, layer norm, GELU, the embedding gather and its
//! backward. What the components do not explain (residual and bias adds, reshapes and copies,
//! allocation, graph bookkeeping) is the remainder. CPU ops are synchronous, so wall-clock
//! timing of a call is the time of its work.

use super::bench::Preset;
use anyhow::Result;
use candle_core::{DType, Device, Module, Tensor, Var};
use jielong_core::Rng;
use jielong_nn::WeightLayout;
use jielong_data::Batch;
use jielong_models::{ForwardOpts, GptConfig};
use jielong_nn::head_loss::linear_cross_entropy;
use jielong_train::step::batch_tensors;
use jielong_train::StepRunner;
use std::time::Instant;

/// Median wall time of `f` in ms over `reps` runs after one warm-up run.
fn time_ms(reps: usize, mut f: impl FnMut() -> candle_core::Result<()>) -> candle_core::Result<f64> {
    f()?;
    let mut ts = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t0 = Instant::now();
        f()?;
        ts.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    ts.sort_by(f64::total_cmp);
    Ok(ts[ts.len() / 2])
}

fn var(shape: &[usize], std: f64, dev: &Device) -> candle_core::Result<Var> {
    Var::from_tensor(&(Tensor::randn(0f32, 1.0, shape, dev)? * std)?)
}

/// Forward + backward of `f(inputs)` with a random upstream gradient (loss = Σ y·r), minus the
/// cost of that probe itself (measured on an identity of the same output shape).
fn fwd_bwd(reps: usize, inputs: &[&Var], out_shape: &[usize], dev: &Device, f: impl Fn() -> candle_core::Result<Tensor>) -> candle_core::Result<f64> {
    let r = Tensor::randn(0f32, 1.0, out_shape, dev)?;
    let with = time_ms(reps, || {
        let y = f()?;
        let g = (y * &r)?.sum_all()?.backward()?;
        for v in inputs {
            let _ = g.get(v.as_tensor());
        }
        Ok(())
    })?;
    let id = Var::from_tensor(&Tensor::zeros(out_shape, DType::F32, dev)?)?;
    let probe = time_ms(reps, || {
        (id.as_tensor() * &r)?.sum_all()?.backward()?;
        Ok(())
    })?;
    Ok((with - probe).max(0.0))
}

pub fn run(p: &Preset, runner: &mut StepRunner, batches: &[Batch], dev: &Device) -> Result<()> {
    // Phases, inside real steps.
    let (mut fwd, mut bwd, mut opt, mut total) = (vec![], vec![], vec![], vec![]);
    for (i, batch) in batches.iter().enumerate() {
        let t0 = Instant::now();
        let (ids, targets) = batch_tensors(batch, dev)?;
        let loss = runner.objective.loss(&*runner.model, &ids, &targets, ForwardOpts { dropout_seed: Some(i as u64), first_row: 0 })?;
        let _ = loss.to_scalar::<f32>()?;
        let t2 = Instant::now();
        let grads = loss.backward()?;
        let t3 = Instant::now();
        let norm = runner.opt.grad_norm(&grads)?;
        runner.opt.step(&grads, 6e-4, if norm > 1.0 { 1.0 / norm } else { 1.0 })?;
        let t4 = Instant::now();
        fwd.push((t2 - t0).as_secs_f64() * 1e3);
        bwd.push((t3 - t2).as_secs_f64() * 1e3);
        opt.push((t4 - t3).as_secs_f64() * 1e3);
        total.push((t4 - t0).as_secs_f64() * 1e3);
    }
    let med = |xs: &mut Vec<f64>| {
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    };
    let step = med(&mut total);
    println!("\nphases of a real step (median of {}), ms:", batches.len());
    for (name, xs) in [("forward + loss (LM head fused)", &mut fwd), ("backward", &mut bwd), ("grad norm + AdamW", &mut opt)] {
        let m = med(xs);
        println!("  {name:<30} {m:>9.1}  {:>5.1}%", 100.0 * m / step);
    }
    println!("  {:<30} {step:>9.1}", "step");
    let Some(cfg) = p.model.get::<GptConfig>() else {
        println!("\n(the component breakdown below the phases is written for GPT-2's shapes; family {} shows the phases only)", p.model.family());
        return Ok(());
    };
    let (b, t, c, l, v, h) = (p.batch_size, cfg.max_seq_len, cfg.n_embd, cfg.n_layer, cfg.vocab_size, cfg.n_head);
    let bt = b * t;
    let reps = 5;

    // Components, isolated, at this preset's shapes.
    let mut rows: Vec<(String, usize, f64)> = Vec::new();
    let x = var(&[bt, c], 1.0, dev)?;
    let mut linear = 0.0;
    for (n_in, n_out) in [(c, 3 * c), (c, c), (c, 4 * c), (4 * c, c)] {
        let xi = var(&[bt, n_in], 1.0, dev)?;
        let w = var(&[n_in, n_out], 0.02, dev)?;
        let bias = var(&[n_out], 0.0, dev)?;
        linear += fwd_bwd(reps, &[&xi, &w, &bias], &[bt, n_out], dev, || {
            jielong_nn::linear(xi.as_tensor(), w.as_tensor(), Some(bias.as_tensor()), WeightLayout::InOut)
        })?;
    }
    rows.push(("matmul: linear layers (+bias)".into(), l, linear));
    let wte = var(&[v, c], 0.02, dev)?;
    let targets = Tensor::from_vec((0..bt as u32).map(|i| (i * 7919) % v as u32).collect::<Vec<_>>(), bt, dev)?;
    rows.push((
        "LM head matmuls + cross-entropy (fused)".into(),
        1,
        time_ms(reps, || {
            let g = linear_cross_entropy(x.as_tensor(), wte.as_tensor(), &targets)?.backward()?;
            let _ = (g.get(x.as_tensor()), g.get(wte.as_tensor()));
            Ok(())
        })?,
    ));
    let qkv = var(&[b, t, 3 * c], 1.0, dev)?;
    rows.push((
        "attention (q·kᵀ, causal softmax, ·v)".into(),
        l,
        fwd_bwd(reps, &[&qkv], &[b, t, c], dev, || jielong_nn::causal_attention_packed(qkv.as_tensor(), h))?,
    ));
    let store = jielong_nn::ParamStore::new(1);
    let ln = jielong_nn::LayerNorm::new(c, true, 1e-5, store.var_builder(dev).pp("ln"))?;
    rows.push(("layer norm".into(), 2 * l + 1, fwd_bwd(reps, &[&x], &[bt, c], dev, || ln.forward(x.as_tensor()))?));
    let xh = var(&[bt, 4 * c], 1.0, dev)?;
    rows.push(("GELU".into(), l, fwd_bwd(reps, &[&xh], &[bt, 4 * c], dev, || jielong_nn::gelu::gelu(xh.as_tensor()))?));
    let mut rng = Rng::new(3);
    let ids = Tensor::from_vec((0..bt).map(|_| rng.below(v as u64) as u32).collect::<Vec<_>>(), bt, dev)?;
    let emb = candle_nn::Embedding::new(wte.as_tensor().clone(), c);
    rows.push(("embedding gather + scatter-add".into(), 1, fwd_bwd(reps, &[&wte], &[bt, c], dev, || emb.forward(&ids))?));

    println!("\ncomponents at batch {b} × seq {t}, n_embd {c}, vocab {v} (forward + backward, isolated), ms per step:");
    let mut explained = 0.0;
    for (name, n, ms) in &rows {
        let per_step = *n as f64 * ms;
        explained += per_step;
        println!("  {name:<36} ×{n:<3} {per_step:>9.1}  {:>5.1}%", 100.0 * per_step / step);
    }
    let opt_ms = med(&mut opt);
    explained += opt_ms;
    println!("  {:<36} ×1   {opt_ms:>9.1}  {:>5.1}%", "AdamW + grad norm (from the phases)", 100.0 * opt_ms / step);
    let rest = step - explained;
    println!("  {:<36}      {rest:>9.1}  {:>5.1}%", "other: adds, copies, allocation", 100.0 * rest / step);

    // The block as training runs it: one fused op (jielong_nn::block) holding four linear
    // layers, attention, two layer norms, GELU and both residual adds.
    let xb = var(&[b, t, c], 1.0, dev)?;
    let shapes: [(&[usize], f64); 12] = [(&[c], 0.0), (&[c], 0.0), (&[c, 3 * c], 0.02), (&[3 * c], 0.0), (&[c, c], 0.02), (&[c], 0.0), (&[c], 0.0), (&[c], 0.0), (&[c, 4 * c], 0.02), (&[4 * c], 0.0), (&[4 * c, c], 0.02), (&[c], 0.0)];
    let ps = shapes.iter().map(|(s, std)| var(s, *std, dev)).collect::<candle_core::Result<Vec<_>>>()?;
    let p = |i: usize| ps[i].as_tensor();
    let weights = jielong_nn::BlockWeights { ln_1: (p(0), p(1)), c_attn: (p(2), p(3)), attn_proj: (p(4), p(5)), ln_2: (p(6), p(7)), c_fc: (p(8), p(9)), mlp_proj: (p(10), p(11)) };
    let inputs: Vec<&Var> = std::iter::once(&xb).chain(ps.iter()).collect();
    let block = l as f64 * fwd_bwd(reps, &inputs, &[b, t, c], dev, || jielong_nn::transformer_block(xb.as_tensor(), &weights, h, 1e-5, None))?;
    println!("
the transformer block as training runs it (one fused op: the linear layers, attention, layer norms");
    println!("and GELU above, and the residual adds), forward + backward: ×{l} {block:>9.1} ms per step  {:>5.1}%", 100.0 * block / step);
    Ok(())
}
