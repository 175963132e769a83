//! Task heads against transformers: `BertForSequenceClassification`,
//! `BertForTokenClassification`, `BertForQuestionAnswering` on the tiny random BERT of
//! tests/fixtures/bert-tiny/base, and `GPT2ForSequenceClassification` on tests/fixtures/gpt2-tiny
//! (the last real token's state through a bias-free `score`). Heads and outputs in
//! tests/fixtures/heads, written by make_fixture.py there (versions in its docstring).

use candle_core::{DType, Device, Tensor};
use jielong_models::gpt::{Gpt, ForwardOpts};
use jielong_models::{hf, HeadKind, Model, Pooling, TaskHead};
use jielong_nn::params::load_tensors;
use jielong_nn::ParamStore;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
}

/// A head of `kind` for `family` whose tensors are the fixture's `{prefix}.{name}`.
fn head(kind: HeadKind, pooling: Pooling, family: &str, n: usize, exp: &BTreeMap<String, Tensor>, prefix: &str) -> TaskHead {
    let store = ParamStore::new(0);
    let h = TaskHead::new(kind, pooling, family, 32, n, 0.0, store.var_builder(&Device::Cpu)).unwrap();
    for (name, var) in store.vars() {
        let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        var.set(&exp[&key]).unwrap();
    }
    assert_eq!(store.vars().len(), h.tensor_names().len());
    h
}

#[test]
fn heads_bert_logits_match_transformers() {
    let (cfg, params) = hf::import(&fixtures().join("bert-tiny/base")).unwrap();
    let model = cfg.build(params.var_builder(&Device::Cpu)).unwrap();
    let enc = model.as_encoder().unwrap();
    let exp: BTreeMap<String, Tensor> = load_tensors(&fixtures().join("heads/bert.safetensors")).unwrap().into_iter().collect();
    let u32s = |k: &str| exp[k].to_dtype(DType::U32).unwrap();
    let (ids, types, mask) = (u32s("ids"), u32s("token_type_ids"), u32s("attention_mask"));
    let hidden = enc.hidden_states(&ids, Some(&types), &mask).unwrap();

    let mut seq = head(HeadKind::SequenceClassification, Pooling::Cls, "bert", 3, &exp, "seq");
    let d = max_diff(&seq.logits(enc, &hidden, &mask, Default::default()).unwrap(), &exp["seq_logits"]);
    assert!(d <= 1e-4, "sequence-classification logits differ from transformers by {d}");
    // The path fine-tuning and predict take: the last layer computes the [CLS] rows alone.
    let positions = seq.pooled_positions(&mask).unwrap().expect("[CLS] pooling reads one position");
    let at = enc.hidden_states_at(&ids, Some(&types), &mask, &positions, None).unwrap();
    let d = max_diff(&seq.logits_at(enc, &at, Default::default()).unwrap(), &exp["seq_logits"]);
    assert!(d <= 1e-4, "sequence-classification logits from the [CLS] rows differ from transformers by {d}");
    // Mean pooling is a different vector: the logits must change (the pooling is used).
    seq.pooling = Pooling::Mean;
    assert!(max_diff(&seq.logits(enc, &hidden, &mask, Default::default()).unwrap(), &exp["seq_logits"]) > 1e-3);

    let tok = head(HeadKind::TokenClassification, Pooling::Cls, "bert", 5, &exp, "tok");
    let d = max_diff(&tok.logits(enc, &hidden, &mask, Default::default()).unwrap(), &exp["tok_logits"]);
    assert!(d <= 1e-4, "token-classification logits differ from transformers by {d}");

    let qa = head(HeadKind::SpanExtraction, Pooling::Cls, "bert", 0, &exp, "qa");
    let (start, end) = qa.span_logits(enc, &hidden, &mask).unwrap();
    let (ds, de) = (max_diff(&start, &exp["start_logits"]), max_diff(&end, &exp["end_logits"]));
    assert!(ds <= 1e-4 && de <= 1e-4, "QA start/end logits differ from transformers by {ds} / {de}");
}

#[test]
fn heads_gpt2_sequence_classification_matches_transformers() {
    let dir = fixtures().join("gpt2-tiny");
    let params = ParamStore::new(0);
    let model = Gpt::new(&crate::gpt_parity::tiny_config(), params.var_builder(&Device::Cpu)).unwrap();
    params.load(&dir.join("model.safetensors"), |n| Some(n.to_string())).unwrap();
    let exp: BTreeMap<String, Tensor> = load_tensors(&fixtures().join("heads/gpt2.safetensors")).unwrap().into_iter().collect();
    let ids = exp["ids"].to_dtype(DType::U32).unwrap();
    // transformers finds the last token that is not pad_token_id (0); the mask says the same.
    let mask = ids.ne(0u32).unwrap().to_dtype(DType::U32).unwrap();
    let enc = model.as_encoder().unwrap();
    let hidden = enc.hidden_states(&ids, None, &mask).unwrap();
    let score = head(HeadKind::SequenceClassification, Pooling::Last, "gpt", 3, &exp, "");
    assert_eq!(score.tensor_names(), vec!["score.weight".to_string()]);
    let logits = score.logits(enc, &hidden, &mask, ForwardOpts::default()).unwrap();
    let d = max_diff(&logits, &exp["logits"]);
    assert!(d <= 1e-4, "GPT-2 sequence-classification logits differ from transformers by {d}");
}
