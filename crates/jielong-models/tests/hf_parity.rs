//! Hugging Face import and export against transformers itself. The fixtures in
//! tests/fixtures/{gpt2-tiny, llama-tiny, llama-tiny/mqa, qwen2-tiny} were written by the
//! make_fixture.py / make_greedy.py scripts beside them (torch 2.15.0, transformers 5.23.0,
//! safetensors 0.8.0, float32, eager attention): the folders are what `save_pretrained` wrote,
//! `expected.safetensors` holds ids (2, 16), their logits, a prompt (1, 8) and its greedy
//! continuation by `generate` (16 new tokens, no end-of-text stop).

use candle_core::{DType, Device, Tensor};
use jielong_generate::Engine;
use jielong_models::{hf, CausalLm, Model};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

fn tensors(path: &Path) -> BTreeMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap().into_iter().collect()
}

fn ids(t: &Tensor) -> Vec<u32> {
    t.to_dtype(DType::U32).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

fn import(dir: &Path) -> Box<dyn Model> {
    let (cfg, params) = hf::import(dir).unwrap();
    // The model reads its weights from the store import filled.
    cfg.build(params.var_builder(&Device::Cpu)).unwrap()
}

/// Greedy decoding through the engine (KV cache, one token per step).
fn greedy(lm: &dyn CausalLm, prompt: &[u32], n: usize) -> Vec<u32> {
    let engine = Engine::new(lm, &Device::Cpu);
    let mut seq = engine.sequence(prompt.to_vec()).unwrap();
    for _ in 0..n {
        let row = engine.step(&mut [&mut seq]).unwrap().remove(0);
        let best = row.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0;
        seq.push(best as u32);
    }
    seq.tokens
}

#[test]
fn imported_hf_models_give_transformers_logits_and_greedy_tokens() {
    for (name, expected, greedy_file) in [
        ("llama-tiny", "expected.safetensors", "expected.safetensors"),
        ("llama-tiny/mqa", "expected.safetensors", "expected.safetensors"),
        ("qwen2-tiny", "expected.safetensors", "expected.safetensors"),
        ("gpt2-tiny", "expected.safetensors", "greedy.safetensors"),
    ] {
        let dir = fixture(name);
        let model = import(&dir);
        let lm = model.as_causal_lm().unwrap();
        let exp = tensors(&dir.join(expected));
        let input = exp["ids"].to_dtype(DType::U32).unwrap();
        let ours = lm.logits(&input).unwrap();
        let d: f32 = (&ours - &exp["logits"]).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(d <= 1e-4, "{name}: logits differ from transformers by {d}");
        let g = tensors(&dir.join(greedy_file));
        let (prompt, want) = (ids(&g["prompt"]), ids(&g["greedy"]));
        assert_eq!(greedy(lm, &prompt, want.len() - prompt.len()), want, "{name}: greedy continuation differs from transformers' generate");
    }
}

#[test]
fn export_writes_what_transformers_saves_and_round_trips_bit_for_bit() {
    for name in ["llama-tiny", "llama-tiny/mqa", "qwen2-tiny", "gpt2-tiny"] {
        let dir = fixture(name);
        let (cfg, params) = hf::import(&dir).unwrap();
        let out = tempfile::tempdir().unwrap();
        let meta = hf::HfMeta { bos_token_id: None, eos_token_id: None, dtype: "float32" };
        hf::export(&cfg, &params, DType::F32, &meta, out.path()).unwrap();
        // Tensors: the same names, shapes, dtypes and bits as the file transformers wrote.
        let (theirs, ours) = (tensors(&dir.join("model.safetensors")), tensors(&out.path().join("model.safetensors")));
        assert_eq!(theirs.keys().collect::<Vec<_>>(), ours.keys().collect::<Vec<_>>(), "{name}: tensor names");
        for (k, t) in &theirs {
            let o = &ours[k];
            assert_eq!((t.dims(), t.dtype()), (o.dims(), o.dtype()), "{name}: {k}");
            let (a, b): (Vec<f32>, Vec<f32>) = (t.flatten_all().unwrap().to_vec1().unwrap(), o.flatten_all().unwrap().to_vec1().unwrap());
            assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{name}: {k} is not bit-identical");
        }
        // The whole file, header included, is the one save_pretrained wrote.
        assert_eq!(std::fs::read(dir.join("model.safetensors")).unwrap(), std::fs::read(out.path().join("model.safetensors")).unwrap(), "{name}: model.safetensors bytes");
        // config.json: every key transformers writes, with its value (ids aside), plus only
        // torch_dtype (and a top-level rope_theta for Llama) for transformers 4.
        let read = |p: &Path| -> serde_json::Map<String, serde_json::Value> { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
        let (theirs, ours) = (read(&dir.join("config.json")), read(&out.path().join("config.json")));
        for (k, v) in &theirs {
            let skip = ["bos_token_id", "eos_token_id", "initializer_range", "summary_first_dropout"].contains(&k.as_str());
            assert!(ours.contains_key(k), "{name}: config.json lacks `{k}`");
            if !skip {
                assert_eq!(&ours[k], v, "{name}: config.json `{k}`");
            }
        }
        for k in ours.keys().filter(|k| !theirs.contains_key(*k)) {
            assert!(k == "torch_dtype" || k == "rope_theta", "{name}: config.json has `{k}`, which transformers does not write");
        }
        // And it imports again to the same model.
        let (again, _) = hf::import(out.path()).unwrap();
        assert_eq!(again, cfg, "{name}");
    }
}

#[test]
fn export_in_half_precision_rounds_each_weight_once() {
    let (cfg, params) = hf::import(&fixture("qwen2-tiny")).unwrap();
    for (dtype, name, tol) in [(DType::BF16, "bfloat16", 1.0 / 128.0), (DType::F16, "float16", 1.0 / 1024.0)] {
        let out = tempfile::tempdir().unwrap();
        let meta = hf::HfMeta { bos_token_id: Some(1), eos_token_id: Some(2), dtype: name };
        hf::export(&cfg, &params, dtype, &meta, out.path()).unwrap();
        let written = tensors(&out.path().join("model.safetensors"));
        let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.path().join("config.json")).unwrap()).unwrap();
        assert_eq!((config["dtype"].as_str(), config["eos_token_id"].as_u64()), (Some(name), Some(2)));
        for (k, v) in params.vars() {
            let w = &written[&k];
            assert_eq!(w.dtype(), dtype, "{k}");
            let (a, b): (Vec<f32>, Vec<f32>) = (v.as_tensor().flatten_all().unwrap().to_vec1().unwrap(), w.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap());
            assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= tol * x.abs().max(1e-3)), "{k}: {name} is not the rounded f32");
        }
        // And a half-precision folder imports (to f32) as the same architecture.
        assert_eq!(hf::import(out.path()).unwrap().0, cfg);
    }
}

