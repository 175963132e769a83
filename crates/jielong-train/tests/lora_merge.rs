//! `jielong lora merge` (`jielong_train::lora_merge`): the merged checkpoint computes what the
//! base with its adapter computes (≤ 1e-5), for a causal-LM adapter and a classification
//! adapter; the base's weights are left as they were; the frozen regime leaves the body
//! bit-identical; an adapter from another base and a missing folder are user errors.

use crate::sft::make_base;
use candle_core::{Device, Tensor};
use jielong_nn::{Lora, LoraConfig};
use jielong_train::adapter::{self, AdapterBase};
use jielong_train::checkpoint::Checkpoint;
use jielong_train::finetune::{finetune_classify, Classifier, FinetuneConfig, FtRegime};
use jielong_train::{lora_merge, sft};
use std::path::Path;

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap()
}

fn tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let mut v: Vec<(String, Vec<f32>)> = jielong_nn::params::load_tensors(path).unwrap().into_iter().map(|(n, t)| (n, t.flatten_all().unwrap().to_vec1().unwrap())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn largest_change(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f32 {
    a.iter().zip(b).flat_map(|((_, x), (_, y))| x.iter().zip(y).map(|(p, q)| (p - q).abs())).fold(0f32, f32::max)
}

#[test]
fn lora_merge_causal_lm_gives_the_adapter_models_logits() {
    let d = tempfile::tempdir().unwrap();
    let base_dir = make_base(d.path());
    let base = Checkpoint::open(&base_dir).unwrap();
    let before = std::fs::read(base.dir.join("model.safetensors")).unwrap();
    // An adapter with random (non-zero) B on every linear layer, saved as sft saves one.
    let (model, _) = base.load_params(&Device::Cpu).unwrap();
    let cfg = LoraConfig { rank: 4, alpha: 8.0, dropout: 0.0, targets: vec!["all-linear".into()] };
    let lora = Lora::new(&cfg, &model.linear_sites(), 3, &Device::Cpu).unwrap();
    for (_, v) in lora.params().vars() {
        v.set(&Tensor::randn(0f32, 0.2, v.shape(), &Device::Cpu).unwrap()).unwrap();
    }
    let record = AdapterBase { base_hash: adapter::weights_hash(&base.dir).unwrap(), base_checkpoint: base.dir.clone(), family: "gpt".into(), rank: 4, alpha: 8.0, dropout: 0.0, targets: lora.cfg.targets.clone() };
    let ad = d.path().join("adapter");
    adapter::save(&ad, &lora, &record).unwrap();

    let out = d.path().join("merged");
    let s = lora_merge::merge(&base_dir, &ad, &out).unwrap();
    assert_eq!((s.kind.as_str(), s.modules, s.rank), ("causal_lm", lora.modules().count(), 4));
    let merged = Checkpoint::open(&out).unwrap();
    assert_eq!(merged.load_tokenizer(None).unwrap().hash(), base.meta.tokenizer_hash, "the merged run carries the base's tokenizer");
    let merged_model = merged.load_model(&Device::Cpu).unwrap();
    let (adapted, _) = sft::load_with_adapter(&base, &ad, false, &Device::Cpu).unwrap();
    let plain = base.load_model(&Device::Cpu).unwrap();
    let ids = Tensor::new(&[[1u32, 5, 9, 2, 7, 3, 4, 8], [3, 3, 1, 0, 12, 10, 2, 6]], &Device::Cpu).unwrap();
    let logits = |m: &dyn jielong_models::Model| m.as_causal_lm().unwrap().logits(&ids).unwrap();
    let (a, m, p) = (logits(&*adapted), logits(&*merged_model), logits(&*plain));
    assert!(max_diff(&a, &p) > 1e-3, "the adapter does nothing, the test would prove nothing");
    let diff = max_diff(&a, &m);
    assert!(diff <= 1e-5, "merged logits differ from base + adapter by {diff}");
    // The merged weights are W + (α/r)·B·A: check one layer by hand (GPT stores (in, out)).
    let name = lora.modules().next().unwrap().to_string();
    let l = lora.layer(&name).unwrap();
    let w0 = jielong_nn::params::load_tensors(&base.dir.join("model.safetensors")).unwrap().into_iter().find(|(n, _)| *n == format!("{name}.weight")).unwrap().1;
    let w1 = jielong_nn::params::load_tensors(&merged.dir.join("model.safetensors")).unwrap().into_iter().find(|(n, _)| *n == format!("{name}.weight")).unwrap().1;
    let want = (w0 + l.b.as_tensor().matmul(l.a.as_tensor()).unwrap().t().unwrap().affine(8.0 / 4.0, 0.0).unwrap()).unwrap();
    assert!(max_diff(&want, &w1) <= 1e-6, "{name}: not W + (alpha/r)·(B·A)ᵀ");
    assert_eq!(std::fs::read(base.dir.join("model.safetensors")).unwrap(), before, "merging changed the base's weights file");

    // Bad input: user errors, nothing written.
    let e = lora_merge::merge(&base_dir, &d.path().join("nope"), &d.path().join("o1")).err().unwrap();
    assert!(e.is_user_error() && e.to_string().contains("adapter folder not found"), "{e}");
    let e = lora_merge::merge(&base_dir, &ad, &out).err().unwrap();
    assert!(e.is_user_error() && e.to_string().contains("already exists"), "{e}");
    // make_base's weights come from a fixed seed: a longer context gives another weights file.
    let other = crate::sft::make_base_with(&d.path().join("other"), 41);
    let e = lora_merge::merge(&other, &ad, &d.path().join("o2")).err().unwrap();
    assert!(e.is_user_error() && e.to_string().contains("trained on another base"), "{e}");
    assert!(!d.path().join("o1").exists() && !d.path().join("o2").exists(), "a refused merge left a folder");
}

fn write_reviews(dir: &Path) -> std::path::PathBuf {
    // "a"-heavy texts are label pos, "f"-heavy ones neg.
    let lines: Vec<String> = (0..48)
        .map(|i| {
            let (text, label) = if i % 2 == 0 { (format!("aab{}ca", "a".repeat(i % 5)), "pos") } else { (format!("ffe{}df", "f".repeat(i % 5)), "neg") };
            serde_json::json!({"text": text, "label": label}).to_string()
        })
        .collect();
    let p = dir.join("reviews.jsonl");
    std::fs::write(&p, lines.join("\n")).unwrap();
    p
}

fn ft_config(base: &Path, data: &Path, regime: FtRegime) -> FinetuneConfig {
    FinetuneConfig {
        base: base.to_path_buf(),
        data: data.to_path_buf(),
        val_data: None,
        val_fraction: 0.25,
        regime,
        lora: LoraConfig { rank: 4, alpha: 16.0, dropout: 0.0, targets: vec!["q".into(), "v".into(), "mlp".into()] },
        pooling: None,
        epochs: 2,
        batch_size: 8,
        learning_rate: 1e-2,
        weight_decay: 0.0,
        max_len: 16,
        head_dropout: 0.0,
        seed: 5,
    }
}

#[test]
fn lora_merge_classifier_predicts_as_base_plus_adapter_and_frozen_keeps_the_body() {
    let d = tempfile::tempdir().unwrap();
    let base_dir = make_base(d.path());
    let base = Checkpoint::open(&base_dir).unwrap();
    let base_weights = tensors(&base.dir.join("model.safetensors"));
    let data = write_reviews(d.path());
    let clf = d.path().join("clf");
    finetune_classify(&clf, &ft_config(&base_dir, &data, FtRegime::Lora), &mut |_| {}).unwrap();
    assert!(!clf.join("model.safetensors").exists(), "a LoRA run keeps the base's body, it writes none");
    let out = d.path().join("merged");
    let s = lora_merge::merge(&base_dir, &clf, &out).unwrap();
    assert_eq!(s.kind, "classify");
    // The merged body moved away from the base (the adapter was trained); the base did not.
    let merged_weights = tensors(&out.join("model.safetensors"));
    assert!(largest_change(&merged_weights, &base_weights) > 1e-4, "the merge changed nothing: the adapter did not train");
    assert_eq!(tensors(&base.dir.join("model.safetensors")), base_weights);

    let examples = jielong_train::classify_data::read_examples(&data, true).unwrap();
    let with_adapter = Classifier::load(&clf, "classify").unwrap();
    let merged = Classifier::load(&out, "classify").unwrap();
    assert!(merged.record.lora_merged && !with_adapter.record.lora_merged);
    let (pa, pm) = (with_adapter.probabilities(&examples, 16).unwrap(), merged.probabilities(&examples, 16).unwrap());
    // Log-probabilities are the logits less one log-sum-exp per row: equal to 1e-5 when the logits are.
    let diff = pa.iter().flatten().zip(pm.iter().flatten()).map(|(a, b)| (a.ln() - b.ln()).abs()).fold(0f32, f32::max);
    assert!(diff <= 1e-5, "merged classifier's log-probabilities differ by {diff}");
    // A merged classifier is not merged again.
    let e = lora_merge::merge(&base_dir, &out, &d.path().join("again")).err().unwrap();
    assert!(e.is_user_error(), "{e}");

    // Frozen: the body written beside the head is the base's, bit for bit.
    let frozen = d.path().join("frozen");
    finetune_classify(&frozen, &ft_config(&base_dir, &data, FtRegime::Frozen), &mut |_| {}).unwrap();
    assert_eq!(tensors(&frozen.join("model.safetensors")), base_weights, "the frozen body changed");
    let e = lora_merge::merge(&base_dir, &frozen, &d.path().join("o3")).err().unwrap();
    assert!(e.is_user_error(), "{e}");
}
