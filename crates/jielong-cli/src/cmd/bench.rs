//! `jielong bench train --preset small|medium`: training steps on random tokens, reported as
//! tokens/s and model FLOP utilisation against this machine's measured matmul peak.
//! `bench/pytorch_gpt.py` trains the identical model in PyTorch for a side-by-side ratio.

use anyhow::Result;
use clap::{Args as ClapArgs, Subcommand};
use candle_core::{Device, Tensor};
use jielong_core::{Error, Rng};
use jielong_data::Batch;
use jielong_models::ModelConfig;
use jielong_train::{StepRunner, TrainConfig};
use std::time::Instant;

#[derive(Subcommand)]
pub enum Command {
    /// Training throughput on a preset model.
    Train(TrainArgs),
    /// Prefill and decode speed, batch 1 and 8, with and without the KV cache.
    Generate(GenerateArgs),
    /// Sentences per second of a sentence encoder (batch 1 and 32, short and long texts).
    Embed(super::bench_embed::EmbedArgs),
}

#[derive(ClapArgs)]
pub struct GenerateArgs {
    /// The model of `bench train --preset` (random weights).
    #[arg(long, default_value = "medium")]
    pub preset: String,
    /// Model family (gpt, llama, rnn, lstm, gru).
    #[arg(long, default_value = "gpt")]
    pub family: String,
    /// Tokens decoded per sequence; the prompt fills the rest of the context window.
    #[arg(long, default_value_t = 32)]
    pub new_tokens: usize,
    /// Batch sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 8])]
    pub batches: Vec<usize>,
    /// Also measure decoding without the KV cache (recomputing the whole context every step).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub recompute: bool,
    /// One JSON line per measurement.
    #[arg(long)]
    pub json: bool,
}

#[derive(ClapArgs)]
pub struct TrainArgs {
    /// small (4 layers, 4 heads, n_embd 256, seq 128, batch 32, vocab 4096) or
    /// medium (6 layers, 6 heads, n_embd 384, seq 256, batch 8, vocab 8192); llama's presets
    /// have the same shapes with half as many key/value heads and a SwiGLU MLP of Llama's width.
    #[arg(long, default_value = "small")]
    pub preset: String,
    /// Model family (gpt, llama, rnn, lstm, gru).
    #[arg(long, default_value = "gpt")]
    pub family: String,
    /// Timed steps.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// One JSON line (same keys as bench/pytorch_gpt.py --json).
    #[arg(long)]
    pub json: bool,
    /// Shards each batch is split into, run in parallel and their gradients summed, as
    /// `train.data_parallel`: 1 = off (every op threads itself), 0 = one per thread.
    #[arg(long, default_value_t = 1)]
    pub data_parallel: usize,
    /// After the timing, show where a step's time goes: phases, and components at this
    /// preset's shapes (matmuls, attention, cross-entropy, layer norm, GELU, embedding, AdamW).
    #[arg(long)]
    pub profile: bool,
}

pub struct Preset {
    pub model: ModelConfig,
    pub batch_size: usize,
}

/// The family's `small` or `medium` model and its batch size (32 or 8 sequences).
pub fn preset(family: &str, name: &str) -> Result<Preset, Error> {
    let batch_size = match name {
        "small" => 32,
        "medium" => 8,
        _ => return Err(Error::input(format!("unknown preset `{name}`: use small or medium"))),
    };
    Ok(Preset { model: jielong_models::family::preset(family, name)?, batch_size })
}

/// The threads the kernels and candle run on: `RAYON_NUM_THREADS` when set, else the CPUs.
fn threads() -> usize {
    candle_core::utils::get_num_threads()
}

/// f32 matrix-multiply rate of this machine through candle, best of several 1024³ products.
pub fn matmul_peak_gflops(dev: &Device) -> Result<f64> {
    let n = 1024;
    let a = Tensor::randn(0f32, 1.0, (n, n), dev)?;
    let b = Tensor::randn(0f32, 1.0, (n, n), dev)?;
    for _ in 0..5 {
        a.matmul(&b)?;
    }
    let mut best = f64::MAX;
    for _ in 0..20 {
        let t0 = Instant::now();
        let c = a.matmul(&b)?;
        drop(c);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    Ok(2.0 * (n as f64).powi(3) / best / 1e9)
}

fn random_batch(rng: &mut Rng, b: usize, t: usize, vocab: usize) -> Batch {
    let draw = |rng: &mut Rng| (0..b * t).map(|_| rng.below(vocab as u64) as u32).collect::<Vec<_>>();
    Batch { batch_size: b, seq_len: t, inputs: draw(rng), targets: draw(rng), segments: None }
}

pub fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Train(a) => run_train(a),
        Command::Generate(a) => run_generate(a),
        Command::Embed(a) => super::bench_embed::run(a),
    }
}

