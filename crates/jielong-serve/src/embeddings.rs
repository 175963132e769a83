//! `POST /v1/embeddings` in OpenAI's shape: sentence vectors from the served checkpoint.
//!
//! One embedding thread owns an [`Embedder`] over the model's encoder side (a BERT-family
//! encoder, or a causal model's last hidden states) and serves a bounded queue. It takes every
//! request waiting when it wakes, up to [`PASS_TEXTS`] texts, and embeds them in one call: the
//! embedder sorts all their texts by length and runs them in padded batches under an attention
//! mask, so a text's vector does not depend on the requests it was batched with, and many small
//! requests cost what one large one does.
//!
//! The vectors are those `jielong embed` writes for the same checkpoint: the pooling,
//! normalisation and longest input come from the checkpoint's `sentence.json` (what
//! sentence-transformers does for an imported model), and longer texts are cut as
//! `jielong embed` cuts them. `usage.prompt_tokens` counts the tokens the model read, special
//! tokens (`[CLS]`, `[SEP]`) included.

use crate::error::ApiError;
use crate::routes::body;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use candle_core::Device;
use jielong_core::{Error, Result};
use jielong_generate::{EmbedOptions, Embedder, Embeddings};
use jielong_models::{Encoder, Model};
use jielong_tokenizer::Tokenizer;
use serde::Deserialize;
use serde_json::json;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;

/// Most texts one request may send (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;
/// Most texts the embedding thread takes into one call (requests are never split).
pub const PASS_TEXTS: usize = 256;

/// Something that holds a model with an encoder side the embedding thread can share.
pub trait EncoderModel: Send + Sync + 'static {
    fn encoder(&self) -> &dyn Encoder;
}

impl EncoderModel for Box<dyn Model> {
    fn encoder(&self) -> &dyn Encoder {
        self.as_encoder().expect("the caller checks that the model can encode")
    }
}

/// What `/v1/embeddings` serves: a model and the recipe to embed with.
pub struct Embedding {
    pub model: Arc<dyn EncoderModel>,
    pub opts: EmbedOptions,
}

struct Job {
    texts: Vec<String>,
    reply: tokio::sync::oneshot::Sender<std::result::Result<Embeddings, ApiError>>,
}

/// The HTTP side of the embedding thread.
pub struct EmbedQueue {
    tx: SyncSender<Job>,
    pub dim: usize,
    pub max_len: usize,
    /// Requests that may wait for the embedding thread before new ones get 429.
    queue: usize,
}

impl EmbedQueue {
    /// Start the embedding thread; fails (a user error) when the recipe does not fit the model.
    pub fn start(e: Embedding, tk: Arc<Tokenizer>, queue: usize) -> Result<Self> {
        let dim = e.model.encoder().hidden_size();
        // Checked here, so that a bad --max-len fails at start rather than per request.
        Embedder::new(e.model.encoder(), &tk, e.opts, &Device::Cpu)?;
        let (tx, rx) = sync_channel(queue.max(1));
        let max_len = e.opts.max_len;
        std::thread::Builder::new()
            .name("jielong-embed".into())
            .spawn(move || serve(e, &tk, rx))
            .map_err(|err| Error::input(format!("cannot start the embedding thread: {err}")))?;
        Ok(Self { tx, dim, max_len, queue: queue.max(1) })
    }

    async fn embed(&self, texts: Vec<String>) -> std::result::Result<Embeddings, ApiError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        match self.tx.try_send(Job { texts, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let mut e = ApiError::busy(self.queue);
                e.message = format!("the server is busy ({} embedding requests waiting); retry shortly or start it with a larger --queue", self.queue);
                return Err(e);
            }
            Err(TrySendError::Disconnected(_)) => return Err(ApiError::server("the embedding thread has stopped")),
        }
        rx.await.unwrap_or_else(|_| Err(ApiError::server("the embedding thread dropped the request")))
    }
}

