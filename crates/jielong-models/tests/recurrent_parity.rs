//! Parity with PyTorch's nn.RNN / nn.LSTM / nn.GRU (an independent implementation): the
//! fixture in tests/fixtures/recurrent was written by make_fixture.py there (versions in its
//! docstring). Our recurrent families load the torch weights unchanged and must give the same
//! logits, loss, final state and gradients from the same initial state.

use candle_core::{DType, Device, Tensor, D};
use jielong_models::{ForwardOpts, ModelConfig, Recurrent, RecurrentConfig};
use jielong_nn::params::load_tensors;
use jielong_nn::ParamStore;
use std::collections::HashMap;
use std::path::PathBuf;

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(D::Minus1).unwrap().to_scalar().unwrap()
}

fn check(cell: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/recurrent").join(cell);
    let dev = Device::Cpu;
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let cfg = ModelConfig::from_json(json).unwrap();
    assert_eq!(cfg.family(), cell);
    let params = ParamStore::new(0);
    let model = Recurrent::new(cfg.get::<RecurrentConfig>().unwrap(), params.var_builder(&dev)).unwrap();
    params.load(&dir.join("model.safetensors"), |n| Some(n.to_string())).unwrap();
    let exp: HashMap<String, Tensor> = load_tensors(&dir.join("expected.safetensors")).unwrap().into_iter().collect();
    let ids = exp["ids"].to_dtype(DType::U32).unwrap();
    let targets = exp["targets"].to_dtype(DType::U32).unwrap();
    let init = &exp["init"];

    let (xs, last) = model.hidden(&ids, Some(init), ForwardOpts::default()).unwrap();
    let head = params.vars().into_iter().find(|(n, _)| n == if cell == "rnn" { "decoder.weight" } else { "encoder.weight" }).unwrap().1;
    let logits = xs.broadcast_matmul(&head.as_tensor().t().unwrap()).unwrap();
    let d = max_abs_diff(&logits, &exp["logits"]);
    assert!(d <= 1e-5, "{cell}: logits differ from torch by {d}");
    let d = max_abs_diff(&last, &exp["final"]);
    assert!(d <= 1e-5, "{cell}: final state differs from torch by {d}");

    let (loss, _) = model.loss_from(&ids, &targets, Some(init), ForwardOpts::default()).unwrap();
    let want = exp["loss"].flatten_all().unwrap().to_vec1::<f32>().unwrap()[0];
    let got = loss.to_scalar::<f32>().unwrap();
    assert!((got - want).abs() <= 1e-5, "{cell}: loss {got} vs torch {want}");
    let grads = loss.backward().unwrap();
    let mut checked = 0;
    for (name, var) in params.vars() {
        let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{cell}: no gradient for {name}"));
        let want = &exp[&format!("grad.{name}")];
        let scale = want.abs().unwrap().flatten_all().unwrap().max(D::Minus1).unwrap().to_scalar::<f32>().unwrap().max(1e-3);
        let d = max_abs_diff(g, want);
        assert!(d <= 1e-5 * scale.max(1.0), "{cell}: gradient of {name} differs from torch by {d} (max |g| {scale})");
        checked += 1;
    }
    assert_eq!(checked, exp.keys().filter(|k| k.starts_with("grad.")).count(), "{cell}: every torch parameter is ours");
}

#[test]
fn rnn_matches_torch_nn_rnn_logits_state_loss_and_grads() {
    check("rnn");
}

#[test]
fn lstm_matches_torch_nn_lstm_logits_state_loss_and_grads() {
    check("lstm");
}

#[test]
fn gru_matches_torch_nn_gru_logits_state_loss_and_grads() {
    check("gru");
}