/// Prefill the prompt (context − new_tokens tokens), then decode `new_tokens` greedily; tokens/s
/// of each phase for every batch size and cache setting.
fn run_generate(a: GenerateArgs) -> Result<()> {
    let p = preset(&a.family, &a.preset)?;
    let ctx = p.model.max_seq_len();
    if a.new_tokens == 0 || a.new_tokens >= ctx {
        return Err(Error::input(format!("--new-tokens must be between 1 and {}", ctx - 1)).into());
    }
    let dev = Device::Cpu;
    let threads = threads();
    let params = jielong_nn::ParamStore::new(1337);
    let built = p.model.build(params.var_builder(&dev))?;
    let model = built.as_causal_lm().ok_or_else(|| Error::input(format!("bench generate needs a causal language model; {} is not one", a.family)))?;
    let prompt_len = ctx - a.new_tokens;
    let mut rng = Rng::new(7);
    let vocab = p.model.vocab_size() as u64;
    if !a.json {
        println!(
            "{} preset {} · {:.2} M parameters · context {ctx}: prompt {prompt_len} tokens, then {} decoded (context {}–{ctx}) · {threads} threads",
            a.family,
            a.preset,
            p.model.n_params() as f64 / 1e6,
            a.new_tokens,
            prompt_len + 1
        );
        println!("  {:>5}  {:<8} {:>14} {:>14} {:>12}", "batch", "kv cache", "prefill tok/s", "decode tok/s", "ms/step");
    }
    // Warm up allocations and threads.
    {
        let engine = jielong_generate::Engine::new(model, &dev);
        let mut s = engine.sequence((0..16).collect())?;
        for _ in 0..3 {
            engine.step(&mut [&mut s])?;
            s.push(1);
        }
    }
    let mut decode_rates = std::collections::HashMap::new();
    if a.batches.contains(&0) {
        return Err(Error::input("--batches: a batch needs at least one sequence").into());
    }
    let caches: &[bool] = if a.recompute { &[true, false] } else { &[true] };
    for &batch in &a.batches {
        for &cache in caches {
            let engine = jielong_generate::Engine::new(model, &dev);
            let engine = if cache { engine } else { engine.without_cache() };
            let argmax = |row: &[f32]| row.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0 as u32;
            let step = |seqs: &mut Vec<jielong_generate::Sequence>| -> Result<()> {
                let rows = {
                    let mut refs: Vec<&mut jielong_generate::Sequence> = seqs.iter_mut().collect();
                    engine.step(&mut refs)?
                };
                for (s, row) in seqs.iter_mut().zip(&rows) {
                    s.push(argmax(row));
                }
                Ok(())
            };
            // Prefill (the whole prompt, and the first new token): the median of three, each on
            // fresh sequences.
            let mut prefill_times = Vec::new();
            let mut seqs = Vec::new();
            for _ in 0..3 {
                seqs = (0..batch)
                    .map(|_| engine.sequence((0..prompt_len).map(|_| rng.below(vocab) as u32).collect()))
                    .collect::<jielong_core::Result<Vec<_>>>()?;
                let t0 = Instant::now();
                step(&mut seqs)?;
                prefill_times.push(t0.elapsed().as_secs_f64());
            }
            prefill_times.sort_by(f64::total_cmp);
            let prefill_s = prefill_times[1];
            let t1 = Instant::now();
            for _ in 1..a.new_tokens {
                step(&mut seqs)?;
            }
            let decode_s = t1.elapsed().as_secs_f64();
            let n_steps = a.new_tokens - 1;
            let prefill = (batch * prompt_len) as f64 / prefill_s;
            let decode = (batch * n_steps) as f64 / decode_s;
            decode_rates.insert((batch, cache), decode);
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({"impl": "jielong", "family": a.family, "preset": a.preset, "batch": batch, "kv_cache": cache, "context": ctx,
                        "prompt_tokens": prompt_len, "new_tokens": a.new_tokens, "prefill_tokens_per_s": prefill,
                        "decode_tokens_per_s": decode, "decode_ms_per_step": decode_s * 1000.0 / n_steps as f64, "threads": threads})
                );
            } else {
                println!("  {:>5}  {:<8} {:>14.0} {:>14.1} {:>12.2}", batch, if cache { "on" } else { "off" }, prefill, decode, decode_s * 1000.0 / n_steps as f64);
            }
        }
    }
    if !a.json && a.recompute {
        for &batch in &a.batches {
            println!("  batch {batch}: the KV cache decodes {:.1}× faster than recomputing", decode_rates[&(batch, true)] / decode_rates[&(batch, false)]);
        }
    }
    Ok(())
}

