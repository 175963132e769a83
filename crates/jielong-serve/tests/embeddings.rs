//! `POST /v1/embeddings` against a real server on a loopback port: a tiny random BERT (shapes,
//! index order, usage, base64, the vectors `jielong embed`'s `Embedder` gives, requests batched
//! together, bad input), a tiny GPT serving chat and embeddings side by side, and
//! all-MiniLM-L6-v2 (fetched by `scripts/fetch-data`; the test fails without it) against the
//! sentence-transformers fixture of the parity test.

use candle_core::{DType, Device, Tensor};
use crate::common::{get, post, Reply};
use jielong_generate::{EmbedOptions, Embedder, Pooling, Truncate};
use jielong_models::bert::{Bert, BertConfig};
use jielong_models::Model;
use jielong_nn::ParamStore;
use jielong_serve::embeddings::Embedding;
use jielong_serve::request::Limits;
use jielong_serve::{Served, ServeConfig, Server};
use jielong_tokenizer::{ChatTemplate, Tokenizer, TokenizerKind};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn config() -> ServeConfig {
    ServeConfig {
        port: 0,
        queue: 16,
        limits: Limits { max_n: 2, max_tokens: 64, default_max_tokens: 8, max_beams: 4 },
        max_body_bytes: 1 << 20,
        model_id: "enc".into(),
        checkpoint_hash: "0123456789abcdef".into(),
        grace: Duration::from_millis(200),
        ..ServeConfig::default()
    }
}

/// Two copies of one tokenizer (the server takes one; training twice need not give the same ids).
fn twice(tk: Tokenizer) -> (Tokenizer, Tokenizer) {
    let d = tempfile::tempdir().unwrap();
    tk.save(d.path()).unwrap();
    let path = d.path().join("tokenizer.json");
    (Tokenizer::load(&path).unwrap(), Tokenizer::load(&path).unwrap())
}

fn wordpiece() -> Tokenizer {
    let text: Vec<String> = (0..40)
        .map(|i| format!("Sentence {i}: encoders read the whole text at once and give every token a vector. 编码器读整段文字。\n"))
        .collect();
    Tokenizer::train(TokenizerKind::Wordpiece, 200, text.iter()).unwrap()
}

fn tiny_bert(vocab: usize) -> Arc<Box<dyn Model>> {
    let cfg = BertConfig { vocab_size: vocab, n_layer: 2, n_head: 2, n_embd: 32, n_inner: 48, max_seq_len: 24, dropout: 0.0, ..BertConfig::tiny() };
    let params = ParamStore::new(7);
    Arc::new(Box::new(Bert::new(&cfg, params.var_builder(&Device::Cpu)).unwrap()))
}

fn opts(max_len: usize) -> EmbedOptions {
    EmbedOptions { pooling: Pooling::Mean, normalize: true, max_len, batch_size: 4, truncate: Truncate::Cut }
}

fn start_encoder(model: Arc<Box<dyn Model>>, tk: Tokenizer, o: EmbedOptions) -> Server {
    let served = Served { lm: None, embed: Some(Embedding { model, opts: o }) };
    jielong_serve::start_served(served, tk, ChatTemplate::default_template(), config(), false).unwrap()
}

