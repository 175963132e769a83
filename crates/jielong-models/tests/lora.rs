//! LoRA on the GPT and Llama families: the adapter sits on every path a model runs (the fused
//! block, the composed path, cached decoding), merging changes no output, and training it
//! moves only the adapter.

use candle_core::{Device, Tensor, Var};
use jielong_models::{ForwardOpts, GptConfig, LlamaConfig, Model, ModelConfig, IGNORE_TARGET};
use jielong_nn::{Lora, LoraConfig, ParamStore, PositionEncoding};
use std::sync::Arc;

fn models() -> Vec<(&'static str, ModelConfig)> {
    let gpt = |pos| GptConfig { vocab_size: 40, n_layer: 2, n_head: 2, n_embd: 16, max_seq_len: 16, dropout: 0.0, pos_encoding: pos, ..GptConfig::tiny() };
    let llama = LlamaConfig { vocab_size: 40, n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 32, intermediate_size: 48, max_seq_len: 16, dropout: 0.0, ..LlamaConfig::preset("tiny").unwrap() };
    vec![
        // Learned positions run the fused block; rotary ones the composed path.
        ("gpt fused", ModelConfig::new(gpt(PositionEncoding::Learned))),
        ("gpt composed", ModelConfig::new(gpt(PositionEncoding::Rope))),
        ("llama", ModelConfig::new(llama)),
    ]
}

fn build(cfg: &ModelConfig) -> (Box<dyn Model>, ParamStore) {
    let params = ParamStore::new(7);
    (cfg.build(params.var_builder(&Device::Cpu)).unwrap(), params)
}

fn lora_for(model: &dyn Model, targets: &[&str]) -> Arc<Lora> {
    let cfg = LoraConfig { rank: 4, alpha: 8.0, dropout: 0.0, targets: targets.iter().map(|s| s.to_string()).collect() };
    Arc::new(Lora::new(&cfg, &model.linear_sites(), 11, &Device::Cpu).unwrap())
}

fn logits(model: &dyn Model, ids: &Tensor) -> Tensor {
    model.as_causal_lm().unwrap().logits(ids).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap()
}

fn ids() -> Tensor {
    Tensor::new(&[[1u32, 5, 9, 2, 7, 3, 4, 8], [3, 3, 1, 0, 12, 30, 2, 6]], &Device::Cpu).unwrap()
}

#[test]
fn lora_untrained_is_the_base_and_merged_equals_unmerged() {
    for (name, cfg) in models() {
        let (mut model, params) = build(&cfg);
        let base = logits(&*model, &ids());
        let lora = lora_for(&*model, &["all-linear"]);
        model.set_lora(Some(lora.clone())).unwrap();
        assert_eq!(max_diff(&logits(&*model, &ids()), &base), 0.0, "{name}: an untrained adapter changed the logits");
        for (_, v) in lora.params().vars() {
            v.set(&Tensor::randn(0f32, 0.2, v.shape(), &Device::Cpu).unwrap()).unwrap();
        }
        let unmerged = logits(&*model, &ids());
        assert!(max_diff(&unmerged, &base) > 1e-3, "{name}: the adapter does nothing");
        lora.merge(&params).unwrap();
        let merged = logits(&*model, &ids());
        let d = max_diff(&merged, &unmerged);
        assert!(d <= 1e-5, "{name}: merged differs from unmerged by {d}");
        lora.unmerge(&params).unwrap();
        assert!(max_diff(&logits(&*model, &ids()), &unmerged) <= 1e-5, "{name}: unmerge");
        // Cached decoding goes through the adapter too: the last position's logits agree.
        let lm = model.as_causal_lm().unwrap();
        let row: Vec<u32> = ids().get(0).unwrap().to_vec1().unwrap();
        let mut state = lm.new_state();
        lm.forward_cached(&[&row[..5]], &mut [&mut *state]).unwrap();
        let last = lm.forward_cached(&[&row[5..]], &mut [&mut *state]).unwrap().squeeze(0).unwrap();
        let full = unmerged.get(0).unwrap().get(row.len() - 1).unwrap();
        assert!(max_diff(&last, &full) <= 1e-4, "{name}: cached decoding ignores the adapter");
    }
}

