//! Training smoke tests of `objective = "seq2seq"` on the built-in reversal task: with
//! attention a tiny model learns to reverse strings; without it (one fixed context vector)
//! the same model and budget does clearly worse on long inputs. Exact resume holds. Bad
//! pairs are one-line errors.

use jielong_data::tasks::Task;
use jielong_generate::seq2seq::{evaluate_pairs, Seq2seqDecode};
use jielong_train::seq2seq::read_pairs;
use jielong_train::{train, Checkpoint, Event, RunConfig};
use std::path::Path;
use std::sync::atomic::AtomicBool;

fn config(data: &Path, attention: &str, steps: u64) -> RunConfig {
    let text = format!(
        "[data]\ndir = \"{}\"\n[model]\nfamily = \"seq2seq\"\ncell = \"gru\"\nhidden_size = 48\nn_embd = 24\nbidirectional = true\nattention = \"{attention}\"\nmax_seq_len = 24\n\
         [train]\nobjective = \"seq2seq\"\nbatch_size = 32\nmax_steps = {steps}\nlearning_rate = 1e-2\nmin_lr = 1e-3\nwarmup_steps = 20\nweight_decay = 0.0\neval_interval = 1000\ncheckpoint_interval = 1000\nseed = 7\n",
        data.display()
    );
    RunConfig::from_toml(&text, Path::new("test.toml"), &[]).unwrap()
}

fn write_task(dir: &Path, n: u64, seed: u64, lo: usize, hi: usize, name: &str) {
    std::fs::write(dir.join(name), Task::Reverse.make_jsonl(n, seed, lo, hi)).unwrap();
}

/// Exact match on `pairs` of the run in `run`.
fn exact_match(run: &Path, pairs: &Path) -> f64 {
    let ckpt = Checkpoint::open(run).unwrap();
    let model = ckpt.load_model(&candle_core::Device::Cpu).unwrap();
    let tk = ckpt.load_tokenizer(None).unwrap();
    let eos = tk.eot_id().unwrap();
    let p = read_pairs(pairs).unwrap();
    let (src, tgt): (Vec<String>, Vec<String>) = p.into_iter().map(|p| (p.source, p.target)).unzip();
    let (scores, _) = evaluate_pairs(model.as_seq2seq().unwrap(), &tk, &src, &tgt, &Seq2seqDecode { bos: eos, eos, max_tokens: 24, beams: 1 }).unwrap();
    scores.exact_match
}

#[test]
fn seq2seq_attention_learns_reversal_and_beats_no_attention_on_long_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_task(&data, 4000, 1, 3, 10, "train.jsonl");
    write_task(dir.path(), 100, 2, 8, 8, "len8.jsonl");
    write_task(dir.path(), 100, 3, 10, 10, "len10.jsonl");
    let never = AtomicBool::new(false);
    let t0 = std::time::Instant::now();
    let steps = 400;
    let with = dir.path().join("additive");
    train(&with, config(&data, "additive", steps), false, &never, &mut |_| {}).unwrap();
    let without = dir.path().join("none");
    train(&without, config(&data, "none", steps), false, &never, &mut |_| {}).unwrap();
    let (a8, a10, n10) = (exact_match(&with, &dir.path().join("len8.jsonl")), exact_match(&with, &dir.path().join("len10.jsonl")), exact_match(&without, &dir.path().join("len10.jsonl")));
    eprintln!("reverse after {steps} steps: attention {a8:.2} (length 8), {a10:.2} (length 10); none {n10:.2} (length 10); {:.1} s", t0.elapsed().as_secs_f64());
    assert!(a8 >= 0.95, "attention: exact match {a8} on length-8 reversal");
    assert!(a10 > n10 + 0.3, "attention {a10} must clearly beat the fixed context vector {n10} on length-10 inputs");
}

#[test]
fn seq2seq_resume_continues_with_the_same_losses() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_task(&data, 200, 4, 3, 6, "train.jsonl");
    write_task(&data, 20, 5, 3, 6, "val.jsonl");
    let never = AtomicBool::new(false);
    let mut full_cfg = config(&data, "general", 6);
    full_cfg.train.checkpoint_interval = 3;
    let full = train(&dir.path().join("full"), full_cfg.clone(), false, &never, &mut |_| {}).unwrap();
    // Stopped after step 3 (as Ctrl-C does: a checkpoint is written), then resumed.
    let stop = AtomicBool::new(false);
    let cut = train(&dir.path().join("cut"), full_cfg.clone(), false, &stop, &mut |e| {
        if let Event::Step { step: 3, .. } = e {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    })
    .unwrap();
    assert!(cut.interrupted && cut.steps == 3);
    let resumed = train(&dir.path().join("cut"), full_cfg, true, &never, &mut |_| {}).unwrap();
    assert_eq!(resumed.step_losses, full.step_losses[3..].to_vec(), "a resumed run computes the same losses");
    assert!(full.val_loss.is_some());
}

#[test]
fn seq2seq_bad_pairs_and_models_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("train.jsonl"), "{\"source\": \"abc\", \"target\": \"cba\"}\n{\"source\": \"abc\"}\n").unwrap();
    let never = AtomicBool::new(false);
    let e = train(&dir.path().join("r"), config(&data, "dot", 2), false, &never, &mut |_| {}).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("line 2") && e.to_string().contains("\"target\""), "{e}");
    // attention = "dot" with a bidirectional encoder: the widths differ.
    std::fs::write(data.join("train.jsonl"), "{\"source\": \"abc\", \"target\": \"cba\"}\n").unwrap();
    let e = train(&dir.path().join("r"), config(&data, "dot", 2), false, &never, &mut |_| {}).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("attention = \"general\""), "{e}");
    // A seq2seq model under the causal-LM objective.
    let mut cfg = config(&data, "additive", 2);
    cfg.train.objective = jielong_train::Objective::CausalLm;
    let e = train(&dir.path().join("r2"), cfg, false, &never, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("prepare") || e.to_string().contains("objective"), "{e}");
    // Too long for max_seq_len.
    std::fs::write(data.join("train.jsonl"), format!("{{\"source\": \"{}\", \"target\": \"x\"}}\n", "a".repeat(30))).unwrap();
    let e = train(&dir.path().join("r3"), config(&data, "additive", 2), false, &never, &mut |_| {}).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("max_seq_len"), "{e}");
    assert!(!dir.path().join("r3").exists(), "nothing written on bad input");
}