fn run_train(a: TrainArgs) -> Result<()> {
    if a.steps == 0 {
        return Err(Error::input("--steps must be at least 1").into());
    }
    let p = preset(&a.family, &a.preset)?;
    let dev = Device::Cpu;
    let threads = threads();
    let peak = matmul_peak_gflops(&dev)?;
    let train = TrainConfig { learning_rate: 6e-4, weight_decay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, grad_clip: 1.0, seed: 1337, data_parallel: a.data_parallel, ..Default::default() };
    let mut runner = StepRunner::new(&p.model, &train, &dev)?;
    let (b, t) = (p.batch_size, p.model.max_seq_len());
    let vocab = p.model.vocab_size();
    let shards = runner.shards_for(b);
    let mut rng = Rng::new(1337);
    for i in 0..a.warmup {
        let batch = random_batch(&mut rng, b, t, vocab);
        runner.step(&[batch], train.learning_rate, train.grad_clip, train.seed, i as u64)?;
    }
    let batches: Vec<Batch> = (0..a.steps).map(|_| random_batch(&mut rng, b, t, vocab)).collect();
    let t0 = Instant::now();
    for (i, batch) in batches.into_iter().enumerate() {
        runner.step(&[batch], train.learning_rate, train.grad_clip, train.seed, i as u64)?;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    // As bench/pytorch_gpt.py: the peak is measured before and after the run and the best kept,
    // so a moment of contention on a shared machine lowers it less.
    let peak = peak.max(matmul_peak_gflops(&dev)?);
    let tokens_per_s = (a.steps * b * t) as f64 / elapsed;
    let flops_per_token = p.model.flops_per_token(t);
    let mfu = flops_per_token * tokens_per_s / (peak * 1e9);
    let n_params_total = p.model.n_params();
    // As bench/pytorch_gpt.py: the parameters in the FLOP formula (a learned position table
    // excluded): the 6·N term, the whole count at sequence length 0.
    let n_params = (p.model.flops_per_token(0) / 6.0).round() as usize;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "impl": "jielong", "family": a.family, "preset": a.preset, "n_params": n_params, "n_params_total": n_params_total, "flops_per_token": flops_per_token,
                "tokens_per_s": tokens_per_s, "step_ms": elapsed * 1000.0 / a.steps as f64, "mfu": mfu,
                "peak_gflops": peak, "threads": threads, "shards": shards,
            })
        );
    } else {
        println!("{} preset {} · {} · {:.2} M parameters · batch {b} × seq {t} · {threads} threads · {shards} shards", a.family, a.preset, p.model.describe(), n_params_total as f64 / 1e6);
        println!("  {:.0} tokens/s ({:.1} ms/step over {} steps)", tokens_per_s, elapsed * 1000.0 / a.steps as f64, a.steps);
        println!(
            "  {:.1} GFLOP/s of model FLOPs = {:.1}% MFU of the measured matmul peak {:.1} GFLOP/s",
            flops_per_token * tokens_per_s / 1e9,
            mfu * 100.0,
            peak
        );
    }
    if a.profile {
        let batches: Vec<Batch> = (0..5).map(|_| random_batch(&mut rng, b, t, vocab)).collect();
        super::profile::run(&p, &mut runner, &batches, &dev)?;
    }
    Ok(())
}