fn vectors(r: &Reply) -> Vec<Vec<f32>> {
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    v["data"].as_array().unwrap().iter().map(|d| d["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()).collect()
}

fn error_of(r: &Reply) -> (u16, Value) {
    let v = r.json();
    assert!(v["error"]["message"].is_string() && v["error"]["type"].is_string(), "not an OpenAI error: {v}");
    (r.status, v["error"].clone())
}

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

const TEXTS: [&str; 4] = [
    "encoders read the whole text",
    "a vector",
    "编码器读整段文字, and every token gets a vector at once from both sides of the sentence",
    "Sentence 7",
];

#[test]
fn embeddings_float_base64_usage_order_and_the_embedders_vectors() {
    let (tk, served_tk) = twice(wordpiece());
    let model = tiny_bert(tk.vocab_size());
    let server = start_encoder(model.clone(), served_tk, opts(16));
    let addr = server.addr;

    let r = post(addr, "/v1/embeddings", &json!({"model": "enc", "input": TEXTS}));
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "enc");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 4);
    for (i, d) in data.iter().enumerate() {
        assert_eq!(d["object"], "embedding");
        assert_eq!(d["index"], i, "data is in input order");
    }
    let got = vectors(&r);
    assert!(got.iter().all(|g| g.len() == 32));

    // The vectors and token counts `jielong embed` gets from the same model and options.
    let embedder = Embedder::new(model.as_encoder().unwrap(), &tk, opts(16), &Device::Cpu).unwrap();
    let want = embedder.embed(&TEXTS, |_| {}).unwrap();
    for (i, g) in got.iter().enumerate() {
        assert!(close(g, want.row(i), 1e-6), "text {i}: the server's vector differs from the embedder's");
        let norm: f32 = g.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "the recipe asks for unit vectors");
    }
    let tokens: usize = TEXTS.iter().map(|t| embedder.tokenize(t).unwrap().0.len()).sum();
    assert_eq!(want.lengths.iter().sum::<usize>(), tokens);
    assert!(want.lengths[2] == 16, "the long text is cut to --max-len 16");
    assert_eq!(v["usage"]["prompt_tokens"], tokens);
    assert_eq!(v["usage"]["total_tokens"], tokens);

    // base64: the same float32 bits.
    let r = post(addr, "/v1/embeddings", &json!({"input": TEXTS, "encoding_format": "base64", "dimensions": 32}));
    assert_eq!(r.status, 200, "{}", r.text());
    for (i, d) in r.json()["data"].as_array().unwrap().iter().enumerate() {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD.decode(d["embedding"].as_str().unwrap()).unwrap();
        let floats: Vec<f32> = bytes.chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        assert_eq!(floats, got[i], "base64 text {i} decodes to other numbers than the float answer");
    }

    // A single string; and many requests at once (batched together by the embedding thread)
    // give each its own vectors.
    let one = vectors(&post(addr, "/v1/embeddings", &json!({"input": TEXTS[1]})));
    assert_eq!(one.len(), 1);
    assert!(close(&one[0], &got[1], 1e-5));
    let handles: Vec<_> = (0..12)
        .map(|k| {
            std::thread::spawn(move || {
                let texts: Vec<&str> = (0..1 + k % 3).map(|j| TEXTS[(k + j) % 4]).collect();
                (k, vectors(&post(addr, "/v1/embeddings", &json!({"input": texts}))))
            })
        })
        .collect();
    for h in handles {
        let (k, vs) = h.join().unwrap();
        assert_eq!(vs.len(), 1 + k % 3);
        for (j, v) in vs.iter().enumerate() {
            assert!(close(v, &got[(k + j) % 4], 1e-5), "request {k}, text {j}: batched with others it changed");
        }
    }

    // Bad input: OpenAI-shaped 4xx naming the field.
    let bad = |body: Value, status: u16, param: &str, words: &str| {
        let (s, e) = error_of(&post(addr, "/v1/embeddings", &body));
        assert_eq!(s, status, "{body}: {e}");
        assert_eq!(e["param"].as_str().unwrap_or(""), param, "{body}: {e}");
        assert!(e["message"].as_str().unwrap().contains(words), "{body}: {e}");
    };
    bad(json!({"input": [1, 2, 3]}), 400, "input", "token ids");
    bad(json!({"input": [[1, 2], [3]]}), 400, "input", "token ids");
    bad(json!({"input": 7}), 400, "input", "a number");
    bad(json!({"model": "enc"}), 400, "input", "missing");
    bad(json!({"input": []}), 400, "input", "empty list");
    bad(json!({"input": ["a", ""]}), 400, "input[1]", "empty string");
    bad(json!({"input": "a", "dimensions": 8}), 400, "dimensions", "32 dimensions");
    bad(json!({"input": "a", "encoding_format": "int8"}), 400, "encoding_format", "float or base64");
    bad(json!({"input": "a", "model": "gpt-4"}), 404, "model", "does not exist");
    let (s, e) = error_of(&post(addr, "/v1/embeddings", &json!({"input": vec!["x"; 2049]})));
    assert!(s == 400 && e["message"].as_str().unwrap().contains("at most 2048"), "{e}");

    // Chat and completions on an encoder: a clear 400, in OpenAI's shape.
    for path in ["/v1/chat/completions", "/v1/completions"] {
        let body = json!({"messages": [{"role": "user", "content": "hi"}], "prompt": "hi"});
        let (s, e) = error_of(&post(addr, path, &body));
        assert_eq!(s, 400);
        assert!(e["message"].as_str().unwrap().contains("is an encoder"), "{e}");
    }
    assert_eq!(get(addr, "/health").status, 200);
    assert_eq!(get(addr, "/v1/models").json()["data"][0]["context_length"], 24);
    server.stop();
    server.join();
}

