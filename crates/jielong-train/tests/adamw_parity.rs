//! One AdamW step must match torch.optim.AdamW (lr 1e-2, betas (0.9, 0.95), eps 1e-8, weight
//! decay 0.1 on tensors of rank ≥ 2, none on the rest) on HF GPT-2's gradients. Expected
//! weights: tests/fixtures/gpt2-tiny/after_step.safetensors, written by make_fixture.py there
//! (torch 2.15.0, transformers 5.23.0; see its README).

use candle_core::{Device, Tensor, D};
use jielong_models::gpt::{Gpt, GptConfig};
use jielong_models::ForwardOpts;
use jielong_nn::params::load_tensors;
use jielong_nn::{ParamStore, PositionEncoding};
use jielong_train::adamw::{AdamW, AdamWParams};
use jielong_train::step::lm_loss;
use std::collections::HashMap;
use std::path::PathBuf;

#[test]
fn adamw_step_matches_torch() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gpt2-tiny");
    let dev = Device::Cpu;
    let cfg = GptConfig {
        vocab_size: 96, n_layer: 2, n_head: 4, n_embd: 32, max_seq_len: 32, dropout: 0.0, bias: true,
        tie_embeddings: true, pos_encoding: PositionEncoding::Learned, layer_norm_eps: 1e-5, rope_theta: 10000.0,
    };
    let params = ParamStore::new(0);
    let model = Gpt::new(&cfg, params.var_builder(&dev)).unwrap();
    params.load(&dir.join("model.safetensors"), |n| Some(n.to_string())).unwrap();
    let expected: HashMap<String, Tensor> = load_tensors(&dir.join("expected.safetensors")).unwrap().into_iter().collect();
    let ids = expected["ids"].to_dtype(candle_core::DType::U32).unwrap();
    let t = ids.dim(1).unwrap();
    let logits = model.forward(&ids.narrow(1, 0, t - 1).unwrap(), ForwardOpts::default()).unwrap();
    // The fixture's loss is over logits[:, :-1] of the full sequence; causal attention makes
    // those equal to the logits of the sequence without its last token.
    let loss = lm_loss(&logits, &ids.narrow(1, 1, t - 1).unwrap()).unwrap();
    let grads = loss.backward().unwrap();
    let mut opt = AdamW::new(params.vars(), AdamWParams { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 }).unwrap();
    opt.step(&grads, 1e-2, 1.0).unwrap();
    let want: HashMap<String, Tensor> = load_tensors(&dir.join("after_step.safetensors")).unwrap().into_iter().collect();
    let ref_grads: HashMap<String, Tensor> = load_tensors(&dir.join("grads.safetensors")).unwrap().into_iter().collect();
    let mut compared = 0usize;
    for (name, var) in params.vars() {
        let got = var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let exp = want[&name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let g = ref_grads[&name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for i in 0..got.len() {
            let d = (got[i] - exp[i]).abs();
            if g[i].abs() > 1e-6 {
                // The first Adam step moves each weight by about lr = 1e-2; 1e-5 is 0.1% of that.
                assert!(d < 1e-5, "{name}[{i}] differs from torch after one AdamW step by {d}");
                compared += 1;
            } else {
                // Gradients that are zero in exact arithmetic (e.g. the attention key bias: softmax
                // ignores a constant added to every score) are float noise near eps on both sides,
                // which Adam's g/(|g|+eps) turns into any step in (−lr, lr).
                assert!(d <= 2e-2 + 1e-6, "{name}[{i}] moved by more than lr");
            }
        }
    }
    let _ = D::Minus1;
    assert!(compared > 5000, "only {compared} weights compared");
}
