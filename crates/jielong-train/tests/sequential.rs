//! Sequential batching (truncated backpropagation through time): the rows of consecutive
//! batches are consecutive slices of one stream each, and the state a micro-batch starts from
//! is the detached state the previous one ended in, row by row.

use candle_core::{Device, Tensor, D};
use jielong_data::{prepare, PrepareOptions, SequentialStreams, TokenDataset};
use jielong_models::{ForwardOpts, ModelConfig};
use jielong_text::{Document, ReadReport};
use jielong_tokenizer::{Tokenizer, TokenizerKind};
use jielong_train::config::TrainConfig;
use jielong_train::step::batch_tensors;
use jielong_train::StepRunner;

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(D::Minus1).unwrap().to_scalar().unwrap()
}

#[test]
fn sequential_state_at_batch_start_is_the_detached_state_at_the_previous_end() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (0..60).map(|i| format!("Line {i}: streams are read in order. 按顺序读取。\n")).collect();
    let docs = vec![Document { source: "a".into(), text }];
    let tk = Tokenizer::train(TokenizerKind::Char, 60, docs.iter().map(|d| d.text.clone())).unwrap();
    let out = dir.path().join("shards");
    prepare(docs, &ReadReport::default(), &tk, &out, &PrepareOptions::default()).unwrap();
    let data = TokenDataset::open(&out, "train").unwrap();
    let all = data.to_vec();

    let (b, t) = (3, 8);
    let streams = SequentialStreams::new(data.len(), b, t).unwrap();
    let (b0, b1) = (streams.batch(&data, 0), streams.batch(&data, 1));
    for j in 0..b {
        // Rows are the streams: contiguous slices of the split, the next batch right after.
        let s = j * streams.stream_len;
        assert_eq!(&b0.inputs[j * t..(j + 1) * t], &all[s..s + t]);
        assert_eq!(&b1.inputs[j * t..(j + 1) * t], &all[s + t..s + 2 * t]);
        assert_eq!(&b1.targets[j * t..(j + 1) * t], &all[s + t + 1..s + 2 * t + 1]);
    }

    let model = ModelConfig::from_json(serde_json::json!({"family": "lstm", "vocab_size": tk.vocab_size(), "n_layer": 2, "hidden_size": 16, "max_seq_len": t})).unwrap();
    let mut runner = StepRunner::new(&model, &TrainConfig::default(), &Device::Cpu).unwrap();
    let (_, loss0) = runner.gradients_carried(std::slice::from_ref(&b0), &[true], &[1]).unwrap();
    let carried = runner.carry.clone().unwrap();
    assert_eq!(carried.dims(), &[4, b, 16], "h and c of 2 layers for each stream");
    assert!(!carried.track_op(), "the carried state is detached from the graph");

    // The state at the end of batch 0, computed independently, row by row.
    let rnn = runner.model.as_recurrent().unwrap();
    let (ids0, tg0) = batch_tensors(&b0, &Device::Cpu).unwrap();
    let (l0, end0) = rnn.loss_carried(&ids0, &tg0, None, ForwardOpts::default()).unwrap();
    assert!((l0.to_scalar::<f32>().unwrap() as f64 - loss0).abs() < 1e-6);
    assert!(max_abs_diff(&end0, &carried) < 1e-6);
    for j in 0..b {
        let (idj, tgj) = (ids0.narrow(0, j, 1).unwrap(), tg0.narrow(0, j, 1).unwrap());
        let (_, endj) = rnn.loss_carried(&idj, &tgj, None, ForwardOpts::default()).unwrap();
        assert!(max_abs_diff(&endj, &carried.narrow(1, j, 1).unwrap()) < 1e-5, "stream {j}");
    }

    // Batch 1 starts from that state (its loss is the loss from end0, not from zeros).
    let (ids1, tg1) = batch_tensors(&b1, &Device::Cpu).unwrap();
    let (from_end, _) = rnn.loss_carried(&ids1, &tg1, Some(&end0), ForwardOpts::default()).unwrap();
    let (from_zero, _) = rnn.loss_carried(&ids1, &tg1, None, ForwardOpts::default()).unwrap();
    let (_, loss1) = runner.gradients_carried(std::slice::from_ref(&b1), &[false], &[1]).unwrap();
    let (e, z) = (from_end.to_scalar::<f32>().unwrap() as f64, from_zero.to_scalar::<f32>().unwrap() as f64);
    assert!((loss1 - e).abs() < 1e-6, "batch 1 loss {loss1} vs from the carried state {e}");
    assert!((e - z).abs() > 1e-6, "the carried state must matter");
    // A reset starts from zeros again.
    let (_, fresh) = runner.gradients_carried(std::slice::from_ref(&b1), &[true], &[1]).unwrap();
    assert!((fresh - z).abs() < 1e-6);
}
