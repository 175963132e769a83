//! Prefix and prompt tuning through `jielong sft`: only the virtual-token table is trained (the
//! base checkpoint is bit-identical afterwards), the assistant loss falls on the synthetic
//! "reverse the word" task, the adapter is written in PEFT's layout and round-trips exactly,
//! and virtual tokens that fill the context are refused.

use super::sft::{config, data, make_base};
use candle_core::{Device, Tensor};
use jielong_models::{SoftPrompt, SoftPromptKind};
use jielong_train::checkpoint::{self, Checkpoint};
use jielong_train::{adapter, sft, LoadedAdapter, Regime, SoftPromptSettings};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[test]
fn sft_prefix_and_prompt_train_only_the_table_and_lower_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path(), 100, 4);
    // A base that has read such conversations (loss on every token: the letters and the
    // template, not yet the task), as virtual tokens steer a pretrained model, not a random one.
    let base = dir.path().join("pretrained");
    let mut pre = config(&make_base(dir.path()), &data, Regime::Full, "builtin", 60);
    pre.loss_on = jielong_data::sft::LossOn::All;
    sft(&base, pre, false, &AtomicBool::new(false), &mut |_| {}).unwrap();
    let base = checkpoint::list(&base).unwrap().pop().unwrap();
    let before = std::fs::read(base.join("model.safetensors")).unwrap();
    // The base: 2 layers, 2 heads, n_embd 48.
    for (regime, width, init_text) in [(Regime::Prefix, 2 * 2 * 48, None), (Regime::Prompt, 48, Some("reverse abc".to_string()))] {
        let out = dir.path().join(format!("{regime:?}"));
        let mut cfg = config(&base, &data, regime, "builtin", 60);
        cfg.soft = SoftPromptSettings { num_virtual_tokens: 6, init_text };
        cfg.train.learning_rate = 1e-2;
        cfg.train.min_lr = 1e-3;
        let s = sft(&out, cfg, false, &AtomicBool::new(false), &mut |_| {}).unwrap();
        eprintln!("{regime:?}: {} -> {}", s.loss_before, s.loss_after);
        assert!(s.loss_after < s.loss_before * 0.95, "{regime:?}: assistant loss {} → {}", s.loss_before, s.loss_after);
        assert_eq!(s.trainable, 6 * width, "{regime:?}: trains more than the table");
        assert_eq!(std::fs::read(base.join("model.safetensors")).unwrap(), before, "{regime:?}: the base checkpoint changed");
        let peft: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap()).unwrap();
        let want_type = if regime == Regime::Prefix { "PREFIX_TUNING" } else { "PROMPT_TUNING" };
        assert_eq!(peft["peft_type"].as_str(), Some(want_type));
        assert_eq!((peft["num_virtual_tokens"].as_u64(), peft["num_layers"].as_u64(), peft["task_type"].as_str()), (Some(6), Some(2), Some("CAUSAL_LM")));
        let tensors = jielong_nn::params::load_tensors(&out.join("adapter_model.safetensors")).unwrap();
        assert_eq!(tensors.len(), 1);
        assert_eq!((tensors[0].0.as_str(), tensors[0].1.dims()), ("prompt_embeddings", &[6, width][..]));
        // Loading it on the base gives the trained model's assistant loss again.
        let bc = Checkpoint::open(&base).unwrap();
        let (model, adapter) = jielong_train::sft::load_with_adapter(&bc, &out, true, &Device::Cpu).unwrap();
        assert!(matches!(adapter, LoadedAdapter::Soft(_)));
        assert_eq!(model.as_causal_lm().unwrap().max_seq_len(), 40 - 6);
    }
}

#[test]
fn sft_soft_prompt_adapter_round_trips_and_refuses_another_base() {
    let dir = tempfile::tempdir().unwrap();
    let base = make_base(dir.path());
    let bc = Checkpoint::open(&base).unwrap();
    for kind in [SoftPromptKind::Prefix, SoftPromptKind::Prompt] {
        let (mut mem, _) = bc.load_params(&Device::Cpu).unwrap();
        let shape = mem.soft_prompt_shape().unwrap();
        let table = Tensor::randn(0f32, 0.5, (5, shape.width(kind)), &Device::Cpu).unwrap();
        let soft = Arc::new(SoftPrompt::new(kind, shape, &table).unwrap());
        mem.set_soft_prompt(Some(soft.clone())).unwrap();
        let rec = adapter::AdapterBase { base_hash: adapter::weights_hash(&bc.dir).unwrap(), base_checkpoint: bc.dir.clone(), family: "gpt".into(), rank: 0, alpha: 0.0, dropout: 0.0, targets: Vec::new() };
        let saved = dir.path().join(format!("{kind:?}"));
        adapter::save_soft(&saved, &soft, &rec).unwrap();
        let (loaded, _) = jielong_train::sft::load_with_adapter(&bc, &saved, false, &Device::Cpu).unwrap();
        let x = Tensor::new(&[[3u32, 4, 5, 6, 7, 8]], &Device::Cpu).unwrap();
        let logits = |m: &dyn jielong_models::Model| m.as_causal_lm().unwrap().logits(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (a, b) = (logits(&*mem), logits(&*loaded));
        assert_eq!(a, b, "{kind:?}: logits differ after the round trip");
        let (plain, _) = bc.load_params(&Device::Cpu).unwrap();
        assert_ne!(logits(&*plain), a, "{kind:?}: the adapter does nothing");

        // On another base (one weight nudged): refused, naming both hashes.
        let other = dir.path().join(format!("other-{kind:?}"));
        std::fs::create_dir_all(&other).unwrap();
        let b2 = make_base(&other);
        let (_, p) = Checkpoint::open(&b2).unwrap().load_params(&Device::Cpu).unwrap();
        for (_, v) in p.vars().into_iter().take(1) {
            v.set(&(v.as_tensor() + 0.01).unwrap()).unwrap();
        }
        p.save(&b2.join("model.safetensors")).unwrap();
        let e = jielong_train::sft::load_with_adapter(&Checkpoint::open(&b2).unwrap(), &saved, false, &Device::Cpu).err().unwrap();
        assert!(e.is_user_error() && e.to_string().contains("another base"), "{e}");
    }
}

#[test]
fn sft_virtual_tokens_filling_the_context_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = make_base(dir.path());
    let data = data(dir.path(), 10, 5);
    let mut cfg = config(&base, &data, Regime::Prefix, "builtin", 2);
    cfg.soft.num_virtual_tokens = 40; // the base's whole context
    let e = sft(&dir.path().join("x"), cfg, false, &AtomicBool::new(false), &mut |_| {}).err().unwrap();
    assert!(e.is_user_error() && e.to_string().contains("--num-virtual-tokens below 40"), "{e}");
    assert!(!dir.path().join("x").join("sft.json").exists(), "a refused run wrote its folder");
}
