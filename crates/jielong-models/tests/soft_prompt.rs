//! Prompt and prefix tuning on the GPT and Llama families, checked against the base model
//! itself: a soft prompt made of real tokens' embeddings, or a prefix made of the keys and
//! values the base computes for real tokens, must give exactly the base's logits on those
//! tokens followed by the text (positions shifted by n, as transformers does with a
//! `past_key_values` prefix). And cached decoding through the virtual tokens equals recompute.

use candle_core::{Device, Tensor};
use jielong_models::{GptConfig, LlamaConfig, Model, ModelConfig, SoftPrompt, SoftPromptKind};
use jielong_nn::{KvCache, ParamStore, PositionEncoding};
use std::sync::Arc;

fn models() -> Vec<(&'static str, ModelConfig)> {
    let gpt = |pos| GptConfig { vocab_size: 40, n_layer: 2, n_head: 2, n_embd: 16, max_seq_len: 16, dropout: 0.0, pos_encoding: pos, ..GptConfig::tiny() };
    let llama = LlamaConfig { vocab_size: 40, n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 32, intermediate_size: 48, max_seq_len: 16, dropout: 0.0, ..LlamaConfig::preset("tiny").unwrap() };
    vec![
        ("gpt learned", ModelConfig::new(gpt(PositionEncoding::Learned))),
        ("gpt sinusoidal", ModelConfig::new(gpt(PositionEncoding::Sinusoidal))),
        ("gpt rope", ModelConfig::new(gpt(PositionEncoding::Rope))),
        ("llama gqa", ModelConfig::new(llama)),
    ]
}

/// A model with weights far from the init's 0.02, so attention is sharp and mistakes show.
fn build(cfg: &ModelConfig) -> (Box<dyn Model>, ParamStore) {
    let params = ParamStore::new(7);
    let model = cfg.build(params.var_builder(&Device::Cpu)).unwrap();
    for (_, v) in params.vars() {
        let t = (v.as_tensor() * 8.0).unwrap();
        v.set(&t).unwrap();
    }
    (model, params)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap()
}

const VIRTUAL: [u32; 3] = [11, 4, 27];
const TEXT: [u32; 6] = [1, 5, 9, 2, 7, 3];