#[test]
fn lora_training_leaves_the_base_bit_identical_and_learns() {
    use candle_nn::Optimizer;
    for (name, cfg) in models() {
        let (mut model, params) = build(&cfg);
        let targets = if name == "llama" { ["q_proj", "v_proj", "down_proj"] } else { ["c_attn", "c_fc", "mlp.c_proj"] };
        let lora = lora_for(&*model, &targets);
        model.set_lora(Some(lora.clone())).unwrap();
        let before: Vec<(String, Vec<f32>)> = params.vars().into_iter().map(|(n, v)| (n, v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())).collect();
        let vars: Vec<Var> = lora.params().vars().into_iter().map(|(_, v)| v).collect();
        let mut opt = candle_nn::AdamW::new_lr(vars, 1e-2).unwrap();
        let x = ids();
        // Loss only on the second half of each row: the rest is IGNORE_TARGET.
        let t: Vec<Vec<u32>> = (0..2).map(|r| (0..8).map(|i| if i < 4 { IGNORE_TARGET } else { ((i * 7 + r) % 40) as u32 }).collect()).collect();
        let t = Tensor::new(vec![t[0].clone(), t[1].clone()], &Device::Cpu).unwrap();
        let loss = || model.as_causal_lm().unwrap().loss_on_targets(&x, &t, ForwardOpts::default()).unwrap();
        let first = loss().to_scalar::<f32>().unwrap();
        for _ in 0..15 {
            opt.backward_step(&loss()).unwrap();
        }
        let last = loss().to_scalar::<f32>().unwrap();
        assert!(last < first - 0.1, "{name}: LoRA training did not learn ({first} → {last})");
        for ((n, b), (_, v)) in before.iter().zip(params.vars()) {
            assert_eq!(&v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap(), b, "{name}: base weight {n} changed");
        }
    }
}

#[test]
fn lora_masked_loss_equals_the_mean_over_kept_positions() {
    for (name, cfg) in models() {
        let (model, _) = build(&cfg);
        let lm = model.as_causal_lm().unwrap();
        let x = ids();
        let full: Vec<Vec<u32>> = vec![vec![4, 8, 1, 2, 3, 9, 0, 5], vec![7, 7, 2, 1, 3, 3, 8, 6]];
        let mut masked = full.clone();
        for (r, row) in masked.iter_mut().enumerate() {
            for (i, v) in row.iter_mut().enumerate() {
                if (i + r) % 3 == 0 {
                    *v = IGNORE_TARGET;
                }
            }
        }
        let fused = lm.loss_on_targets(&x, &Tensor::new(masked.clone(), &Device::Cpu).unwrap(), ForwardOpts::default()).unwrap().to_scalar::<f32>().unwrap();
        // By hand from the logits: mean −log p over the kept positions.
        let lp = candle_nn::ops::log_softmax(&lm.logits(&x).unwrap(), 2).unwrap().to_vec3::<f32>().unwrap();
        let (mut sum, mut n) = (0f32, 0);
        for r in 0..2 {
            for i in 0..8 {
                if masked[r][i] != IGNORE_TARGET {
                    sum -= lp[r][i][masked[r][i] as usize];
                    n += 1;
                }
            }
        }
        assert!((fused - sum / n as f32).abs() < 1e-4, "{name}: {fused} vs {}", sum / n as f32);
    }
}

#[test]
fn lora_from_another_model_is_refused() {
    let cfgs = models();
    let (gpt, _) = build(&cfgs[0].1);
    let (mut llama, _) = build(&cfgs[2].1);
    let e = llama.set_lora(Some(lora_for(&*gpt, &["c_attn"]))).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("another model"), "{e}");
}

