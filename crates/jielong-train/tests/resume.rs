//! Exact resume: a run stopped at step 6 and resumed computes the same losses for steps 7..12
//! as a run that was never stopped (same seed, same data order, same dropout masks), on both
//! GPT training paths: RoPE (per-layer ops) and learned positions (the fused block), the latter
//! with micro-batches large enough that the kernels' reductions over rows run in parallel; and
//! on the Llama family (fused RMSNorm, RoPE, grouped-query attention and SwiGLU). The resumed
//! run's metrics.jsonl equals the uninterrupted one's byte for byte, timings aside.

use jielong_data::{prepare, PrepareOptions};
use jielong_models::{GptConfig, LlamaConfig, ModelConfig};
use jielong_nn::PositionEncoding;
use jielong_text::{Document, ReadReport};
use jielong_tokenizer::{Tokenizer, TokenizerKind};
use jielong_train::config::{DataConfig, RunConfig, TrainConfig};
use jielong_train::{train, Event};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

fn make_data(dir: &Path) -> std::path::PathBuf {
    let text: String = (0..200)
        .map(|i| format!("Sentence {i}: the model predicts the next token. 模型预测下一个词元。\n"))
        .collect();
    let docs = vec![Document { source: "a".into(), text }];
    let tk = Tokenizer::train(TokenizerKind::Bpe, 320, docs.iter().map(|d| d.text.clone())).unwrap();
    let out = dir.join("shards");
    prepare(docs, &ReadReport::default(), &tk, &out, &PrepareOptions::default()).unwrap();
    out
}

fn gpt(pos_encoding: PositionEncoding, max_seq_len: usize) -> GptConfig {
    GptConfig { vocab_size: 0, n_layer: 2, n_head: 2, n_embd: 32, max_seq_len, dropout: 0.1, pos_encoding, ..GptConfig::tiny() }
}

fn config(data: &Path) -> RunConfig {
    config_for(data, ModelConfig::new(gpt(PositionEncoding::Rope, 32)))
}

fn config_for(data: &Path, model: ModelConfig) -> RunConfig {
    RunConfig {
        data: DataConfig { dir: data.to_path_buf() },
        model,
        train: TrainConfig {
            batch_size: 4,
            grad_accum: 2,
            max_steps: 12,
            warmup_steps: 3,
            learning_rate: 3e-3,
            eval_interval: 4,
            eval_windows: 8,
            checkpoint_interval: 100,
            ..Default::default()
        },
    }
}

fn lstm(cell: &str) -> ModelConfig {
    ModelConfig::from_json(serde_json::json!({"family": cell, "n_layer": 2, "hidden_size": 24, "n_embd": 16, "max_seq_len": 12, "dropout": 0.1, "tie_embeddings": true})).unwrap()
}

#[test]
fn resume_of_lstm_with_random_windows_matches_uninterrupted_run_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_data(dir.path());
    resume_matches(dir.path(), config_for(&data, lstm("lstm")));
}

#[test]
fn resume_of_gru_with_sequential_batching_carries_the_state_bit_for_bit() {
    // Truncated BPTT: the state carried into step 7 comes from the checkpoint at step 6.
    let dir = tempfile::tempdir().unwrap();
    let data = make_data(dir.path());
    let mut cfg = config_for(&data, lstm("gru"));
    cfg.train.batching = jielong_train::config::Batching::Sequential;
    resume_matches(dir.path(), cfg.clone());
    assert!(dir.path().join("cut/ckpt-000006/carry.safetensors").exists());
    // Without the carried state, a resumed run would start step 7 from zeros: refuse.
    std::fs::remove_file(dir.path().join("cut/ckpt-000012/carry.safetensors")).unwrap();
    cfg.train.max_steps = 14;
    let e = train(&dir.path().join("cut"), cfg, true, &AtomicBool::new(false), &mut |_| {}).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("no carried state"), "{e}");
}

