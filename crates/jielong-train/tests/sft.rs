//! Supervised fine-tuning end to end on a tiny model: the synthetic task "reply with the reverse
//! of the user's word" is learned so that greedy replies follow the template and end their
//! turn (the base does neither); LoRA leaves the base untouched and its adapter round-trips
//! through PEFT's layout; resume is exact; turn tokens grow the table with mean rows.

use candle_core::{Device, Tensor};
use jielong_core::Rng;
use jielong_data::sft::LossOn;
use jielong_models::{GptConfig, Model, ModelConfig};
use jielong_nn::{Lora, LoraConfig, ParamStore};
use jielong_tokenizer::{ChatTemplate, Message, Tokenizer, TokenizerKind};
use jielong_train::checkpoint::{self, Checkpoint, CheckpointMeta, CKPT_VERSION};
use jielong_train::{adapter, sft, Objective, Regime, SftConfig, TrainConfig};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

const LETTERS: &str = "abcdef";

fn word(rng: &mut Rng) -> String {
    let n = 3 + rng.below(2) as usize;
    (0..n).map(|_| LETTERS.as_bytes()[rng.below(LETTERS.len() as u64) as usize] as char).collect()
}

/// A random-init GPT base with a character tokenizer, saved as a checkpoint.
pub(crate) fn make_base(dir: &Path) -> PathBuf {
    make_base_with(dir, 40)
}

/// `make_base` with a context of `max_seq_len` tokens.
pub(crate) fn make_base_with(dir: &Path, max_seq_len: usize) -> PathBuf {
    let run = dir.join("base");
    std::fs::create_dir_all(&run).unwrap();
    let text = "User: Assistant: System: abcdef\n";
    let tk = Tokenizer::train(TokenizerKind::Char, 64, std::iter::repeat_n(text, 4)).unwrap();
    tk.save(&run).unwrap();
    let cfg = GptConfig { vocab_size: tk.vocab_size(), n_layer: 2, n_head: 2, n_embd: 48, max_seq_len, dropout: 0.0, ..GptConfig::tiny() };
    let params = ParamStore::new(5);
    ModelConfig::new(cfg.clone()).build(params.var_builder(&Device::Cpu)).unwrap();
    let meta = CheckpointMeta {
        format_version: CKPT_VERSION,
        family: "gpt".into(),
        model: ModelConfig::new(cfg),
        objective: Objective::CausalLm,
        tokenizer_hash: tk.hash().into(),
        step: 0,
        tokens_seen: 0,
        seed: 5,
        val_loss: None,
        train_loss: None,
        elapsed_s: 0.0,
    };
    let opt = jielong_train::AdamW::new(params.vars(), jielong_train::adamw::AdamWParams { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.0 }).unwrap();
    checkpoint::save(&run, &meta, &params, &opt, 1, None).unwrap()
}

pub(crate) fn data(dir: &Path, n: usize, seed: u64) -> PathBuf {
    let mut rng = Rng::new(seed);
    let lines: Vec<String> = (0..n)
        .map(|_| {
            let w = word(&mut rng);
            let r: String = w.chars().rev().collect();
            serde_json::json!({"messages": [{"role": "user", "content": w}, {"role": "assistant", "content": r}]}).to_string()
        })
        .collect();
    let p = dir.join("reverse.jsonl");
    std::fs::write(&p, lines.join("\n")).unwrap();
    p
}

pub(crate) fn config(base: &Path, data: &Path, regime: Regime, template: &str, steps: u64) -> SftConfig {
    SftConfig {
        base: base.into(),
        data: data.into(),
        template: template.into(),
        regime,
        lora: LoraConfig { rank: 8, alpha: 16.0, dropout: 0.0, targets: vec!["c_attn".into(), "attn.c_proj".into(), "c_fc".into(), "mlp.c_proj".into()] },
        soft: Default::default(),
        loss_on: LossOn::Assistant,
        strict: false,
        packing: false,
        train: TrainConfig { batch_size: 16, max_steps: steps, learning_rate: 3e-3, min_lr: 3e-4, warmup_steps: 10, weight_decay: 0.0, checkpoint_interval: 1000, data_parallel: 1, seed: 3, ..TrainConfig::default() },
    }
}

/// Greedy reply (by full recompute) to `user` under `template`, up to 8 tokens.
fn reply(model: &dyn Model, tk: &Tokenizer, template: &ChatTemplate, user: &str) -> String {
    let lm = model.as_causal_lm().unwrap();
    let prompt = template.render(&[Message::new("user", user)], true).unwrap();
    let mut ids = tk.encode(&prompt).unwrap();
    let start = ids.len();
    for _ in 0..8 {
        let x = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let last = lm.logits(&x).unwrap().squeeze(0).unwrap().get(ids.len() - 1).unwrap();
        let next = last.narrow(0, 0, tk.vocab_size()).unwrap().argmax(0).unwrap().to_scalar::<u32>().unwrap();
        ids.push(next);
        if Some(next) == tk.eot_id() {
            break;
        }
    }
    tk.decode(&ids[start..]).unwrap()
}

