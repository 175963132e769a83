//! Packed sequences (`jielong sft --packing`) on the GPT and Llama families: several examples
//! in one row, a block-diagonal causal mask and positions restarting per example. Each
//! example's logits in the packed forward must equal that example run alone (≤ 1e-5 of the
//! logits' scale), for
//! every position encoding, with and without a prefix-tuning prefix; prompt tuning is refused.

use candle_core::{Device, Tensor};
use jielong_models::{GptConfig, LlamaConfig, Model, ModelConfig, Packing, SoftPrompt, SoftPromptKind};
use jielong_nn::{ParamStore, PositionEncoding};
use std::sync::Arc;

fn models() -> Vec<(&'static str, ModelConfig)> {
    let gpt = |pos| GptConfig { vocab_size: 40, n_layer: 2, n_head: 2, n_embd: 16, max_seq_len: 24, dropout: 0.0, pos_encoding: pos, ..GptConfig::tiny() };
    let llama = LlamaConfig { vocab_size: 40, n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 32, intermediate_size: 48, max_seq_len: 24, dropout: 0.0, ..LlamaConfig::preset("tiny").unwrap() };
    vec![
        ("gpt learned", ModelConfig::new(gpt(PositionEncoding::Learned))),
        ("gpt sinusoidal", ModelConfig::new(gpt(PositionEncoding::Sinusoidal))),
        ("gpt rope", ModelConfig::new(gpt(PositionEncoding::Rope))),
        ("llama gqa", ModelConfig::new(llama)),
    ]
}

/// Weights far from the init's 0.02, so attention is sharp and a leak across examples shows.
fn build(cfg: &ModelConfig) -> Box<dyn Model> {
    let params = ParamStore::new(7);
    let model = cfg.build(params.var_builder(&Device::Cpu)).unwrap();
    for (_, v) in params.vars() {
        v.set(&(v.as_tensor() * 8.0).unwrap()).unwrap();
    }
    model
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap()
}

const A: [u32; 5] = [1, 5, 9, 2, 7];
const B: [u32; 4] = [3, 3, 8, 1];
const C: [u32; 3] = [12, 30, 6];
const D: [u32; 7] = [4, 22, 17, 9, 9, 2, 38];
const PAD: u32 = 0;

/// Two rows of 12: A B C, and D then five pads (segment u32::MAX). Returns the ids, the
/// packing, and each example's (row, start, tokens).
/// Where each example sits: (row, start, tokens).
type Placed = Vec<(usize, usize, &'static [u32])>;

fn packed() -> (Tensor, Packing, Placed) {
    let t = 12;
    let mut ids = Vec::new();
    let mut segs = Vec::new();
    let mut at = Vec::new();
    for (r, row) in [vec![&A[..], &B[..], &C[..]], vec![&D[..]]].into_iter().enumerate() {
        let mut start = 0;
        for (s, ex) in row.into_iter().enumerate() {
            ids.extend_from_slice(ex);
            segs.extend(std::iter::repeat_n(s as u32, ex.len()));
            at.push((r, start, ex));
            start += ex.len();
        }
        ids.resize((r + 1) * t, PAD);
        segs.resize((r + 1) * t, u32::MAX);
    }
    let packing = Packing::from_segments(&segs, 2, t, &Device::Cpu).unwrap();
    (Tensor::from_vec(ids, (2, t), &Device::Cpu).unwrap(), packing, at)
}

fn check_each_example_alone(name: &str, model: &dyn Model) {
    let lm = model.as_causal_lm().unwrap();
    let (ids, packing, at) = packed();
    let logits = lm.packed_logits(&ids, &packing).unwrap(); // (2, 12, vocab)
    for (r, start, ex) in at {
        let alone = lm.logits(&Tensor::new(ex, &Device::Cpu).unwrap().unsqueeze(0).unwrap()).unwrap().squeeze(0).unwrap();
        let got = logits.get(r).unwrap().narrow(0, start, ex.len()).unwrap();
        // ≤ 1e-5 relative to the logits' scale (these sharp weights give logits in the tens;
        // the fused layers alone and the composed path packed round differently).
        let scale: f32 = alone.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        let d = max_diff(&got, &alone) / scale.max(1.0);
        assert!(d <= 1e-5, "{name}: example {ex:?} packed at row {r}, {start}: logits differ from it alone by {d} (relative, scale {scale})");
    }
    // The mask matters: the same row without it (one sequence) gives other logits for B.
    let one = lm.logits(&ids).unwrap();
    assert!(max_diff(&one.get(0).unwrap().narrow(0, 5, 4).unwrap(), &logits.get(0).unwrap().narrow(0, 5, 4).unwrap()) > 1e-3, "{name}: packing changed nothing");
}

#[test]
fn packed_forward_equals_each_example_alone() {
    for (name, cfg) in models() {
        check_each_example_alone(name, &*build(&cfg));
    }
}

#[test]
fn packed_forward_with_a_prefix_equals_each_example_alone_with_it() {
    for (name, cfg) in models() {
        let mut model = build(&cfg);
        let shape = model.soft_prompt_shape().unwrap();
        let soft = SoftPrompt::random(SoftPromptKind::Prefix, shape, 3, None, 5, &Device::Cpu).unwrap();
        model.set_soft_prompt(Some(Arc::new(soft))).unwrap();
        check_each_example_alone(name, &*model);
    }
}

#[test]
fn packed_loss_equals_the_padded_loss_and_prompt_tuning_is_refused() {
    for (name, cfg) in models() {
        let mut model = build(&cfg);
        let lm = model.as_causal_lm().unwrap();
        let (ids, packing, at) = packed();
        // Targets: the next token of the same example, none at an example's last token.
        let flat = ids.flatten_all().unwrap().to_vec1::<u32>().unwrap();
        let mut targets = vec![jielong_models::IGNORE_TARGET; flat.len()];
        for &(r, start, ex) in &at {
            for k in 0..ex.len() - 1 {
                targets[r * 12 + start + k] = ex[k + 1];
            }
        }
        let tg = Tensor::from_vec(targets, (2, 12), &Device::Cpu).unwrap();
        let packed_loss = lm.packed_loss_on_targets(&ids, &tg, &packing, Default::default()).unwrap().to_scalar::<f32>().unwrap();
        // Padded: each example its own row of 6 (inputs all but its last token).
        let (mut pi, mut pt) = (Vec::new(), Vec::new());
        for &(_, _, ex) in &at {
            let n = ex.len() - 1;
            let mut i = ex[..n].to_vec();
            let mut t = ex[1..].to_vec();
            i.resize(6, PAD);
            t.resize(6, jielong_models::IGNORE_TARGET);
            pi.extend(i);
            pt.extend(t);
        }
        let padded_loss = lm
            .loss_on_targets(&Tensor::from_vec(pi, (4, 6), &Device::Cpu).unwrap(), &Tensor::from_vec(pt, (4, 6), &Device::Cpu).unwrap(), Default::default())
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((packed_loss - padded_loss).abs() <= 1e-5 * padded_loss.abs().max(1.0), "{name}: packed loss {packed_loss} vs padded {padded_loss}");
        let shape = model.soft_prompt_shape().unwrap();
        let soft = SoftPrompt::random(SoftPromptKind::Prompt, shape, 3, None, 5, &Device::Cpu).unwrap();
        model.set_soft_prompt(Some(Arc::new(soft))).unwrap();
        let err = model.as_causal_lm().unwrap().packed_logits(&ids, &packing).unwrap_err().to_string();
        assert!(err.contains("prompt tuning cannot run packed"), "{name}: {err}");
    }
}