/// BERT and ALBERT (post-LN encoders) take adapters too: every one of the six linear layers
/// per encoder layer is a site (ALBERT's shared layer once), an untrained adapter changes
/// nothing, a trained one does, and the merged model's hidden states equal the adapted one's.
#[test]
fn lora_on_encoders_merges_to_the_same_hidden_states() {
    use jielong_models::{AlbertConfig, BertConfig};
    let bert = BertConfig { vocab_size: 40, n_layer: 2, n_head: 2, n_embd: 16, n_inner: 24, max_seq_len: 12, dropout: 0.0, ..BertConfig::tiny() };
    let albert = AlbertConfig { vocab_size: 40, n_layer: 3, n_head: 2, n_embd: 16, embedding_size: 8, n_inner: 24, max_seq_len: 12, dropout: 0.0, ..AlbertConfig::tiny() };
    let dev = Device::Cpu;
    let mask = Tensor::new(&[[1u32, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0, 0]], &dev).unwrap();
    for (name, cfg, n_sites) in [("bert", ModelConfig::new(bert), 12), ("albert", ModelConfig::new(albert), 6)] {
        let (mut model, params) = build(&cfg);
        let sites = model.linear_sites();
        assert_eq!(sites.len(), n_sites, "{name}: sites {sites:?}");
        let hidden = |m: &dyn Model| m.as_encoder().unwrap().hidden_states(&ids(), None, &mask).unwrap();
        let base = hidden(&*model);
        let targets = jielong_models::lora_targets::expand_targets(name, &["q".into(), "v".into(), "mlp".into()], &sites);
        assert_eq!(targets.len(), n_sites / 6 * 4, "{name}: q, v and the two feed-forward layers of each layer: {targets:?}");
        let lora = lora_for(&*model, &targets.iter().map(String::as_str).collect::<Vec<_>>());
        model.set_lora(Some(lora.clone())).unwrap();
        assert_eq!(max_diff(&hidden(&*model), &base), 0.0, "{name}: an untrained adapter changed the hidden states");
        for (_, v) in lora.params().vars() {
            v.set(&Tensor::randn(0f32, 0.2, v.shape(), &dev).unwrap()).unwrap();
        }
        let adapted = hidden(&*model);
        assert!(max_diff(&adapted, &base) > 1e-3, "{name}: the adapter does nothing");
        lora.merge(&params).unwrap();
        model.set_lora(None).unwrap();
        let d = max_diff(&hidden(&*model), &adapted);
        assert!(d <= 1e-5, "{name}: the merged model differs from the adapted one by {d}");
    }
}

/// A post-LN encoder in training, LoRA on every linear layer, dropout on: the fused layer
/// (`jielong_nn::post_ln_encoder_layer`) gives the composed layers' hidden states and the same
/// adapter gradients; the hidden states at one position per sequence
/// (`Encoder::hidden_states_at`, whose last layer computes those rows alone) are the full
/// hidden states' rows, with the same gradients, for [CLS] (dropout masks included) and for
/// last-token positions.
#[test]
fn encoder_fused_layer_and_pooled_rows_match_the_composed_path() {
    use jielong_models::{AlbertConfig, BertConfig};
    let bert = BertConfig { vocab_size: 40, n_layer: 2, n_head: 2, n_embd: 16, n_inner: 24, max_seq_len: 12, dropout: 0.1, ..BertConfig::tiny() };
    let albert = AlbertConfig { vocab_size: 40, n_layer: 3, n_head: 2, n_embd: 16, embedding_size: 8, n_inner: 24, max_seq_len: 12, dropout: 0.1, ..AlbertConfig::tiny() };
    let dev = Device::Cpu;
    let mask = Tensor::new(&[[1u32, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0, 0]], &dev).unwrap();
    let opts = ForwardOpts { dropout_seed: Some(5), first_row: 0 };
    for (name, cfg) in [("bert", ModelConfig::new(bert)), ("albert", ModelConfig::new(albert))] {
        let (mut model, _params) = build(&cfg);
        let lora = lora_for(&*model, &["all-linear"]);
        for (_, v) in lora.params().vars() {
            v.set(&Tensor::randn(0f32, 0.2, v.shape(), &dev).unwrap()).unwrap();
        }
        model.set_lora(Some(lora.clone())).unwrap();
        let enc = model.as_encoder().unwrap();
        let weights = Tensor::randn(0f32, 1.0, (2, 8, 16), &dev).unwrap();
        let vars = lora.params().vars();
        // The full hidden states in training, a loss on them, and the adapters' gradients.
        let run = |h: &Tensor, w: &Tensor| -> Vec<Tensor> {
            let g = (h * w).unwrap().sum_all().unwrap().backward().unwrap();
            vars.iter().map(|(_, v)| g.get(v.as_tensor()).cloned().unwrap_or_else(|| v.as_tensor().zeros_like().unwrap())).collect()
        };
        let close = |a: &[Tensor], b: &[Tensor], what: &str| {
            for ((n, _), (x, y)) in vars.iter().zip(a.iter().zip(b)) {
                let scale = y.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1.0);
                assert!(max_diff(x, y) <= 1e-4 * scale, "{name}: {what}: gradient of {n} differs by {}", max_diff(x, y));
            }
        };
        let fused = enc.hidden_states_train(&ids(), None, &mask, opts).unwrap();
        let composed = jielong_nn::with_reference_kernels(|| enc.hidden_states_train(&ids(), None, &mask, opts).unwrap());
        assert!(max_diff(&fused, &composed) <= 1e-4, "{name}: the fused layer gives other hidden states ({})", max_diff(&fused, &composed));
        let g_full = run(&fused, &weights);
        close(&g_full, &jielong_nn::with_reference_kernels(|| run(&composed, &weights)), "fused vs composed");
        assert!(g_full.iter().any(|g| g.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() > 0.0), "{name}: no adapter gradient");
        for positions in [[0u32, 0], [7, 4]] {
            let at = enc.hidden_states_at(&ids(), None, &mask, &positions, Some(opts)).unwrap();
            let idx = Tensor::new(&[positions[0], 8 + positions[1]], &dev).unwrap();
            let full = enc.hidden_states_train(&ids(), None, &mask, opts).unwrap();
            let rows = full.reshape((16, 16)).unwrap().index_select(&idx, 0).unwrap();
            let w_rows = weights.reshape((16, 16)).unwrap().index_select(&idx, 0).unwrap();
            if positions == [0, 0] {
                // Sequence i's dropout masks start at its first position, so [CLS] draws the same.
                assert!(max_diff(&at, &rows) <= 1e-5, "{name}: [CLS] rows differ by {}", max_diff(&at, &rows));
                close(&run(&at, &w_rows), &run(&rows, &w_rows), "rows vs full");
            }
            let eval_at = enc.hidden_states_at(&ids(), None, &mask, &positions, None).unwrap();
            let eval_rows = enc.hidden_states(&ids(), None, &mask).unwrap().reshape((16, 16)).unwrap().index_select(&idx, 0).unwrap();
            assert!(max_diff(&eval_at, &eval_rows) <= 1e-5, "{name}: positions {positions:?} in evaluation differ by {}", max_diff(&eval_at, &eval_rows));
        }
        assert!(enc.hidden_states_at(&ids(), None, &mask, &[0], None).is_err(), "{name}: one position for two sequences");
    }
}

