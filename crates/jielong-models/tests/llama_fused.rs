//! The Llama training path through the fused kernels (RMSNorm, RoPE on the packed projection,
//! grouped-query attention, SwiGLU, linear layers) against the same model through candle's
//! composed ops (`with_reference_kernels`: this test's own thread only), dropout on: same loss,
//! same gradient for every parameter, for n_kv_head = 1, 2 and n_head, with and without q/k/v
//! biases. Then KV-cached decoding against
//! recomputing the whole context (≤ 1e-4).

use candle_core::{Device, Tensor};
use jielong_generate::Engine;
use jielong_models::{CausalLm, ForwardOpts, Llama, LlamaConfig};
use jielong_nn::{with_reference_kernels, ParamStore};

fn config(n_kv_head: usize, bias: bool, tie: bool, dropout: f64) -> LlamaConfig {
    LlamaConfig { vocab_size: 61, n_layer: 2, n_head: 4, n_kv_head, n_embd: 32, intermediate_size: 40, max_seq_len: 80, dropout, attention_bias: bias, tie_embeddings: tie, ..LlamaConfig::preset("tiny").unwrap() }
}

/// Random non-trivial values for every parameter (norm weights around 1, biases nonzero).
fn randomize(params: &ParamStore, seed: u64) {
    let mut rng = jielong_core::Rng::new(seed);
    for (name, v) in params.vars() {
        let n = v.elem_count();
        let data: Vec<f32> = (0..n).map(|_| if name.ends_with("norm.weight") { 1.0 + 0.2 * rng.normal() } else { 0.3 * rng.normal() }).collect();
        v.set(&Tensor::from_vec(data, v.shape(), &Device::Cpu).unwrap()).unwrap();
    }
}

#[test]
fn llama_fused_path_matches_composed_path_and_cached_decoding_matches_recompute() {
    let dev = Device::Cpu;
    for (kv, bias, tie, dropout) in [(1, false, true, 0.1), (2, true, false, 0.1), (4, false, false, 0.0)] {
        let cfg = config(kv, bias, tie, dropout);
        let params = ParamStore::new(11);
        let model = Llama::new(&cfg, params.var_builder(&dev)).unwrap();
        randomize(&params, kv as u64);
        let (b, t) = (3, 70); // two query blocks of the attention kernel, the second ragged
        let ids = Tensor::from_vec((0..b * t).map(|i| (i * 37 % 61) as u32).collect::<Vec<_>>(), (b, t), &dev).unwrap();
        let targets = Tensor::from_vec((0..b * t).map(|i| (i * 11 % 61) as u32).collect::<Vec<_>>(), (b, t), &dev).unwrap();
        let run = |reference: bool| {
            let pass = || {
                let loss = model.forward_loss(&ids, &targets, ForwardOpts { dropout_seed: Some(5), first_row: 0 }).unwrap();
                let grads = loss.backward().unwrap();
                (loss, grads)
            };
            let (loss, grads) = if reference { with_reference_kernels(pass) } else { pass() };
            let g: Vec<(String, Tensor)> = params.vars().into_iter().map(|(n, v)| (n, grads.get(v.as_tensor()).expect("every parameter has a gradient").clone())).collect();
            (loss.to_scalar::<f32>().unwrap(), g)
        };
        let (loss_f, grads_f) = run(false);
        let (loss_r, grads_r) = run(true);
        assert!((loss_f - loss_r).abs() < 1e-5 * loss_r.abs().max(1.0), "kv {kv}: loss {loss_f} vs {loss_r}");
        for ((name, a), (_, e)) in grads_f.iter().zip(&grads_r) {
            let d: f32 = (a - e).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            let scale: f32 = e.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            assert!(d <= 1e-4 * scale.max(1e-3), "kv {kv} bias {bias}: gradient of {name} differs by {d} (scale {scale})");
        }

        // Decoding: cached logits equal the full forward pass at every step, one sequence
        // and a batch of different lengths.
        let engine = Engine::new(&model, &dev);
        let mut seqs = [engine.sequence(vec![3, 14, 15, 9, 26]).unwrap(), engine.sequence(vec![7]).unwrap()];
        let mut worst = 0f32;
        for step in 0..40 {
            let rows = {
                let mut refs: Vec<_> = seqs.iter_mut().collect();
                engine.step(&mut refs).unwrap()
            };
            for (s, row) in seqs.iter_mut().zip(&rows) {
                let full = model.logits(&Tensor::new(s.tokens.as_slice(), &dev).unwrap().unsqueeze(0).unwrap()).unwrap();
                let last: Vec<f32> = full.squeeze(0).unwrap().get(s.tokens.len() - 1).unwrap().to_vec1().unwrap();
                worst = worst.max(row.iter().zip(&last).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max));
                s.push(((step * 7 + 3) % 61) as u32);
            }
        }
        assert!(worst <= 1e-4, "kv {kv}: cached vs recomputed logits differ by {worst}");
    }
}