#[test]
fn sequential_batching_needs_a_recurrent_family() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_data(dir.path());
    let mut cfg = config(&data);
    cfg.train.batching = jielong_train::config::Batching::Sequential;
    let e = train(&dir.path().join("run"), cfg, false, &AtomicBool::new(false), &mut |_| {}).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("family gpt has none"), "{e}");
}

#[test]
fn resume_after_interrupt_matches_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_data(dir.path());
    resume_matches(dir.path(), config(&data));
}

#[test]
fn resume_on_the_fused_path_matches_uninterrupted_run_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_data(dir.path());
    // 2048 rows per micro-batch: sixteen blocks in the kernels' parallel sums over rows, enough
    // for rayon's work stealing to regroup them from run to run if they were not ordered.
    let mut cfg = config_for(&data, ModelConfig::new(gpt(PositionEncoding::Learned, 128)));
    cfg.train.batch_size = 16;
    resume_matches(dir.path(), cfg);
}

#[test]
fn resume_of_llama_matches_uninterrupted_run_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_data(dir.path());
    let llama = LlamaConfig { vocab_size: 0, n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 32, intermediate_size: 64, max_seq_len: 128, dropout: 0.1, ..LlamaConfig::preset("tiny").unwrap() };
    let mut cfg = config_for(&data, ModelConfig::new(llama));
    cfg.train.batch_size = 16;
    resume_matches(dir.path(), cfg);
}

/// A metrics line without its wall-clock fields (which differ between any two runs).
fn without_timings(line: &str) -> String {
    line.split(',').filter(|kv| !kv.contains("\"tokens_per_s\"") && !kv.contains("\"elapsed_s\"")).collect::<Vec<_>>().join(",")
}

fn resume_matches(dir: &Path, cfg: RunConfig) {
    let never = AtomicBool::new(false);
    let full = train(&dir.join("full"), cfg.clone(), false, &never, &mut |_| {}).unwrap();
    assert_eq!(full.step_losses.len(), 12);
    assert!(!full.interrupted);

    // Interrupt after step 6: the loop must checkpoint there and stop.
    let stop = AtomicBool::new(false);
    let run = dir.join("cut");
    let first = train(&run, cfg.clone(), false, &stop, &mut |e| {
        if let Event::Step { step: 6, .. } = e {
            stop.store(true, Ordering::SeqCst);
        }
    })
    .unwrap();
    assert!(first.interrupted);
    assert_eq!(first.steps, 6);
    assert!(run.join("ckpt-000006/model.safetensors").exists());

    let resumed = train(&run, cfg.clone(), true, &never, &mut |_| {}).unwrap();
    assert_eq!(resumed.step_losses.first().unwrap().0, 7);
    let all: Vec<(u64, f64)> = first.step_losses.iter().chain(&resumed.step_losses).copied().collect();
    assert_eq!(all, full.step_losses, "resumed losses differ from the uninterrupted run");
    let norms = |rows: &[jielong_train::metrics::MetricRow]| rows.iter().filter_map(|r| r.grad_norm.map(|g| (r.step, g))).collect::<Vec<_>>();
    let (cut_rows, full_rows) = (jielong_train::metrics::read(&run.join("metrics.jsonl")), jielong_train::metrics::read(&dir.join("full/metrics.jsonl")));
    assert_eq!(norms(&cut_rows), norms(&full_rows), "gradient norms differ from the uninterrupted run");
    assert_eq!(resumed.val_loss, full.val_loss);
    // Learning happened: the last loss is below the first.
    assert!(full.step_losses[11].1 < full.step_losses[0].1);
    // Metrics have one train row per step, no duplicates from the interrupted part.
    let rows = jielong_train::metrics::read(&run.join("metrics.jsonl"));
    let steps: Vec<u64> = rows.iter().filter(|r| r.loss.is_some()).map(|r| r.step).collect();
    assert_eq!(steps, (1..=12).collect::<Vec<_>>());
    assert!(std::fs::read_to_string(run.join("loss.svg")).unwrap().contains("<path"));
    // The files themselves: every loss, norm and learning rate written with the same digits
    // (the lines kept on resume are not re-parsed and re-printed).
    let lines = |p: &Path| std::fs::read_to_string(p).unwrap().lines().map(without_timings).collect::<Vec<_>>();
    assert_eq!(lines(&run.join("metrics.jsonl")), lines(&dir.join("full/metrics.jsonl")), "metrics.jsonl differs from the uninterrupted run's");
}

