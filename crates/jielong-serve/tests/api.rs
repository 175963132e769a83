//! Every route of a real server on a loopback port, answers checked against the scripted
//! model's known reply: non-streaming and streaming (OpenAI's SSE chunks), `n > 1`, stop strings
//! split across tokens, UTF-8 never split inside an event, log-probabilities, usage, beam search
//! (`beams`), and the OpenAI-shaped 4xx errors for bad input and bad keys.

use crate::common::*;
use serde_json::{json, Value};

fn chat_body(extra: Value) -> Value {
    let mut b = json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": 0});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

#[test]
fn api_health_models_metrics_and_page() {
    let srv = start(Opts::default());
    let h = get(srv.addr, "/health");
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["status"], "ok");
    let m = get(srv.addr, "/v1/models").json();
    assert_eq!(m["object"], "list");
    assert_eq!(m["data"][0]["id"], "tiny");
    assert_eq!(m["data"][0]["context_length"], 256);
    let page = get(srv.addr, "/");
    assert_eq!(page.status, 200);
    assert!(page.headers.to_ascii_lowercase().contains("content-security-policy"), "{}", page.headers);
    assert!(page.text().contains("app.js"));
    let js = get(srv.addr, "/app.js");
    assert_eq!(js.status, 200);
    // Model text reaches the page only as text: no HTML sinks anywhere in the script, and the
    // CSP forbids inline scripts besides.
    for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
        assert!(!js.text().contains(sink), "app.js uses {sink}");
    }
    assert!(js.text().contains("textContent"));
    assert_eq!(get(srv.addr, "/style.css").status, 200);
    let nf = get(srv.addr, "/v2/nothing");
    assert_eq!(nf.status, 404);
    assert!(nf.json()["error"]["message"].as_str().unwrap().contains("no such route"));
    post(srv.addr, "/v1/chat/completions", &chat_body(json!({})));
    let text = get(srv.addr, "/metrics").text();
    assert!(text.contains("jielong_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 1"), "{text}");
    assert!(text.contains("# TYPE jielong_time_to_first_token_seconds histogram"), "{text}");
    assert!(metric(srv.addr, "jielong_generated_tokens_total") > 0.0);
    srv.stop();
    srv.join();
}

#[test]
fn api_chat_completion_returns_the_reply_up_to_the_template_stop() {
    let srv = start(Opts::default());
    let r = post(srv.addr, "/v1/chat/completions", &chat_body(json!({"logprobs": true, "top_logprobs": 2})));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["model"], "tiny");
    let c = &v["choices"][0];
    assert_eq!(c["message"]["role"], "assistant");
    assert_eq!(c["message"]["content"], REPLY);
    assert_eq!(c["finish_reason"], "stop");
    let lp = c["logprobs"]["content"].as_array().unwrap();
    let tk = tokenizer();
    let n_reply = tk.encode(REPLY).unwrap().len();
    assert_eq!(lp.len(), n_reply);
    // Each token's bytes, joined, are the reply's bytes (Chinese split across byte tokens).
    let bytes: Vec<u8> = lp.iter().flat_map(|t| t["bytes"].as_array().unwrap().iter().map(|b| b.as_u64().unwrap() as u8)).collect();
    assert_eq!(bytes, REPLY.as_bytes());
    // The scripted distribution: logits 14 and 7 among zeros.
    let z = 14f64.exp() + 7f64.exp() + (tk.vocab_size() - 2) as f64;
    let want = (14f64.exp() / z).ln();
    assert!((lp[0]["logprob"].as_f64().unwrap() - want).abs() < 1e-4, "{}", lp[0]);
    assert_eq!(lp[0]["top_logprobs"].as_array().unwrap().len(), 2);
    assert!((lp[0]["top_logprobs"][1]["logprob"].as_f64().unwrap() - (7f64.exp() / z).ln()).abs() < 1e-4);
    let u = &v["usage"];
    let prompt = tk.encode("User: hi\nAssistant:").unwrap().len() as u64;
    assert_eq!(u["prompt_tokens"].as_u64().unwrap(), prompt);
    assert_eq!(u["completion_tokens"].as_u64().unwrap(), n_reply as u64);
    assert_eq!(u["total_tokens"].as_u64().unwrap(), prompt + n_reply as u64);
    srv.stop();
    srv.join();
}

#[test]
fn api_chat_stream_is_openai_sse_and_never_splits_a_character() {
    let srv = start(Opts::default());
    let r = post(srv.addr, "/v1/chat/completions", &chat_body(json!({"stream": true, "stream_options": {"include_usage": true}})));
    assert_eq!(r.status, 200);
    assert!(r.headers.to_ascii_lowercase().contains("content-type: text/event-stream"), "{}", r.headers);
    let events = r.events();
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let mut text = String::new();
    let mut pieces = 0;
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        if let Some(t) = c["choices"][0]["delta"]["content"].as_str() {
            assert!(!t.contains('\u{FFFD}'), "a split character: {t:?}");
            text.push_str(t);
            pieces += 1;
        }
    }
    assert_eq!(text, REPLY);
    assert!(pieces > 5, "streamed in pieces: {pieces}");
    // The last content chunk finishes; then the usage chunk with no choices.
    let fin = &chunks[chunks.len() - 2];
    assert_eq!(fin["choices"][0]["finish_reason"], "stop");
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert!(chunks[0]["usage"].is_null());
    srv.stop();
    srv.join();
}