/// The embedding thread: embed what is waiting, reply, repeat until the server drops the queue.
fn serve(e: Embedding, tk: &Tokenizer, rx: Receiver<Job>) {
    let enc = e.model.encoder();
    let Ok(embedder) = Embedder::new(enc, tk, e.opts, &Device::Cpu) else { return };
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut n = jobs[0].texts.len();
        while n < PASS_TEXTS {
            match rx.try_recv() {
                Ok(j) => {
                    n += j.texts.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        // A client that hung up costs nothing more.
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let texts: Vec<&str> = jobs.iter().flat_map(|j| j.texts.iter().map(String::as_str)).collect();
        match embedder.embed(&texts, |_| {}) {
            Ok(all) => {
                let mut at = 0;
                for j in jobs {
                    let k = j.texts.len();
                    let part = Embeddings {
                        data: all.data[at * all.dim..(at + k) * all.dim].to_vec(),
                        dim: all.dim,
                        truncated: 0,
                        lengths: all.lengths[at..at + k].to_vec(),
                    };
                    at += k;
                    let _ = j.reply.send(Ok(part));
                }
            }
            // Each request on its own, so an error reaches only the request that caused it.
            Err(_) => {
                for j in jobs {
                    let refs: Vec<&str> = j.texts.iter().map(String::as_str).collect();
                    let _ = j.reply.send(embedder.embed(&refs, |_| {}).map_err(ApiError::from));
                }
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    Text(String),
    Texts(Vec<String>),
    Other(serde_json::Value),
}

#[derive(Deserialize)]
struct EmbeddingRequest {
    input: Input,
    model: Option<String>,
    encoding_format: Option<String>,
    dimensions: Option<i64>,
    #[allow(dead_code)]
    user: Option<String>,
}

struct Prepared {
    texts: Vec<String>,
    base64: bool,
}

fn prepare(state: &AppState, q: &EmbedQueue, b: std::result::Result<Bytes, BytesRejection>) -> std::result::Result<Prepared, ApiError> {
    let v = crate::request::parse_value(&body(b)?)?;
    if v.get("input").is_none() {
        return Err(ApiError::invalid("input", "`input` is missing: send a string or a list of strings"));
    }
    let req: EmbeddingRequest = crate::request::typed(&v)?;
    if let Some(m) = &req.model {
        if state.adapters.iter().any(|a| &a.model_id == m) {
            return Err(ApiError::invalid("model", format!("`{m}` is an adapter: it generates text only; embeddings come from the base `{}`", state.model_id)));
        }
        if !m.is_empty() && m != &state.model_id {
            return Err(ApiError::model_not_found(m, &state.model_id));
        }
    }
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => return Err(ApiError::invalid("encoding_format", format!("`encoding_format` is `{other}`: use float or base64"))),
    };
    if let Some(d) = req.dimensions {
        if d != q.dim as i64 {
            return Err(ApiError::invalid(
                "dimensions",
                format!("`dimensions` is {d}, but this model's vectors have {} dimensions and cannot be shortened: send {} or leave it out", q.dim, q.dim),
            ));
        }
    }
    let texts = match req.input {
        Input::Text(t) => vec![t],
        Input::Texts(v) => v,
        Input::Other(other) => {
            let ids = match &other {
                serde_json::Value::Array(a) => a.iter().all(|x| x.is_u64() || x.as_array().is_some_and(|r| r.iter().all(|y| y.is_u64()))),
                _ => false,
            };
            let msg = if ids {
                "`input` holds token ids: this server embeds text only; send a string or a list of strings".to_string()
            } else {
                format!("`input` is {}: send a string or a list of strings", kind_of(&other))
            };
            return Err(ApiError::invalid("input", msg));
        }
    };
    if texts.is_empty() {
        return Err(ApiError::invalid("input", "`input` is an empty list: send at least one string"));
    }
    if texts.len() > MAX_INPUTS {
        return Err(ApiError::invalid("input", format!("`input` holds {} texts; at most {MAX_INPUTS} per request", texts.len())));
    }
    if let Some(i) = texts.iter().position(|t| t.is_empty()) {
        return Err(ApiError::invalid(&format!("input[{i}]"), format!("input[{i}] is an empty string: every input must hold some text")));
    }
    Ok(Prepared { texts, base64 })
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list that is not all strings",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The bytes of the vector as little-endian float32, base64 encoded (what OpenAI's clients
/// decode with `np.frombuffer(base64.b64decode(s), dtype="float32")`).
pub fn to_base64(v: &[f32]) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub async fn embeddings(State(state): State<Arc<AppState>>, b: std::result::Result<Bytes, BytesRejection>) -> Response {
    const ROUTE: &str = "/v1/embeddings";
    let t0 = Instant::now();
    let Some(q) = state.embed.as_ref() else {
        let e = ApiError::invalid("model", format!("the model `{}` generates text and this server was started without embeddings", state.model_id));
        state.metrics.request(ROUTE, e.status.as_u16(), t0.elapsed());
        return e.into_response();
    };
    let result = match prepare(&state, q, b) {
        Ok(p) => q.embed(p.texts).await.map(|e| (e, p.base64)),
        Err(e) => Err(e),
    };
    let (e, base64) = match result {
        Ok(r) => r,
        Err(e) => {
            state.metrics.request(ROUTE, e.status.as_u16(), t0.elapsed());
            return e.into_response();
        }
    };
    let data: Vec<serde_json::Value> = (0..e.len())
        .map(|i| {
            let embedding = if base64 { json!(to_base64(e.row(i))) } else { json!(e.row(i)) };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens: usize = e.lengths.iter().sum();
    state.metrics.request(ROUTE, 200, t0.elapsed());
    axum::Json(json!({
        "object": "list",
        "data": data,
        "model": state.model_id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response()
}