#[test]
fn import_names_what_is_wrong_with_a_folder() {
    let src = fixture("llama-tiny");
    let case = |edit: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>), drop_tensor: Option<&str>| -> String {
        let d = tempfile::tempdir().unwrap();
        let mut cfg: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
        edit(&mut cfg);
        std::fs::write(d.path().join("config.json"), serde_json::to_string(&cfg).unwrap()).unwrap();
        let mut ts = tensors(&src.join("model.safetensors"));
        if let Some(n) = drop_tensor {
            ts.remove(n);
        }
        candle_core::safetensors::save(&ts.into_iter().collect(), d.path().join("model.safetensors")).unwrap();
        let e = hf::import(d.path()).map(|_| ()).unwrap_err();
        assert!(e.is_user_error(), "{e}");
        e.to_string()
    };
    let msg = case(&|c| { c.insert("rope_scaling".into(), serde_json::json!({"type": "linear", "factor": 2.0})); }, None);
    assert!(msg.contains("`rope_scaling`") && msg.contains("not supported"), "{msg}");
    let msg = case(&|c| { c.remove("hidden_size"); }, None);
    assert!(msg.contains("`hidden_size` is missing"), "{msg}");
    let msg = case(&|c| { c.insert("model_type".into(), "mistral".into()); }, None);
    assert!(msg.contains("\"mistral\" is not supported") && msg.contains("llama, qwen2"), "{msg}");
    let msg = case(&|c| { c.insert("num_key_value_heads".into(), 3.into()); }, None);
    assert!(msg.contains("n_kv_head = 3 must divide"), "{msg}");
    let msg = case(&|_| {}, Some("model.layers.1.mlp.up_proj.weight"));
    assert!(msg.contains("missing") && msg.contains("model.layers.1.mlp.up_proj.weight"), "{msg}");
    let msg = case(&|c| { c.insert("intermediate_size".into(), 48.into()); }, None);
    assert!(msg.contains("shape"), "{msg}");
}