#[test]
fn api_completions_stop_strings_split_across_tokens_n_and_echo() {
    let srv = start(Opts::default());
    let tk = tokenizer();
    // "END" is several tokens in this vocabulary, and the stop string spans their seams.
    let ids = tk.encode(" END").unwrap();
    assert!(ids.len() >= 2, "the test needs a stop string made of several tokens: {ids:?}");
    for stream in [false, true] {
        let r = post(
            srv.addr,
            "/v1/completions",
            &json!({"prompt": "Go:", "max_tokens": 60, "temperature": 0, "stop": ["ND of", "zzz"], "n": 3, "stream": stream}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let mut texts = vec![String::new(); 3];
        let mut finish = vec![Value::Null; 3];
        let chunks: Vec<Value> = if stream {
            let ev = r.events();
            assert_eq!(ev.last().unwrap(), "[DONE]");
            ev[..ev.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect()
        } else {
            vec![r.json()]
        };
        for c in &chunks {
            assert_eq!(c["object"], "text_completion");
            for ch in c["choices"].as_array().unwrap() {
                let i = ch["index"].as_u64().unwrap() as usize;
                texts[i].push_str(ch["text"].as_str().unwrap());
                if !ch["finish_reason"].is_null() {
                    finish[i] = ch["finish_reason"].clone();
                }
            }
        }
        for i in 0..3 {
            assert_eq!(texts[i], " 你好, world 🙂! E", "stream={stream} choice {i}");
            assert_eq!(finish[i], "stop");
        }
    }
    let r = post(srv.addr, "/v1/completions", &json!({"prompt": "Go:", "max_tokens": 4, "temperature": 0, "echo": true}));
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let text = v["choices"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("Go:") && text.len() > 3, "{text}");
    assert_eq!(v["usage"]["completion_tokens"], 4);
    srv.stop();
    srv.join();
}

#[test]
fn api_sampling_with_a_seed_is_reproducible() {
    let srv = start(Opts::default());
    let body = json!({"prompt": "Go:", "max_tokens": 20, "temperature": 2.0, "top_k": 5, "min_p": 0.0, "seed": 7,
        "frequency_penalty": 0.5, "presence_penalty": 0.2, "top_p": 0.99});
    let a = post(srv.addr, "/v1/completions", &body).json();
    let b = post(srv.addr, "/v1/completions", &body).json();
    assert_eq!(a["choices"][0]["text"], b["choices"][0]["text"]);
    srv.stop();
    srv.join();
}

/// Text and finish reason of each of `n` choices of a completion, streamed or not.
fn completion_choices(r: &Reply, n: usize, stream: bool) -> (Vec<String>, Vec<Value>) {
    let mut texts = vec![String::new(); n];
    let mut finish = vec![Value::Null; n];
    let chunks: Vec<Value> = if stream {
        let ev = r.events();
        assert_eq!(ev.last().unwrap(), "[DONE]");
        ev[..ev.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect()
    } else {
        vec![r.json()]
    };
    for c in &chunks {
        for ch in c["choices"].as_array().unwrap() {
            let i = ch["index"].as_u64().unwrap() as usize;
            texts[i].push_str(ch["text"].as_str().unwrap());
            if !ch["finish_reason"].is_null() {
                finish[i] = ch["finish_reason"].clone();
            }
        }
    }
    (texts, finish)
}

#[test]
fn api_beams_return_the_best_hypotheses_as_choices() {
    let srv = start(Opts::default());
    let a = srv.addr;
    // Beam search ignores the sampler: a high temperature changes nothing. The best hypothesis
    // is the scripted reply ended by end-of-text; the second differs from it. Streamed, the
    // choices arrive once the search has finished.
    for stream in [false, true] {
        let body = json!({"prompt": "Go:", "max_tokens": 60, "beams": 3, "n": 2, "temperature": 1.8, "seed": 5, "stream": stream});
        let r = post(a, "/v1/completions", &body);
        assert_eq!(r.status, 200, "{}", r.text());
        let (texts, finish) = completion_choices(&r, 2, stream);
        assert_eq!(texts[0], REPLY, "stream={stream}");
        assert_eq!(finish[0], "stop", "stream={stream}");
        assert!(!texts[1].is_empty() && texts[1] != texts[0], "stream={stream}: second hypothesis {:?}", texts[1]);
        assert!(!finish[1].is_null(), "stream={stream}");
    }
    let v = post(a, "/v1/chat/completions", &chat_body(json!({"beams": 2, "temperature": 1.5}))).json();
    assert_eq!(v["choices"][0]["message"]["content"], REPLY, "{v}");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{v}");
    // Limits: at most --max-beams (4 here), n no larger than beams, no log-probabilities.
    for (extra, param) in [
        (json!({"beams": 5}), "beams"),
        (json!({"beams": 0}), "beams"),
        (json!({"beams": 2, "n": 3}), "n"),
        (json!({"beams": 2, "logprobs": true}), "logprobs"),
    ] {
        let (s, e) = error_of(&post(a, "/v1/chat/completions", &chat_body(extra.clone())));
        assert_eq!((s, e["param"].as_str()), (400, Some(param)), "{extra}: {e}");
    }
    srv.stop();
    srv.join();
}

fn error_of(r: &Reply) -> (u16, Value) {
    let v = r.json();
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(v["error"]["type"].is_string(), "{v}");
    (r.status, v["error"].clone())
}

#[test]
fn api_bad_input_gets_openai_shaped_4xx() {
    let srv = start(Opts { max_seq_len: 32, max_body: 64 * 1024, ..Opts::default() });
    let a = srv.addr;
    let raw = |b: &[u8]| send(a, "POST", "/v1/chat/completions", &[("Content-Type", "application/json")], b);
    let (s, e) = error_of(&raw(b"{\"messages\": ["));
    assert_eq!(s, 400);
    assert!(e["message"].as_str().unwrap().contains("JSON"), "{e}");
    let (s, _) = error_of(&raw(b"{\"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\"}]}"));
    assert_eq!(s, 400);
    let (s, e) = error_of(&post(a, "/v1/chat/completions", &chat_body(json!({"temperature": "hot"}))));
    assert_eq!((s, e["param"].as_str()), (400, Some("temperature")), "{e}");
    let (s, e) = error_of(&post(a, "/v1/chat/completions", &chat_body(json!({"model": "gpt-9"}))));
    assert_eq!((s, e["code"].as_str()), (404, Some("model_not_found")), "{e}");
    let (s, e) = error_of(&post(a, "/v1/chat/completions", &chat_body(json!({"n": 50}))));
    assert_eq!((s, e["param"].as_str()), (400, Some("n")), "{e}");
    let (s, e) = error_of(&post(a, "/v1/chat/completions", &chat_body(json!({"max_tokens": -5}))));
    assert_eq!((s, e["param"].as_str()), (400, Some("max_tokens")), "{e}");
    let (s, e) = error_of(&post(a, "/v1/chat/completions", &json!({"messages": [{"role": "wizard", "content": "x"}]})));
    assert_eq!((s, e["param"].as_str()), (400, Some("messages[0].role")), "{e}");
    let long = "Step one two three four five six seven eight nine ten ".repeat(8);
    let (s, e) = error_of(&post(a, "/v1/completions", &json!({"prompt": long})));
    assert_eq!((s, e["code"].as_str()), (400, Some("context_length_exceeded")), "{e}");
    let (s, _) = error_of(&post(a, "/v1/completions", &json!({"prompt": [1, 2, 99999]})));
    assert_eq!(s, 400);
    let (s, _) = error_of(&post(a, "/v1/chat/completions", &json!({"messages": []})));
    assert_eq!(s, 400);
    // A body over the limit (here 64 KiB; 4 MiB by default).
    let big = format!("{{\"prompt\": \"{}\"}}", "a".repeat(200 * 1024));
    let (s, e) = error_of(&send(a, "POST", "/v1/completions", &[("Content-Type", "application/json")], big.as_bytes()));
    assert_eq!(s, 413, "{e}");
    // None of that disturbed the server.
    let ok = post(a, "/v1/chat/completions", &chat_body(json!({"max_tokens": 3})));
    assert_eq!(ok.status, 200);
    srv.stop();
    srv.join();
}

#[test]
fn api_key_is_required_when_set() {
    let srv = start(Opts { api_key: Some("s3cret".into()), ..Opts::default() });
    let a = srv.addr;
    let body = chat_body(json!({"max_tokens": 2})).to_string();
    let (s, e) = error_of(&send(a, "POST", "/v1/chat/completions", &[], body.as_bytes()));
    assert_eq!((s, e["code"].as_str()), (401, Some("invalid_api_key")));
    let (s, _) = error_of(&send(a, "POST", "/v1/chat/completions", &[("Authorization", "Bearer nope")], body.as_bytes()));
    assert_eq!(s, 401);
    let (s, _) = error_of(&send(a, "GET", "/v1/models", &[], b""));
    assert_eq!(s, 401);
    let ok = send(a, "POST", "/v1/chat/completions", &[("Authorization", "Bearer s3cret")], body.as_bytes());
    assert_eq!(ok.status, 200, "{}", ok.text());
    // Health and the page stay open (the page asks for the key itself).
    assert_eq!(get(a, "/health").status, 200);
    assert_eq!(get(a, "/").status, 200);
    srv.stop();
    srv.join();
}
