//! Parity with PyTorch (an independent implementation): the fixtures in tests/fixtures/seq2seq
//! were written by make_fixture.py there (versions in its docstring).
//!
//! - Bidirectional encoders against `nn.RNN/LSTM/GRU(bidirectional=True)` over a
//!   `pack_padded_sequence`: outputs, final states and gradients (weights and input).
//! - The seq2seq family against a torch reference of the same equations: logits, attention
//!   weights, loss and every gradient, for attention none, additive, dot and general.

use candle_core::{DType, Device, Tensor, Var, D};
use jielong_models::recurrent::Cell;
use jielong_models::{ModelConfig, RecurrentEncoder, Seq2seq, Seq2seqConfig, Seq2seqModel};
use jielong_nn::params::load_tensors;
use jielong_nn::ParamStore;
use std::collections::HashMap;
use std::path::PathBuf;

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/seq2seq").join(name)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(D::Minus1).unwrap().to_scalar().unwrap()
}

fn max_abs(a: &Tensor) -> f32 {
    a.abs().unwrap().flatten_all().unwrap().max(D::Minus1).unwrap().to_scalar().unwrap()
}

fn expected(name: &str) -> HashMap<String, Tensor> {
    load_tensors(&dir(name).join("expected.safetensors")).unwrap().into_iter().collect()
}

fn lens(t: &Tensor) -> Vec<usize> {
    t.to_dtype(DType::U32).unwrap().to_vec1::<u32>().unwrap().into_iter().map(|x| x as usize).collect()
}

fn check_grads(what: &str, params: &ParamStore, grads: &candle_core::backprop::GradStore, exp: &HashMap<String, Tensor>, strip: &str) {
    let mut checked = 0;
    for (name, var) in params.vars() {
        let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{what}: no gradient for {name}"));
        let want = &exp[&format!("grad.{}", name.strip_prefix(strip).unwrap_or(&name))];
        let d = max_abs_diff(g, want);
        assert!(d <= 1e-5 * max_abs(want).max(1.0), "{what}: gradient of {name} differs from torch by {d}");
        checked += 1;
    }
    let torch_params = exp.keys().filter(|k| k.starts_with("grad.") && *k != "grad.xs").count();
    assert_eq!(checked, torch_params, "{what}: every torch parameter is ours");
}

fn birnn(cell: Cell) {
    let name = format!("birnn-{}", cell.name());
    let dev = Device::Cpu;
    let exp = expected(&name);
    let params = ParamStore::new(0);
    let enc = RecurrentEncoder::new(params.var_builder(&dev).pp("rnn"), cell, 5, 6, 2, true).unwrap();
    params.load(&dir(&name).join("model.safetensors"), |n| Some(n.to_string())).unwrap();
    let xs = Var::from_tensor(&exp["xs"]).unwrap();
    let out = enc.forward(xs.as_tensor(), &lens(&exp["lens"]), &|x, _| Ok(x.clone())).unwrap();
    let d = max_abs_diff(&out.outputs, &exp["outputs"]);
    assert!(d <= 1e-5, "{name}: outputs differ from torch by {d}");
    let d = max_abs_diff(&out.h_n, &exp["h_n"]);
    assert!(d <= 1e-5, "{name}: h_n differs from torch by {d}");
    if let Some(c) = &out.c_n {
        let d = max_abs_diff(c, &exp["c_n"]);
        assert!(d <= 1e-5, "{name}: c_n differs from torch by {d}");
    }
    let loss = ((&out.outputs * &exp["w_out"]).unwrap().sum_all().unwrap() + (&out.h_n * &exp["w_h"]).unwrap().sum_all().unwrap()).unwrap();
    let grads = loss.backward().unwrap();
    let d = max_abs_diff(grads.get(xs.as_tensor()).unwrap(), &exp["grad.xs"]);
    assert!(d <= 1e-5, "{name}: input gradient differs by {d}");
    check_grads(&name, &params, &grads, &exp, "");
}

#[test]
fn bidirectional_rnn_matches_torch_packed_sequences() {
    birnn(Cell::Rnn);
}

#[test]
fn bidirectional_lstm_matches_torch_packed_sequences() {
    birnn(Cell::Lstm);
}

#[test]
fn bidirectional_gru_matches_torch_packed_sequences() {
    birnn(Cell::Gru);
}

fn s2s(att: &str) {
    let name = format!("s2s-{att}");
    let dev = Device::Cpu;
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir(&name).join("config.json")).unwrap()).unwrap();
    let cfg = ModelConfig::from_json(json).unwrap();
    let params = ParamStore::new(0);
    let model = Seq2seqModel::new(cfg.get::<Seq2seqConfig>().unwrap(), params.var_builder(&dev)).unwrap();
    params.load(&dir(&name).join("model.safetensors"), |n| Some(n.to_string())).unwrap();
    let exp = expected(&name);
    let u32s = |k: &str| exp[k].to_dtype(DType::U32).unwrap();
    let (src, tgt_in, targets) = (u32s("src"), u32s("tgt_in"), u32s("targets"));
    let (src_lens, tgt_lens) = (lens(&exp["src_lens"]), lens(&exp["tgt_lens"]));
    let (logits, weights) = model.forward(&src, &src_lens, &tgt_in).unwrap();
    let d = max_abs_diff(&logits, &exp["logits"]);
    assert!(d <= 1e-5, "{name}: logits differ from torch by {d}");
    match (weights, exp.get("weights")) {
        (Some(w), Some(want)) => {
            let d = max_abs_diff(&w, want);
            assert!(d <= 1e-6, "{name}: attention weights differ from torch by {d}");
        }
        (None, None) => {}
        (w, e) => panic!("{name}: attention weights {} here, {} in torch", w.is_some(), e.is_some()),
    }
    let loss = Seq2seq::loss(&model, &src, &src_lens, &tgt_in, &targets, &tgt_lens, Default::default()).unwrap();
    let want = exp["loss"].flatten_all().unwrap().to_vec1::<f32>().unwrap()[0];
    let got = loss.to_scalar::<f32>().unwrap();
    assert!((got - want).abs() <= 1e-5, "{name}: loss {got} vs torch {want}");
    check_grads(&name, &params, &loss.backward().unwrap(), &exp, "");
}

#[test]
fn seq2seq_without_attention_matches_torch() {
    s2s("none");
}

#[test]
fn seq2seq_additive_attention_matches_torch() {
    s2s("additive");
}

#[test]
fn seq2seq_dot_attention_matches_torch() {
    s2s("dot");
}

#[test]
fn seq2seq_general_attention_matches_torch() {
    s2s("general");
}