#[test]
fn embeddings_served_beside_chat_by_a_causal_model() {
    let (tk, served_tk) = twice(crate::common::tokenizer());
    let cfg = jielong_models::gpt::GptConfig { vocab_size: tk.vocab_size(), n_layer: 1, n_head: 2, n_embd: 16, max_seq_len: 32, dropout: 0.0, ..jielong_models::gpt::GptConfig::tiny() };
    let params = ParamStore::new(5);
    let model: Arc<Box<dyn Model>> = Arc::new(Box::new(jielong_models::gpt::Gpt::new(&cfg, params.var_builder(&Device::Cpu)).unwrap()));
    let o = EmbedOptions { pooling: Pooling::Mean, normalize: false, max_len: 32, batch_size: 8, truncate: Truncate::Cut };
    let served = Served { lm: Some(Box::new(model.clone())), embed: Some(Embedding { model: model.clone(), opts: o }) };
    let server = jielong_serve::start_served(served, served_tk, ChatTemplate::default_template(), config(), false).unwrap();
    let texts = ["hello world", "the model reads the words so far"];
    let got = vectors(&post(server.addr, "/v1/embeddings", &json!({"input": texts})));
    let want = Embedder::new(model.as_encoder().unwrap(), &tk, o, &Device::Cpu).unwrap().embed(&texts, |_| {}).unwrap();
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.len(), 16);
        assert!(close(g, want.row(i), 1e-6), "text {i}: mean of last hidden states differs");
    }
    let r = post(server.addr, "/v1/chat/completions", &json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}));
    assert_eq!(r.status, 200, "{}", r.text());
    server.stop();
    server.join();
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn embeddings_of_minilm_equal_sentence_transformers() {
    let dir = root().join("data/minilm");
    assert!(dir.join("model.safetensors").is_file(), "{}: the MiniLM weights are missing; run scripts/fetch-data", dir.display());
    let fixture = root().join("tests/fixtures/minilm");
    let texts: Vec<String> = serde_json::from_str(&std::fs::read_to_string(fixture.join("sentences.json")).unwrap()).unwrap();
    let exp: BTreeMap<String, Tensor> = candle_core::safetensors::load(fixture.join("expected.safetensors"), &Device::Cpu).unwrap().into_iter().collect();
    let (cfg, params) = jielong_models::hf::import(&dir).unwrap();
    let model: Arc<Box<dyn Model>> = Arc::new(cfg.build(params.var_builder(&Device::Cpu)).unwrap());
    let tk = Tokenizer::load(&dir.join("tokenizer.json")).unwrap();
    // sentence-transformers' recipe for the model: mean pooling, unit length, 256 tokens.
    let server = start_encoder(model, tk, EmbedOptions { batch_size: 32, ..opts(256) });
    let r = post(server.addr, "/v1/embeddings", &json!({"input": texts, "model": "enc"}));
    let got = vectors(&r);
    let want: Vec<Vec<f32>> = exp["embeddings"].to_vec2().unwrap();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(close(g, w, 1e-4), "text {i} differs from sentence-transformers' by more than 1e-4 in a component");
        let cos: f64 = g.iter().zip(w).map(|(a, b)| *a as f64 * *b as f64).sum();
        assert!(cos >= 1.0 - 1e-5, "text {i}: cosine {cos}");
    }
    // Usage counts the ids sentence-transformers fed the model (one text is cut to 256).
    let lengths: Vec<i64> = exp["lengths"].to_dtype(DType::I64).unwrap().to_vec1().unwrap();
    assert_eq!(r.json()["usage"]["prompt_tokens"], lengths.iter().map(|&n| n.min(256)).sum::<i64>());
    server.stop();
    server.join();
}