/// The base's logits on VIRTUAL ++ TEXT, at the TEXT positions: (t, vocab).
fn base_on_concat(model: &dyn Model) -> Tensor {
    let all: Vec<u32> = VIRTUAL.iter().chain(&TEXT).copied().collect();
    let l = model.as_causal_lm().unwrap().logits(&Tensor::new(all.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap()).unwrap();
    l.squeeze(0).unwrap().narrow(0, VIRTUAL.len(), TEXT.len()).unwrap()
}

fn text_logits(model: &dyn Model) -> Tensor {
    // Two identical rows: the virtual tokens are broadcast over the batch.
    let ids = Tensor::new(&[TEXT, TEXT], &Device::Cpu).unwrap();
    let l = model.as_causal_lm().unwrap().logits(&ids).unwrap();
    assert!(max_diff(&l.get(0).unwrap(), &l.get(1).unwrap()) == 0.0);
    l.get(0).unwrap()
}

/// The base's keys and values of layer `layer` for VIRTUAL, as rows (n, kv_dim) each.
fn base_kv(cache: &mut KvCache, layer: usize, kv_heads: usize, d: usize) -> (Tensor, Tensor) {
    // Appending nothing returns what the layer holds: (1, kv, n, d).
    let empty = Tensor::zeros((1, kv_heads, 0, d), candle_core::DType::F32, &Device::Cpu).unwrap();
    let (k, v) = cache.append(layer, &empty, &empty).unwrap();
    let rows = |x: Tensor| x.squeeze(0).unwrap().transpose(0, 1).unwrap().reshape((VIRTUAL.len(), kv_heads * d)).unwrap();
    (rows(k), rows(v))
}

#[test]
fn soft_prompt_of_token_embeddings_equals_the_base_on_those_tokens() {
    for (name, cfg) in models() {
        let (mut model, params) = build(&cfg);
        let want = base_on_concat(&*model);
        let (table_name, _) = cfg.token_embedding().unwrap();
        let table = params.vars().into_iter().find(|(n, _)| n == table_name).unwrap().1;
        let rows = table.as_tensor().index_select(&Tensor::new(&VIRTUAL, &Device::Cpu).unwrap(), 0).unwrap();
        let shape = model.soft_prompt_shape().unwrap();
        let soft = Arc::new(SoftPrompt::new(SoftPromptKind::Prompt, shape, &rows).unwrap());
        model.set_soft_prompt(Some(soft)).unwrap();
        let got = text_logits(&*model);
        let d = max_diff(&got, &want);
        assert!(d <= 1e-4, "{name}: prompt tuning differs from the base on the same tokens by {d}");
    }
}

#[test]
fn prefix_of_the_bases_keys_and_values_equals_the_base_on_those_tokens() {
    for (name, cfg) in models() {
        let (mut model, _params) = build(&cfg);
        let want = base_on_concat(&*model);
        let shape = model.soft_prompt_shape().unwrap();
        let lm = model.as_causal_lm().unwrap();
        let mut state = lm.new_state();
        lm.forward_cached(&[&VIRTUAL], &mut [&mut *state]).unwrap();
        let cache = state.as_any_mut().downcast_mut::<KvCache>().unwrap();
        let mut cols = Vec::new();
        for layer in 0..shape.n_layer {
            let (k, v) = base_kv(cache, layer, shape.n_kv_head, shape.head_dim);
            cols.push(k);
            cols.push(v);
        }
        let table = Tensor::cat(&cols, 1).unwrap(); // (n, n_layer·2·kv_dim), PEFT's layout
        let soft = Arc::new(SoftPrompt::new(SoftPromptKind::Prefix, shape, &table).unwrap());
        model.set_soft_prompt(Some(soft)).unwrap();
        let got = text_logits(&*model);
        let d = max_diff(&got, &want);
        assert!(d <= 1e-4, "{name}: prefix tuning differs from the base with the same keys and values by {d}");
        // And the prefix matters: a different one changes the logits.
        let other = Arc::new(SoftPrompt::new(SoftPromptKind::Prefix, shape, &(table * 0.5).unwrap()).unwrap());
        model.set_soft_prompt(Some(other)).unwrap();
        assert!(max_diff(&text_logits(&*model), &want) > 1e-3, "{name}: the prefix is ignored");
    }
}

#[test]
fn soft_prompt_cached_decoding_equals_recompute() {
    for (name, cfg) in models() {
        for kind in [SoftPromptKind::Prompt, SoftPromptKind::Prefix] {
            let (mut model, _params) = build(&cfg);
            let shape = model.soft_prompt_shape().unwrap();
            let init = Tensor::randn(0f32, 1.0, (4, shape.width(kind)), &Device::Cpu).unwrap();
            model.set_soft_prompt(Some(Arc::new(SoftPrompt::new(kind, shape, &init).unwrap()))).unwrap();
            let lm = model.as_causal_lm().unwrap();
            assert_eq!(lm.max_seq_len(), 12, "{name} {kind:?}: the context left for text");
            let full = text_logits(&*model);
            let mut state = lm.new_state();
            let mut rows = vec![lm.forward_cached(&[&TEXT[..3]], &mut [&mut *state]).unwrap()];
            assert_eq!(state.len(), 3, "{name} {kind:?}: the state counts real tokens only");
            for i in 3..TEXT.len() {
                rows.push(lm.forward_cached(&[&TEXT[i..=i]], &mut [&mut *state]).unwrap());
            }
            // The weights are 8× the init, so logits run to tens: 1e-5 relative to their size.
            let scale = full.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1.0);
            let tol = 1e-5 * scale;
            for (j, row) in rows.iter().enumerate() {
                let pos = if j == 0 { 2 } else { j + 2 };
                let d = max_diff(&row.squeeze(0).unwrap(), &full.get(pos).unwrap());
                assert!(d <= tol, "{name} {kind:?}: cached position {pos} differs from recompute by {d} (> {tol})");
            }
            // Rewinding and clearing keep the virtual tokens: the same logits again.
            assert_eq!(state.rewind(2).unwrap(), 2);
            let again = lm.forward_cached(&[&TEXT[2..]], &mut [&mut *state]).unwrap().squeeze(0).unwrap();
            assert!(max_diff(&again, &full.get(TEXT.len() - 1).unwrap()) <= tol, "{name} {kind:?}: rewind");
            state.clear();
            assert_eq!(state.len(), 0);
            let cleared = lm.forward_cached(&[&TEXT], &mut [&mut *state]).unwrap().squeeze(0).unwrap();
            assert!(max_diff(&cleared, &full.get(TEXT.len() - 1).unwrap()) <= tol, "{name} {kind:?}: clear");
        }
    }
}

#[test]
fn soft_prompt_too_long_or_for_another_model_is_refused() {
    let cfgs = models();
    let (gpt, _) = build(&cfgs[0].1);
    let (mut llama, _) = build(&cfgs[3].1);
    let shape = gpt.soft_prompt_shape().unwrap();
    let e = SoftPrompt::new(SoftPromptKind::Prompt, shape, &Tensor::zeros((16, 16), candle_core::DType::F32, &Device::Cpu).unwrap()).err().unwrap();
    assert!(e.to_string().contains("no room for text") && e.to_string().contains("--num-virtual-tokens"), "{e}");
    let soft = Arc::new(SoftPrompt::new(SoftPromptKind::Prefix, shape, &Tensor::zeros((2, shape.width(SoftPromptKind::Prefix)), candle_core::DType::F32, &Device::Cpu).unwrap()).unwrap());
    let e = llama.set_soft_prompt(Some(soft)).unwrap_err();
    assert!(e.to_string().contains("another model"), "{e}");
}
