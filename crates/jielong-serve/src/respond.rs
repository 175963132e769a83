//! Running a validated request through the engine and answering in OpenAI's shapes: one JSON
//! body, or server-sent events (`data: {chunk}\n\n` … `data: [DONE]\n\n`), for completions
//! (`text_completion`) and chat (`chat.completion`, `chat.completion.chunk`).

use crate::drive::{drive, End, Piece, TokenOut};
use crate::error::ApiError;
use crate::request::Settings;
use crate::scheduler::Job;
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// Which API the answer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Completion,
    Chat,
}

impl Api {
    fn route(self) -> &'static str {
        match self {
            Api::Completion => "/v1/completions",
            Api::Chat => "/v1/chat/completions",
        }
    }
}

/// A request ready for the engine.
pub struct Prepared {
    pub prompt: Vec<u32>,
    pub settings: Settings,
    /// The request's stop strings and the chat template's.
    pub stops: Vec<String>,
    /// Completions with `echo`: the prompt text, put before each choice.
    pub echo: Option<String>,
}

fn new_id(prefix: &str) -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut rng = jielong_core::Rng::derive(t.as_nanos() as u64, &[std::process::id() as u64]);
    format!("{prefix}-{:016x}{:08x}", rng.next_u64(), rng.next_u64() as u32)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Queue the request's jobs and answer, streaming or not.
pub async fn run(state: Arc<AppState>, api: Api, p: Prepared, t0: Instant) -> Response {
    let n = p.settings.n;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let cancels: Vec<Arc<AtomicBool>> = (0..n).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let stop_ids: Vec<u32> = if p.settings.ignore_eos { Vec::new() } else { state.tk.eot_id().into_iter().collect() };
    // A beam search is one job whose best `n` hypotheses become the choices; sampling is one
    // job per choice.
    let beams = p.settings.beams;
    let n_jobs = if beams > 1 { 1 } else { n };
    let jobs = (0..n_jobs)
        .map(|i| {
            let mut sampling = p.settings.sampling.clone();
            if n > 1 {
                sampling.seed = jielong_core::Rng::derive(p.settings.seed, &[i as u64]).next_u64();
            }
            Job {
                index: i,
                prompt: p.prompt.clone(),
                sampling,
                max_tokens: p.settings.max_tokens,
                stop_ids: stop_ids.clone(),
                logprobs: p.settings.logprobs,
                beams,
                choices: if beams > 1 { n } else { 1 },
                tx: tx.clone(),
                cancel: cancels[i].clone(),
            }
        })
        .collect();
    drop(tx);
    if let Err(busy) = state.sched.submit(jobs) {
        state.metrics.request(api.route(), 429, t0.elapsed());
        return ApiError::busy(busy.waiting).into_response();
    }
    state.metrics.prompt(p.prompt.len());
    let id = new_id(if api == Api::Chat { "chatcmpl" } else { "cmpl" });
    let head = Head { id, created: unix_now(), model: state.model_id.clone(), fingerprint: state.fingerprint() };
    if p.settings.stream {
        stream(state, api, p, head, cancels, rx, t0)
    } else {
        whole(state, api, p, head, cancels, rx, t0).await
    }
}

