//! ALBERT against transformers on tiny random models. The fixtures in
//! tests/fixtures/albert-tiny/{pretraining, base} were written by
//! tests/fixtures/albert-tiny/make_fixture.py (torch 2.15.0, transformers 5.23.0, float32,
//! eager attention): an `AlbertForPreTraining` and an `AlbertModel` folder as `save_pretrained`
//! wrote them (embedding_size 16 < hidden_size 32, 3 layers sharing one layer group, gelu_new),
//! and `expected.safetensors` with a padded batch and transformers' last hidden states, MLM
//! logits and SOP logits, or pooler output.

use candle_core::{DType, Device, Tensor};
use jielong_models::{hf, AlbertConfig, Model, SentenceTask};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/albert-tiny").join(name)
}

fn tensors(path: &Path) -> BTreeMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap().into_iter().collect()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap()
}

fn import(dir: &Path) -> Box<dyn Model> {
    let (cfg, params) = hf::import(dir).unwrap();
    cfg.build(params.var_builder(&Device::Cpu)).unwrap()
}

#[test]
fn albert_hidden_states_mlm_and_sop_logits_match_transformers() {
    for name in ["pretraining", "base"] {
        let dir = fixture(name);
        let model = import(&dir);
        let cfg = model.config();
        let a = cfg.get::<AlbertConfig>().expect("an ALBERT config");
        assert_eq!((a.embedding_size, a.n_embd, a.n_layer, a.n_layer_groups), (16, 32, 3, 1), "{name}: config.json read wrong");
        let enc = model.as_encoder().expect("ALBERT is an encoder");
        let exp = tensors(&dir.join("expected.safetensors"));
        let u32s = |k: &str| exp[k].to_dtype(DType::U32).unwrap();
        let (ids, types, mask) = (u32s("ids"), u32s("token_type_ids"), u32s("attention_mask"));
        let hidden = enc.hidden_states(&ids, Some(&types), &mask).unwrap();
        let d = max_diff(&hidden, &exp["hidden"]);
        assert!(d <= 1e-4, "{name}: hidden states differ from transformers by {d}");
        if name == "pretraining" {
            let mlm = enc.as_masked_lm().expect("AlbertForPreTraining has the MLM head");
            let d = max_diff(&mlm.mlm_logits(&ids, Some(&types), &mask).unwrap(), &exp["logits"]);
            assert!(d <= 1e-4, "MLM logits differ from transformers by {d}");
            assert_eq!(enc.sentence_task(), Some(SentenceTask::Sop));
            let sop = enc.sentence_logits(&hidden).unwrap().expect("AlbertForPreTraining has the SOP head");
            let d = max_diff(&sop, &exp["sop_logits"]);
            assert!(d <= 1e-4, "SOP logits differ from transformers by {d}");
        } else {
            assert!(enc.as_masked_lm().is_none() && enc.sentence_task().is_none(), "AlbertModel has no heads");
            let pooled = enc.pooled(&hidden).unwrap().expect("AlbertModel has the pooler");
            let d = max_diff(&pooled, &exp["pooled"]);
            assert!(d <= 1e-4, "pooler output differs from transformers by {d}");
        }
    }
}

#[test]
fn albert_export_writes_the_tensors_transformers_saved() {
    for name in ["pretraining", "base"] {
        let dir = fixture(name);
        let (cfg, params) = hf::import(&dir).unwrap();
        let out = tempfile::tempdir().unwrap();
        let meta = hf::HfMeta { bos_token_id: None, eos_token_id: None, dtype: "float32" };
        hf::export(&cfg, &params, DType::F32, &meta, out.path()).unwrap();
        let (theirs, ours) = (tensors(&dir.join("model.safetensors")), tensors(&out.path().join("model.safetensors")));
        // Ours carry the `albert.` prefix of AlbertForPreTraining files (AlbertModel loads them).
        let prefixed = |k: &String| if ["albert.", "predictions.", "sop_classifier."].iter().any(|p| k.starts_with(p)) { k.clone() } else { format!("albert.{k}") };
        let theirs: BTreeMap<String, &Tensor> = theirs.iter().map(|(k, v)| (prefixed(k), v)).collect();
        assert_eq!(theirs.keys().collect::<Vec<_>>(), ours.keys().collect::<Vec<_>>(), "{name}: tensor names");
        for (k, t) in &theirs {
            assert_eq!(max_diff(t, &ours[k]), 0.0, "{name}: {k}");
        }
        let back = hf::read_config(out.path()).unwrap();
        assert_eq!(back, cfg, "{name}: config.json round trip");
    }
}

/// Factorised embeddings and sharing, at the width of the `small` BERT preset: the count the
/// handbook quotes.
#[test]
fn albert_has_far_fewer_parameters_than_bert_at_the_same_width() {
    let bert = jielong_models::family::preset("bert", "small").unwrap();
    let albert = jielong_models::family::preset("albert", "small").unwrap();
    let (b, a) = (bert.n_params(), albert.n_params());
    println!("small preset: bert {b} parameters, albert {a}");
    assert!(a * 5 < b * 2, "albert {a} vs bert {b}: sharing one layer of four and halving the embedding width must cut more than 60%");
}