fn follows(reply: &str, user: &str) -> bool {
    let want: String = user.chars().rev().collect();
    reply.trim_start() == format!("{want}{}", jielong_tokenizer::EOT)
}

#[test]
fn sft_reverse_task_replies_follow_the_template_and_end_their_turn() {
    let dir = tempfile::tempdir().unwrap();
    let base = make_base(dir.path());
    let data = data(dir.path(), 400, 1);
    let out = dir.path().join("sft");
    let s = sft(&out, config(&base, &data, Regime::Full, "builtin", 800), false, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert!(s.loss_after < s.loss_before * 0.5, "assistant loss {} → {}", s.loss_before, s.loss_after);
    let ckpt = Checkpoint::open(&out).unwrap();
    let tuned = ckpt.load_model(&Device::Cpu).unwrap();
    let tk = ckpt.load_tokenizer(None).unwrap();
    // The template was saved with the run and is what chat finds there.
    let template = ChatTemplate::for_tokenizer_dir(&out).unwrap();
    assert_eq!(template.source, ChatTemplate::named("builtin").unwrap().source);
    let base_ckpt = Checkpoint::open(&base).unwrap();
    let base_model = base_ckpt.load_model(&Device::Cpu).unwrap();
    let mut rng = Rng::new(99);
    let words: Vec<String> = (0..20).map(|_| word(&mut rng)).collect();
    let good = words.iter().filter(|w| follows(&reply(&*tuned, &tk, &template, w), w)).count();
    let base_good = words.iter().filter(|w| follows(&reply(&*base_model, &tk, &template, w), w)).count();
    assert!(good >= 16, "only {good} of 20 replies are the reversed word and an end of turn");
    assert_eq!(base_good, 0, "the base already does the task");
}

#[test]
fn sft_lora_leaves_the_base_alone_and_the_adapter_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let base = make_base(dir.path());
    let before = std::fs::read(base.join("model.safetensors")).unwrap();
    let data = data(dir.path(), 100, 2);
    let out = dir.path().join("lora");
    let s = sft(&out, config(&base, &data, Regime::Lora, "builtin", 30), false, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert!(s.loss_after < s.loss_before, "{} → {}", s.loss_before, s.loss_after);
    assert!(s.trainable * 4 < s.total_params, "LoRA trains {} of {}", s.trainable, s.total_params);
    assert_eq!(std::fs::read(base.join("model.safetensors")).unwrap(), before, "the base checkpoint changed");
    // PEFT's layout and names.
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!((cfg["peft_type"].as_str(), cfg["r"].as_u64(), cfg["fan_in_fan_out"].as_bool()), (Some("LORA"), Some(8), Some(true)));
    let names: Vec<String> = jielong_nn::params::load_tensors(&out.join("adapter_model.safetensors")).unwrap().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"base_model.model.transformer.h.0.attn.c_attn.lora_A.weight".to_string()), "{names:?}");
    assert_eq!(names.len(), 2 * 4 * 2);

    // Round trip: an adapter saved and loaded gives the same logits as the one in memory.
    let bc = Checkpoint::open(&base).unwrap();
    let (mut mem, _) = bc.load_params(&Device::Cpu).unwrap();
    let lcfg = LoraConfig { rank: 4, alpha: 8.0, dropout: 0.0, targets: vec!["all-linear".into()] };
    let lora = std::sync::Arc::new(Lora::new(&lcfg, &mem.linear_sites(), 9, &Device::Cpu).unwrap());
    for (_, v) in lora.params().vars() {
        v.set(&Tensor::randn(0f32, 0.1, v.shape(), &Device::Cpu).unwrap()).unwrap();
    }
    mem.set_lora(Some(lora.clone())).unwrap();
    let rec = adapter::AdapterBase { base_hash: adapter::weights_hash(&bc.dir).unwrap(), base_checkpoint: bc.dir.clone(), family: "gpt".into(), rank: 4, alpha: 8.0, dropout: 0.0, targets: lcfg.targets.clone() };
    let saved = dir.path().join("adapter");
    adapter::save(&saved, &lora, &rec).unwrap();
    let (loaded, _) = jielong_train::sft::load_with_adapter(&bc, &saved, false, &Device::Cpu).unwrap();
    let x = Tensor::new(&[[3u32, 4, 5, 6, 7, 8]], &Device::Cpu).unwrap();
    let a = mem.as_causal_lm().unwrap().logits(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = loaded.as_causal_lm().unwrap().logits(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a, b, "logits differ after the round trip");
    let (merged, _) = jielong_train::sft::load_with_adapter(&bc, &saved, true, &Device::Cpu).unwrap();
    let m = merged.as_causal_lm().unwrap().logits(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(a.iter().zip(&m).all(|(x, y)| (x - y).abs() <= 1e-5), "merged differs from unmerged");

    // On another base: refused, naming both hashes.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let other_base = {
        let b2 = make_base(&other);
        let (_, p) = Checkpoint::open(&b2).unwrap().load_params(&Device::Cpu).unwrap();
        for (_, v) in p.vars().into_iter().take(1) {
            v.set(&(v.as_tensor() + 0.01).unwrap()).unwrap();
        }
        p.save(&b2.join("model.safetensors")).unwrap();
        Checkpoint::open(&b2).unwrap()
    };
    let e = jielong_train::sft::load_with_adapter(&other_base, &saved, false, &Device::Cpu).err().unwrap();
    assert!(e.is_user_error() && e.to_string().contains("another base"), "{e}");
}

