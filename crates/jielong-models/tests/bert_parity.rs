//! BERT against transformers on tiny random models. The fixtures in tests/fixtures/bert-tiny/
//! {mlm, base, pretraining} were written by tests/fixtures/bert-tiny/make_fixture.py (torch 2.15.0,
//! transformers 5.23.0, float32, eager attention): `BertForMaskedLM` and `BertModel` folders as
//! `save_pretrained` wrote them (and `BertForPreTraining`, with the next-sentence head), and `expected.safetensors` with a padded batch (ids, token
//! types, attention mask) and transformers' last hidden states, MLM logits or pooler output.

use candle_core::{DType, Device, Tensor};
use jielong_models::{hf, Model};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/bert-tiny").join(name)
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
fn bert_hidden_states_mlm_logits_and_pooler_match_transformers() {
    for name in ["mlm", "base", "pretraining"] {
        let dir = fixture(name);
        let model = import(&dir);
        assert!(model.as_causal_lm().is_none());
        let enc = model.as_encoder().expect("BERT is an encoder");
        let exp = tensors(&dir.join("expected.safetensors"));
        let u32s = |k: &str| exp[k].to_dtype(DType::U32).unwrap();
        let (ids, types, mask) = (u32s("ids"), u32s("token_type_ids"), u32s("attention_mask"));
        let hidden = enc.hidden_states(&ids, Some(&types), &mask).unwrap();
        let d = max_diff(&hidden, &exp["hidden"]);
        assert!(d <= 1e-4, "{name}: hidden states differ from transformers by {d}");
        match name {
            "mlm" => {
                let mlm = enc.as_masked_lm().expect("BertForMaskedLM has the MLM head");
                let logits = mlm.mlm_logits(&ids, Some(&types), &mask).unwrap();
                let d = max_diff(&logits, &exp["logits"]);
                assert!(d <= 1e-4, "MLM logits differ from transformers by {d}");
                assert!(enc.pooled(&hidden).unwrap().is_none());
                assert!(enc.sentence_task().is_none() && enc.sentence_logits(&hidden).unwrap().is_none());
            }
            "pretraining" => {
                assert_eq!(enc.sentence_task(), Some(jielong_models::SentenceTask::Nsp));
                let nsp = enc.sentence_logits(&hidden).unwrap().expect("BertForPreTraining has the NSP head");
                let d = max_diff(&nsp, &exp["nsp_logits"]);
                assert!(d <= 1e-4, "NSP logits differ from transformers by {d}");
                let mlm = enc.as_masked_lm().expect("BertForPreTraining has the MLM head");
                let d = max_diff(&mlm.mlm_logits(&ids, Some(&types), &mask).unwrap(), &exp["logits"]);
                assert!(d <= 1e-4, "MLM logits differ from transformers by {d}");
            }
            _ => {
                assert!(enc.as_masked_lm().is_none(), "BertModel has no MLM head");
                let pooled = enc.pooled(&hidden).unwrap().expect("BertModel has the pooler");
                let d = max_diff(&pooled, &exp["pooled"]);
                assert!(d <= 1e-4, "pooler output differs from transformers by {d}");
            }
        }
        // Without token types, segment 0 everywhere: row 0 of the fixture is all segment 0.
        let row0 = enc.hidden_states(&ids.narrow(0, 0, 1).unwrap(), None, &mask.narrow(0, 0, 1).unwrap()).unwrap();
        assert!(max_diff(&row0, &exp["hidden"].narrow(0, 0, 1).unwrap()) <= 1e-4);
    }
}

#[test]
fn bert_export_writes_the_tensors_transformers_saved() {
    for name in ["mlm", "base", "pretraining"] {
        let dir = fixture(name);
        let (cfg, params) = hf::import(&dir).unwrap();
        let out = tempfile::tempdir().unwrap();
        let meta = hf::HfMeta { bos_token_id: None, eos_token_id: None, dtype: "float32" };
        hf::export(&cfg, &params, DType::F32, &meta, out.path()).unwrap();
        let (theirs, ours) = (tensors(&dir.join("model.safetensors")), tensors(&out.path().join("model.safetensors")));
        // Ours carry the `bert.` prefix that BertForMaskedLM files have (BertModel loads them).
        let theirs: BTreeMap<String, &Tensor> = theirs.iter().map(|(k, v)| (if k.starts_with("bert.") || k.starts_with("cls.") { k.clone() } else { format!("bert.{k}") }, v)).collect();
        assert_eq!(theirs.keys().collect::<Vec<_>>(), ours.keys().collect::<Vec<_>>(), "{name}: tensor names");
        for (k, t) in &theirs {
            assert_eq!(max_diff(t, &ours[k]), 0.0, "{name}: {k}");
        }
        let back = hf::read_config(out.path()).unwrap();
        assert_eq!(back, cfg, "{name}: config.json round trip");
    }
}
