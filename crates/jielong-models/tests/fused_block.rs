//! The GPT's training path through the fused transformer block (jielong_nn::block) against
//! the same model through candle's composed ops (`with_reference_kernels`, which switches this
//! test's own thread only, so the tests beside it keep the fused kernels), with dropout on:
//! same loss, same gradient for every parameter.

use candle_core::{Device, Tensor};
use jielong_models::gpt::{Gpt, GptConfig};
use jielong_models::ForwardOpts;
use jielong_nn::{with_reference_kernels, ParamStore, PositionEncoding};

#[test]
fn fused_block_path_matches_composed_path_with_dropout() {
    let dev = Device::Cpu;
    for (pos, dropout) in [(PositionEncoding::Learned, 0.1), (PositionEncoding::Sinusoidal, 0.0)] {
        let cfg = GptConfig { vocab_size: 61, n_layer: 2, n_head: 2, n_embd: 24, max_seq_len: 40, dropout, pos_encoding: pos, ..GptConfig::tiny() };
        let params = ParamStore::new(11);
        let model = Gpt::new(&cfg, params.var_builder(&dev)).unwrap();
        let ids: Vec<u32> = (0..3 * 40).map(|i| (i * 37 % 61) as u32).collect();
        let targets: Vec<u32> = (0..3 * 40).map(|i| (i * 11 % 61) as u32).collect();
        let ids = Tensor::from_vec(ids, (3, 40), &dev).unwrap();
        let targets = Tensor::from_vec(targets, (3, 40), &dev).unwrap();
        let run = |reference: bool| {
            let pass = || {
                let loss = model.forward_loss(&ids, &targets, ForwardOpts { dropout_seed: Some(5), first_row: 0 }).unwrap();
                let grads = loss.backward().unwrap();
                (loss, grads)
            };
            let (loss, grads) = if reference { with_reference_kernels(pass) } else { pass() };
            let g: Vec<(String, Tensor)> = params.vars().into_iter().map(|(name, v)| (name, grads.get(v.as_tensor()).expect("every parameter has a gradient").clone())).collect();
            (loss.to_scalar::<f32>().unwrap(), g)
        };
        let (loss_f, grads_f) = run(false);
        let (loss_r, grads_r) = run(true);
        assert!((loss_f - loss_r).abs() < 1e-5, "{pos:?} p{dropout}: loss {loss_f} vs {loss_r}");
        for ((name, a), (_, e)) in grads_f.iter().zip(&grads_r) {
            let d: f32 = (a - e).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            let scale: f32 = e.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            assert!(d <= 1e-4 * scale.max(1e-3), "{pos:?} p{dropout}: gradient of {name} differs by {d} (scale {scale})");
        }
    }
}