#[test]
fn sft_resume_matches_the_uninterrupted_run_and_turn_tokens_start_at_the_mean() {
    let dir = tempfile::tempdir().unwrap();
    let base = make_base(dir.path());
    let data = data(dir.path(), 60, 3);
    let run = |out: &Path, steps: u64, resume: bool| sft(out, config(&base, &data, Regime::Full, "chatml", steps), resume, &AtomicBool::new(false), &mut |_| {}).unwrap();
    let whole = run(&dir.path().join("a"), 6, false);
    assert_eq!(whole.added_tokens, ["<|im_end|>", "<|im_start|>"]);
    let part = dir.path().join("b");
    run(&part, 3, false);
    let rest = run(&part, 6, true);
    assert_eq!(&whole.step_losses[3..], &rest.step_losses[..], "resumed losses differ");
    // The grown table: the new rows of the token table are the old rows' mean (before training).
    let bc = Checkpoint::open(&base).unwrap();
    let old = jielong_nn::params::load_tensors(&bc.dir.join("model.safetensors")).unwrap();
    let wte = &old.iter().find(|(n, _)| n == "transformer.wte.weight").unwrap().1;
    let mean = wte.mean(0).unwrap();
    let vocab = wte.dim(0).unwrap();
    let out = dir.path().join("c");
    run(&out, 1, false);
    let grown = jielong_nn::params::load_tensors(&Checkpoint::open(&out).unwrap().dir.join("model.safetensors")).unwrap();
    let g = &grown.iter().find(|(n, _)| n == "transformer.wte.weight").unwrap().1;
    assert_eq!(g.dim(0).unwrap(), vocab + 2);
    // One step at lr 3e-4 (warmup) moves the rows a little: they are still near the mean.
    let d = (g.narrow(0, vocab, 2).unwrap().broadcast_sub(&mean).unwrap()).abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(d < 5e-3, "new rows are {d} from the mean");
}

#[test]
fn sft_bad_data_and_settings_are_user_errors() {
    let dir = tempfile::tempdir().unwrap();
    let base = make_base(dir.path());
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"messages\": [{\"role\": \"user\", \"content\": \"abc\"}]}\n").unwrap();
    let e = sft(&dir.path().join("x"), config(&base, &bad, Regime::Full, "builtin", 2), false, &AtomicBool::new(false), &mut |_| {}).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("bad.jsonl:1: no assistant turn"), "{e}");
    let good = data(dir.path(), 10, 4);
    let e = sft(&dir.path().join("y"), config(&base, &good, Regime::Lora, "chatml", 2), false, &AtomicBool::new(false), &mut |_| {}).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("cannot add tokens"), "{e}");
    // A template that fails on an example names its line; with --strict it is fatal.
    let tmpl = dir.path().join("strict.jinja");
    std::fs::write(&tmpl, "{% for m in messages %}{% if m.content == 'abc' %}{{ raise_exception('no abc') }}{% endif %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}").unwrap();
    let mixed = dir.path().join("mixed.jsonl");
    std::fs::write(&mixed, "{\"prompt\": \"abd\", \"completion\": \"dba\"}\n{\"prompt\": \"abc\", \"completion\": \"cba\"}\n").unwrap();
    let mut c = config(&base, &mixed, Regime::Full, tmpl.to_str().unwrap(), 1);
    let s = sft(&dir.path().join("z"), c.clone(), false, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert!(s.skipped.as_deref().unwrap_or("").contains("line 2") && s.examples == 1, "{:?}", s.skipped);
    c.strict = true;
    let e = sft(&dir.path().join("w"), c, false, &AtomicBool::new(false), &mut |_| {}).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("mixed.jsonl:2") && e.to_string().contains("no abc"), "{e}");
}