/// GPT's last-token rows (`Encoder::hidden_states_at`, whose last block computes those rows
/// alone, causal attention for one query per sequence) are the full hidden states' rows, with
/// the same adapter gradients; with RoPE the full states are gathered.
#[test]
fn gpt_pooled_rows_match_the_full_hidden_states() {
    let dev = Device::Cpu;
    let mask = Tensor::new(&[[1u32, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0, 0]], &dev).unwrap();
    for (name, cfg) in models().into_iter().filter(|(n, _)| n.starts_with("gpt")) {
        let (mut model, _params) = build(&cfg);
        let lora = lora_for(&*model, &["c_attn", "attn.c_proj", "c_fc", "mlp.c_proj"]);
        for (_, v) in lora.params().vars() {
            v.set(&Tensor::randn(0f32, 0.2, v.shape(), &dev).unwrap()).unwrap();
        }
        model.set_lora(Some(lora.clone())).unwrap();
        let enc = model.as_encoder().unwrap();
        let vars = lora.params().vars();
        let grads = |h: &Tensor, w: &Tensor| -> Vec<Tensor> {
            let g = (h * w).unwrap().sum_all().unwrap().backward().unwrap();
            vars.iter().map(|(_, v)| g.get(v.as_tensor()).cloned().unwrap_or_else(|| v.as_tensor().zeros_like().unwrap())).collect()
        };
        for positions in [[7u32, 4], [0, 2]] {
            let at = enc.hidden_states_at(&ids(), None, &mask, &positions, Some(ForwardOpts { dropout_seed: Some(3), first_row: 0 })).unwrap();
            let idx = Tensor::new(&[positions[0], 8 + positions[1]], &dev).unwrap();
            let full = enc.hidden_states(&ids(), None, &mask).unwrap().reshape((16, 16)).unwrap().index_select(&idx, 0).unwrap();
            assert!(max_diff(&at, &full) <= 1e-5, "{name}: rows {positions:?} differ by {}", max_diff(&at, &full));
            let w = Tensor::randn(0f32, 1.0, (2, 16), &dev).unwrap();
            for ((n, _), (a, b)) in vars.iter().zip(grads(&at, &w).iter().zip(&grads(&full, &w))) {
                let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1.0);
                assert!(max_diff(a, b) <= 1e-4 * scale, "{name}: gradient of {n} differs by {}", max_diff(a, b));
            }
        }
    }
}