struct Head {
    id: String,
    created: u64,
    model: String,
    fingerprint: String,
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

fn chat_logprobs(tokens: &[TokenOut]) -> Value {
    let content: Vec<Value> = tokens
        .iter()
        .map(|t| {
            json!({
                "token": t.text, "logprob": t.logprob, "bytes": t.bytes,
                "top_logprobs": t.top.iter().map(|(s, b, l)| json!({"token": s, "logprob": l, "bytes": b})).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"content": content, "refusal": null})
}

/// The legacy completions shape; `offset` is where this text starts in the choice's text.
fn completion_logprobs(tokens: &[TokenOut], mut offset: usize) -> Value {
    let mut text_offset = Vec::new();
    for t in tokens {
        text_offset.push(offset);
        offset += t.text.len();
    }
    json!({
        "tokens": tokens.iter().map(|t| &t.text).collect::<Vec<_>>(),
        "token_logprobs": tokens.iter().map(|t| t.logprob).collect::<Vec<_>>(),
        "top_logprobs": tokens.iter().map(|t| {
            let mut m = serde_json::Map::new();
            for (s, _, l) in &t.top { m.entry(s.clone()).or_insert(json!(l)); }
            Value::Object(m)
        }).collect::<Vec<_>>(),
        "text_offset": text_offset,
    })
}

async fn whole(
    state: Arc<AppState>,
    api: Api,
    p: Prepared,
    head: Head,
    cancels: Vec<Arc<AtomicBool>>,
    rx: tokio::sync::mpsc::UnboundedReceiver<(usize, crate::scheduler::Event)>,
    t0: Instant,
) -> Response {
    let n = p.settings.n;
    let mut texts = vec![p.echo.clone().unwrap_or_default(); n];
    let mut tokens: Vec<Vec<TokenOut>> = vec![Vec::new(); n];
    let mut finish: Vec<&str> = vec!["length"; n];
    let end = drive(&state, &p.prompt, &p.stops, &cancels, rx, |piece: Piece| {
        texts[piece.index].push_str(&piece.text);
        tokens[piece.index].extend(piece.tokens);
        if let Some(f) = piece.finish {
            finish[piece.index] = f;
        }
        true
    })
    .await;
    let completion_tokens = match end {
        End::Done { completion_tokens } => completion_tokens,
        End::Aborted(msg) => {
            state.metrics.request(api.route(), 503, t0.elapsed());
            return ApiError::server(msg).with_status(StatusCode::SERVICE_UNAVAILABLE).into_response();
        }
        End::ClientGone => unreachable!("a whole answer never reports the client gone"),
    };
    let logprobs = p.settings.logprobs.is_some();
    let choices: Vec<Value> = (0..n)
        .map(|i| match api {
            Api::Chat => json!({
                "index": i,
                "message": {"role": "assistant", "content": texts[i], "refusal": null},
                "logprobs": if logprobs { chat_logprobs(&tokens[i]) } else { Value::Null },
                "finish_reason": finish[i],
            }),
            Api::Completion => json!({
                "index": i,
                "text": texts[i],
                "logprobs": if logprobs { completion_logprobs(&tokens[i], p.echo.as_ref().map_or(0, |e| e.len())) } else { Value::Null },
                "finish_reason": finish[i],
            }),
        })
        .collect();
    let object = if api == Api::Chat { "chat.completion" } else { "text_completion" };
    let body = json!({
        "id": head.id, "object": object, "created": head.created, "model": head.model,
        "system_fingerprint": head.fingerprint,
        "choices": choices, "usage": usage(p.prompt.len(), completion_tokens),
    });
    state.metrics.request(api.route(), 200, t0.elapsed());
    axum::Json(body).into_response()
}

fn sse(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

fn stream(
    state: Arc<AppState>,
    api: Api,
    p: Prepared,
    head: Head,
    cancels: Vec<Arc<AtomicBool>>,
    rx: tokio::sync::mpsc::UnboundedReceiver<(usize, crate::scheduler::Event)>,
    t0: Instant,
) -> Response {
    let (out, out_rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        let include_usage = p.settings.include_usage;
        let logprobs = p.settings.logprobs.is_some();
        let object = if api == Api::Chat { "chat.completion.chunk" } else { "text_completion" };
        let chunk = |choices: Value| {
            let mut v = json!({
                "id": head.id, "object": object, "created": head.created, "model": head.model,
                "system_fingerprint": head.fingerprint, "choices": choices,
            });
            if include_usage {
                v["usage"] = Value::Null;
            }
            v
        };
        // Chat streams open with the role, as OpenAI's do.
        let mut open = true;
        for i in 0..p.settings.n {
            let first = match (api, &p.echo) {
                (Api::Chat, _) => Some(json!([{"index": i, "delta": {"role": "assistant", "content": "", "refusal": null}, "logprobs": null, "finish_reason": null}])),
                (Api::Completion, Some(echo)) => Some(json!([{"index": i, "text": echo, "logprobs": null, "finish_reason": null}])),
                _ => None,
            };
            if let Some(c) = first {
                open &= out.send(sse(&chunk(c))).is_ok();
            }
        }
        let mut offsets = vec![p.echo.as_ref().map_or(0, |e| e.len()); p.settings.n];
        let end = if !open {
            End::ClientGone
        } else {
            drive(&state, &p.prompt, &p.stops, &cancels, rx, |piece: Piece| {
                let lp = if logprobs && !piece.tokens.is_empty() {
                    match api {
                        Api::Chat => chat_logprobs(&piece.tokens),
                        Api::Completion => completion_logprobs(&piece.tokens, offsets[piece.index]),
                    }
                } else {
                    Value::Null
                };
                offsets[piece.index] += piece.text.len();
                let choice = match api {
                    Api::Chat => {
                        let delta = if piece.text.is_empty() { json!({}) } else { json!({"content": piece.text}) };
                        json!({"index": piece.index, "delta": delta, "logprobs": lp, "finish_reason": piece.finish})
                    }
                    Api::Completion => json!({"index": piece.index, "text": piece.text, "logprobs": lp, "finish_reason": piece.finish}),
                };
                out.send(sse(&chunk(json!([choice])))).is_ok()
            })
            .await
        };
        let status = match end {
            End::Done { completion_tokens } => {
                if include_usage {
                    let mut u = chunk(json!([]));
                    u["usage"] = usage(p.prompt.len(), completion_tokens);
                    let _ = out.send(sse(&u));
                }
                let _ = out.send(Bytes::from_static(b"data: [DONE]\n\n"));
                200
            }
            End::Aborted(msg) => {
                let _ = out.send(sse(&ApiError::server(msg).body()));
                503
            }
            // 499: nginx's name for "the client closed the request".
            End::ClientGone => 499,
        };
        state.metrics.request(api.route(), status, t0.elapsed());
    });
    let body = Body::from_stream(futures_util::stream::unfold(out_rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    }));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .expect("a valid response")
}