#[test]
fn train_refuses_to_overwrite_and_detects_tokenizer_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_data(dir.path());
    let mut cfg = config(&data);
    cfg.train.max_steps = 2;
    let never = AtomicBool::new(false);
    let run = dir.path().join("run");
    train(&run, cfg.clone(), false, &never, &mut |_| {}).unwrap();
    let e = train(&run, cfg.clone(), false, &never, &mut |_| {}).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("--resume"), "{e}");

    // Data re-made with another tokenizer: resuming must refuse.
    let docs = vec![Document { source: "b".into(), text: "entirely different text ".repeat(200) }];
    let tk = Tokenizer::train(TokenizerKind::Char, 40, docs.iter().map(|d| d.text.clone())).unwrap();
    let other = dir.path().join("other");
    prepare(docs, &ReadReport::default(), &tk, &other, &PrepareOptions::default()).unwrap();
    let mut cfg2 = cfg.clone();
    cfg2.data.dir = other;
    cfg2.model.set_vocab_size(0);
    cfg2.train.max_steps = 4;
    let e = train(&run, cfg2, true, &never, &mut |_| {}).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("different tokenizer"), "{e}");

    let mut bad = cfg.clone();
    bad.model = bad.model.with_setting("n_head", 3.into()).unwrap();
    let e = train(&dir.path().join("bad"), bad, false, &never, &mut |_| {}).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("not divisible"), "{e}");
}

/// A run for a wall-clock budget (`train.max_minutes`) lays its cosine schedule out over the
/// budget: the steps it plans are re-planned from its measured pace (`jielong_train::budget`),
/// written to the run's config (so a resume follows the same schedule), and the last step runs
/// at the minimum learning rate, near the end of the budget rather than long before it.
#[test]
fn budgeted_run_decays_its_learning_rate_over_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_data(dir.path());
    let mut cfg = config_for(&data, lstm("lstm"));
    let budget_s = 3.0;
    cfg.train.max_minutes = budget_s / 60.0;
    cfg.train.max_steps = 1_000_000;
    cfg.train.warmup_steps = 5;
    cfg.train.eval_interval = 1_000_000;
    cfg.train.min_lr = 3e-4;
    let run = dir.path().join("budget");
    train(&run, cfg.clone(), false, &AtomicBool::new(false), &mut |_| {}).unwrap();
    let rows = jielong_train::metrics::read(&run.join("metrics.jsonl"));
    let last = rows.iter().rev().find(|r| r.lr.is_some()).unwrap();
    let saved = RunConfig::from_toml(&std::fs::read_to_string(run.join("config.toml")).unwrap(), &run.join("config.toml"), &[]).unwrap();
    // The schedule the run followed is the one saved, and it ended on its last planned step.
    assert_eq!(saved.train.max_steps, last.step, "planned {} steps, ran {}", saved.train.max_steps, last.step);
    assert!(last.step > 10, "only {} steps in {budget_s} s", last.step);
    // The last step's rate is (close to) the minimum: the schedule decayed within the run.
    let lr = last.lr.unwrap();
    assert!(lr < cfg.train.min_lr + 0.05 * (cfg.train.learning_rate - cfg.train.min_lr), "last lr {lr}");
    // And the run used its budget: neither stopped long before it nor ran far past it.
    assert!(last.elapsed_s > 0.4 * budget_s && last.elapsed_s < 2.5 * budget_s, "trained for {:.2} s of a {budget_s} s budget", last.elapsed_s);
}
