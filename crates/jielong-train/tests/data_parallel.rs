//! Data parallelism inside one process (`train.data_parallel`): a micro-batch split into
//! shards, each run forward and backward on its own worker pool, gives the loss and the
//! gradients of the whole batch, dropout included (masks are drawn per sequence).

use candle_core::{Device, Tensor};
use jielong_data::Batch;
use jielong_models::{GptConfig, ModelConfig};
use jielong_nn::PositionEncoding;
use jielong_train::config::TrainConfig;
use jielong_train::StepRunner;

fn batch(rows: usize, t: usize, vocab: usize, salt: usize) -> Batch {
    let ids = |k: usize| (0..rows * t).map(|i| ((i * 31 + salt * 7 + k) % vocab) as u32).collect();
    Batch { batch_size: rows, seq_len: t, inputs: ids(0), targets: ids(3), segments: None }
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs().unwrap().max_all().unwrap().to_scalar().unwrap()
}

#[test]
fn shards_give_the_whole_batchs_loss_and_gradients() {
    let dev = Device::Cpu;
    // Learned positions and biases take the fused block; RoPE takes the per-layer ops.
    for pos in [PositionEncoding::Learned, PositionEncoding::Rope] {
        let model = ModelConfig::new(GptConfig { vocab_size: 53, n_layer: 2, n_head: 2, n_embd: 16, max_seq_len: 12, dropout: 0.2, pos_encoding: pos, ..GptConfig::tiny() });
        let runner = |data_parallel| StepRunner::new(&model, &TrainConfig { seed: 3, data_parallel, ..Default::default() }, &dev).unwrap();
        let whole = runner(1);
        // Two micro-batches: 5 sequences split 1 + 2 + 2 over three shards, and 3 over three.
        let batches = [batch(5, 12, 53, 0), batch(3, 12, 53, 1)];
        let seeds = [11, 12];
        let (g1, loss1) = whole.gradients(&batches, &seeds).unwrap();
        for shards in [2, 3] {
            let split = runner(shards);
            assert_eq!(split.shards_for(5), shards);
            assert_eq!(split.shards_for(1), 1, "never more shards than sequences");
            let (g2, loss2) = split.gradients(&batches, &seeds).unwrap();
            assert!((loss1 - loss2).abs() < 1e-5, "{pos:?} {shards} shards: loss {loss2} vs {loss1}");
            for ((name, a), (_, b)) in whole.params.vars().iter().zip(split.params.vars()) {
                let (ga, gb) = (g1.get(a.as_tensor()).unwrap(), g2.get(b.as_tensor()).unwrap());
                let diff = max_abs(&(ga - gb).unwrap());
                let scale = max_abs(ga);
                assert!(scale > 0.0, "{name} has a zero gradient");
                assert!(diff <= 1e-5 * scale.max(1e-3), "{pos:?} {shards} shards: gradient of {name} differs by {diff} (scale {scale})");
            }
        }
    }
}
