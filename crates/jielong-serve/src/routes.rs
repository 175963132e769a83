//! The HTTP routes: request parsing, the chat template and tokenization happen here, on the
//! HTTP tasks; decoding happens on the engine thread (see `scheduler`).

use crate::error::ApiError;
use crate::request::{parse_two, ChatRequest, Common, CompletionRequest, Content, Prompt};
use crate::respond::{run, Api, Prepared};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jielong_tokenizer::Message;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

/// The body, or an OpenAI-shaped error (413 for a body over the limit).
pub fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    b.map_err(|e| {
        let status = e.status();
        let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "the request body is too large for this server (see its --max-body-mb)".to_string()
        } else {
            format!("cannot read the request body: {e}")
        };
        ApiError::invalid("", msg).with_status(status)
    })
}

/// Refuse requests without the right `Authorization: Bearer KEY` when the server has a key.
pub async fn auth(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = &state.api_key {
        let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        match given {
            None => return ApiError::unauthorized("You didn't provide an API key: send the header `Authorization: Bearer KEY`").into_response(),
            Some(g) if !constant_time_eq(g.trim().as_bytes(), key.as_bytes()) => {
                return ApiError::unauthorized("Incorrect API key provided").into_response();
            }
            _ => {}
        }
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    let (waiting, live) = state.sched.load();
    axum::Json(json!({"status": "ok", "model": state.model_id, "waiting": waiting, "live": live})).into_response()
}

/// GET /v1/models: the base, then each adapter with `parent` and `root` naming the base (as
/// vLLM lists LoRA modules).
pub async fn models(State(state): State<Arc<AppState>>) -> Response {
    let data: Vec<serde_json::Value> = state
        .all()
        .iter()
        .map(|m| {
            let base = m.parent.clone().unwrap_or_else(|| m.model_id.clone());
            json!({
                "id": m.model_id, "object": "model", "created": m.created, "owned_by": "jielong",
                "context_length": m.max_seq_len, "checkpoint_hash": m.checkpoint_hash,
                "root": base, "parent": m.parent,
            })
        })
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let all = state.all();
    let text = if all.len() == 1 {
        state.metrics.render()
    } else {
        let parts: Vec<(&str, &crate::metrics::Metrics)> = all.iter().map(|m| (m.model_id.as_str(), &*m.metrics)).collect();
        crate::metrics::Metrics::render_by_model(&parts)
    };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Chat and completions need a causal model; an encoder checkpoint only embeds.
fn check_generates(state: &AppState) -> Result<(), ApiError> {
    if state.generates {
        return Ok(());
    }
    Err(ApiError::invalid(
        "model",
        format!("the model `{}` is an encoder: it embeds text (POST /v1/embeddings) but cannot generate; serve a causal checkpoint for chat and completions", state.model_id),
    )
    .with_code("unsupported_model"))
}


/// Refuse a prompt that leaves no room in the context window.
fn check_length(state: &AppState, prompt: &[u32], param: &str) -> Result<(), ApiError> {
    if prompt.len() >= state.max_seq_len {
        return Err(ApiError::invalid(
            param,
            format!(
                "This model's maximum context length is {} tokens, but the prompt is {} tokens: shorten it",
                state.max_seq_len,
                prompt.len()
            ),
        )
        .with_code("context_length_exceeded"));
    }
    Ok(())
}

pub async fn completions(State(state): State<Arc<AppState>>, _h: HeaderMap, b: Result<Bytes, BytesRejection>) -> Response {
    let t0 = Instant::now();
    match prepare_completion(&state, b) {
        Ok((picked, p)) => run(picked, Api::Completion, p, t0).await,
        Err(e) => {
            state.metrics.request("/v1/completions", e.status.as_u16(), t0.elapsed());
            e.into_response()
        }
    }
}

/// The request ready for the engine, and the model (base or adapter) its `model` names.
fn prepare_completion(root: &Arc<AppState>, b: Result<Bytes, BytesRejection>) -> Result<(Arc<AppState>, Prepared), ApiError> {
    check_generates(root)?;
    let (req, common): (CompletionRequest, Common) = parse_two(&body(b)?)?;
    let picked = root.pick(common.model.as_deref())?;
    let state = &*picked;
    let logprobs = match req.logprobs {
        None => None,
        Some(k) if (0..=5).contains(&k) => Some(k as usize),
        Some(k) => return Err(ApiError::invalid("logprobs", format!("`logprobs` is {k}: it must be between 0 and 5"))),
    };
    let settings = common.settings(None, logprobs, &state.limits)?;
    let (text, mut prompt) = match &req.prompt {
        Prompt::Text(t) => (t.clone(), state.tk.encode(t)?),
        Prompt::Texts(v) if v.len() == 1 => (v[0].clone(), state.tk.encode(&v[0])?),
        Prompt::Texts(v) => {
            return Err(ApiError::invalid("prompt", format!("`prompt` holds {} texts: send one prompt per request (use `n` for several samples)", v.len())));
        }
        Prompt::Ids(ids) => {
            if let Some(bad) = ids.iter().find(|&&i| i as usize >= state.tk.vocab_size()) {
                return Err(ApiError::invalid("prompt", format!("token id {bad} is outside the vocabulary (size {})", state.tk.vocab_size())));
            }
            (state.tk.decode(ids)?, ids.clone())
        }
    };
    if prompt.is_empty() {
        // As `jielong generate`: an empty prompt starts from the end-of-text token.
        match state.tk.eot_id() {
            Some(eot) => prompt.push(eot),
            None => return Err(ApiError::invalid("prompt", "the prompt is empty and the tokenizer has no end-of-text token: give some text")),
        }
    }
    check_length(state, &prompt, "prompt")?;
    let echo = req.echo.unwrap_or(false).then_some(text);
    let stops = settings.stops.clone();
    Ok((picked.clone(), Prepared { prompt, settings, stops, echo }))
}

/// A chat request's messages in the template's terms; unknown roles and non-text parts are 400s.
pub fn messages(list: &[crate::request::ChatMessage]) -> Result<Vec<Message>, ApiError> {
    if list.is_empty() {
        return Err(ApiError::invalid("messages", "`messages` is empty: send at least one message"));
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let role = match m.role.as_str() {
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                other => {
                    return Err(ApiError::invalid(
                        &format!("messages[{i}].role"),
                        format!("messages[{i}] has role `{other}`: use system, developer, user or assistant"),
                    ))
                }
            };
            let content = match &m.content {
                None => String::new(),
                Some(Content::Text(t)) => t.clone(),
                Some(Content::Parts(parts)) => {
                    let mut s = String::new();
                    for (j, p) in parts.iter().enumerate() {
                        match (p.kind.as_str(), &p.text) {
                            ("text", Some(t)) => s.push_str(t),
                            (kind, _) => {
                                return Err(ApiError::invalid(
                                    &format!("messages[{i}].content[{j}]"),
                                    format!("content part of type `{kind}` is not supported: this model reads text only"),
                                ))
                            }
                        }
                    }
                    s
                }
            };
            Ok(Message::new(role, &content))
        })
        .collect()
}

pub async fn chat(State(state): State<Arc<AppState>>, b: Result<Bytes, BytesRejection>) -> Response {
    let t0 = Instant::now();
    match prepare_chat(&state, b) {
        Ok((picked, p)) => run(picked, Api::Chat, p, t0).await,
        Err(e) => {
            state.metrics.request("/v1/chat/completions", e.status.as_u16(), t0.elapsed());
            e.into_response()
        }
    }
}

fn prepare_chat(root: &Arc<AppState>, b: Result<Bytes, BytesRejection>) -> Result<(Arc<AppState>, Prepared), ApiError> {
    check_generates(root)?;
    let (req, common): (ChatRequest, Common) = parse_two(&body(b)?)?;
    let picked = root.pick(common.model.as_deref())?;
    let state = &*picked;
    let logprobs = match (req.logprobs.unwrap_or(false), req.top_logprobs) {
        (_, Some(k)) if !(0..=20).contains(&k) => {
            return Err(ApiError::invalid("top_logprobs", format!("`top_logprobs` is {k}: it must be between 0 and 20")));
        }
        (false, Some(k)) if k > 0 => return Err(ApiError::invalid("top_logprobs", "`top_logprobs` needs `logprobs: true`")),
        (true, k) => Some(k.unwrap_or(0) as usize),
        (false, _) => None,
    };
    let settings = common.settings(req.max_completion_tokens, logprobs, &state.limits)?;
    let msgs = messages(&req.messages)?;
    let text = state.template.render(&msgs, true)?;
    let prompt = state.tk.encode(&text)?;
    if prompt.is_empty() {
        return Err(ApiError::invalid("messages", "the conversation renders to no tokens"));
    }
    check_length(state, &prompt, "messages")?;
    let mut stops = state.template.stop.clone();
    stops.extend(settings.stops.iter().cloned());
    Ok((picked.clone(), Prepared { prompt, settings, stops, echo: None }))
}

pub async fn not_found() -> Response {
    ApiError::invalid("", "no such route: see GET /v1/models, POST /v1/completions, POST /v1/chat/completions, POST /v1/embeddings")
        .with_status(StatusCode::NOT_FOUND)
        .into_response()
}
