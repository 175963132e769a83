//! Parity with Hugging Face transformers' GPT2LMHeadModel (an independent implementation):
//! the fixture in tests/fixtures/gpt2-tiny was written by make_fixture.py there (versions in
//! its README). Our GPT loads the HF weights unchanged and must give the same logits, loss and
//! gradients.

use candle_core::{Device, Tensor, D};
use jielong_models::gpt::{ForwardOpts, Gpt, GptConfig};
use jielong_nn::params::load_tensors;
use jielong_nn::{ParamStore, PositionEncoding};
use std::collections::HashMap;
use std::path::PathBuf;

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gpt2-tiny")
}

pub fn tiny_config() -> GptConfig {
    GptConfig {
        vocab_size: 96,
        n_layer: 2,
        n_head: 4,
        n_embd: 32,
        max_seq_len: 32,
        dropout: 0.0,
        bias: true,
        tie_embeddings: true,
        pos_encoding: PositionEncoding::Learned,
        layer_norm_eps: 1e-5,
        rope_theta: 10000.0,
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(D::Minus1).unwrap().to_scalar().unwrap()
}

#[test]
fn gpt_matches_hf_gpt2_logits_loss_and_grads() {
    let dir = fixture_dir();
    let dev = Device::Cpu;
    let params = ParamStore::new(0);
    let model = Gpt::new(&tiny_config(), params.var_builder(&dev)).unwrap();
    params.load(&dir.join("model.safetensors"), |n| Some(n.to_string())).unwrap();

    let expected: HashMap<String, Tensor> = load_tensors(&dir.join("expected.safetensors")).unwrap().into_iter().collect();
    let ids = expected["ids"].to_dtype(candle_core::DType::U32).unwrap();
    let logits = model.forward(&ids, ForwardOpts::default()).unwrap();
    let diff = max_abs_diff(&logits, &expected["logits"]);
    assert!(diff < 1e-4, "logits differ from HF by {diff}");

    let (b, t, v) = logits.dims3().unwrap();
    let inputs = logits.narrow(1, 0, t - 1).unwrap().reshape((b * (t - 1), v)).unwrap();
    let targets = ids.narrow(1, 1, t - 1).unwrap().flatten_all().unwrap();
    let loss = candle_nn::loss::cross_entropy(&inputs, &targets).unwrap();
    let want = expected["loss"].flatten_all().unwrap().to_vec1::<f32>().unwrap()[0];
    let got = loss.to_scalar::<f32>().unwrap();
    assert!((got - want).abs() < 1e-5, "loss {got} vs HF {want}");

    let grads = loss.backward().unwrap();
    let want_grads: HashMap<String, Tensor> = load_tensors(&dir.join("grads.safetensors")).unwrap().into_iter().collect();
    for (name, var) in params.vars() {
        let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
        let w = &want_grads[&name];
        let scale: f32 = w.abs().unwrap().flatten_all().unwrap().max(D::Minus1).unwrap().to_scalar().unwrap();
        let diff = max_abs_diff(g, w);
        assert!(diff <= 1e-4 * scale.max(1.0), "grad of {name} differs from HF by {diff} (scale {scale})");
    }
}
