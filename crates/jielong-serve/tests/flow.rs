//! Many clients at once: continuous batching, the bounded queue (429), clients that hang up,
//! graceful shutdown; the feedback routes and their SQLite rows; and a real GPT (random
//! weights) served end to end.

use crate::common::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn flow_concurrent_streams_share_forward_passes() {
    let srv = start(Opts { parallel: 8, delay: Duration::from_millis(2), ..Opts::default() });
    let a = srv.addr;
    let t0 = Instant::now();
    let handles: Vec<_> = (0..6)
        .map(|i| {
            std::thread::spawn(move || {
                let body = json!({"prompt": format!("Go{i}:"), "max_tokens": 30, "temperature": 0, "ignore_eos": true, "stream": i % 2 == 0});
                post(a, "/v1/completions", &body).status
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    let took = t0.elapsed();
    // 6 × 30 tokens decoded one sequence per pass would need ≥ 180 passes of 2 ms.
    let steps = metric(a, "jielong_decode_steps_total");
    assert!(steps < 150.0, "{steps} forward passes for 6 × 30 tokens: the sequences were not batched ({took:?})");
    assert_eq!(metric(a, "jielong_generated_tokens_total"), 180.0);
    srv.stop();
    srv.join();
}

#[test]
fn flow_full_queue_answers_429_and_recovers() {
    let srv = start(Opts { parallel: 1, queue: 1, delay: Duration::from_millis(3), ..Opts::default() });
    let a = srv.addr;
    let long = json!({"prompt": "Go:", "max_tokens": 4000, "ignore_eos": true, "stream": true, "temperature": 0});
    let s1 = open_stream(a, "/v1/completions", &long); // decoding
    let s2 = std::thread::spawn(move || post(a, "/v1/completions", &json!({"prompt": "Go:", "max_tokens": 2, "temperature": 0})));
    eventually("the second request is waiting", || metric(a, "jielong_queue_waiting") == 1.0);
    let r = post(a, "/v1/completions", &json!({"prompt": "Go:", "max_tokens": 2}));
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    drop(s1); // hang up: the slot frees, the waiting request runs
    assert_eq!(s2.join().unwrap().status, 200);
    assert_eq!(post(a, "/v1/completions", &json!({"prompt": "Go:", "max_tokens": 2})).status, 200);
    assert!(metric(a, "jielong_rejected_requests_total") >= 1.0);
    srv.stop();
    srv.join();
}

#[test]
fn flow_a_client_that_hangs_up_stops_costing_compute() {
    let srv = start(Opts { delay: Duration::from_millis(2), ..Opts::default() });
    let a = srv.addr;
    let body = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4000, "ignore_eos": true, "stream": true});
    let s = open_stream(a, "/v1/chat/completions", &body);
    // The stream's first event (the role chunk) can come before the engine admits the job.
    eventually("the sequence is live", || metric(a, "jielong_sequences_live") == 1.0);
    drop(s);
    eventually("the engine dropped the sequence", || metric(a, "jielong_sequences_live") == 0.0);
    assert_eq!(metric(a, "jielong_cancelled_sequences_total"), 1.0);
    let tokens = metric(a, "jielong_generated_tokens_total");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(metric(a, "jielong_generated_tokens_total"), tokens, "tokens still being generated for nobody");
    assert!(tokens < 1000.0, "{tokens}");
    srv.stop();
    srv.join();
}

#[test]
fn flow_shutdown_ends_live_streams_cleanly() {
    let srv = start(Opts { delay: Duration::from_millis(2), ..Opts::default() });
    let a = srv.addr;
    let h = std::thread::spawn(move || {
        post(a, "/v1/completions", &json!({"prompt": "Go:", "max_tokens": 4000, "ignore_eos": true, "stream": true}))
    });
    eventually("the stream is live", || metric(a, "jielong_sequences_live") == 1.0);
    let t0 = Instant::now();
    srv.stop();
    srv.join();
    assert!(t0.elapsed() < Duration::from_secs(5), "shutdown took {:?}", t0.elapsed());
    let r = h.join().unwrap();
    let events = r.events();
    let last: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(last["error"]["message"].as_str().unwrap().contains("shutting down"), "{last}");
}

#[test]
fn flow_feedback_is_stored_with_the_rendered_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fb.sqlite");
    let srv = start(Opts { feedback: Some(db.clone()), ..Opts::default() });
    let a = srv.addr;
    let msgs = json!([{"role": "system", "content": "简短"}, {"role": "user", "content": "你好 <script>alert(1)</script>"}]);
    let r = post(a, "/v1/feedback", &json!({"messages": msgs, "reply": " 好 🙂", "rating": "up", "comment": "nice", "settings": {"temperature": 0.7}}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["id"], 1);
    let r = post(a, "/v1/feedback", &json!({"messages": msgs, "reply": " 不", "rating": "down"}));
    assert_eq!(r.status, 200);
    let r = post(a, "/v1/feedback/compare", &json!({"messages": msgs, "chosen": "A", "rejected": "B"}));
    assert_eq!(r.status, 200);
    for (path, body, param) in [
        ("/v1/feedback", json!({"messages": msgs, "reply": "x", "rating": "meh"}), "rating"),
        ("/v1/feedback", json!({"messages": [{"role": "robot", "content": "x"}], "reply": "x", "rating": "up"}), "messages[0].role"),
        ("/v1/feedback/compare", json!({"messages": msgs, "chosen": "A", "rejected": "A"}), "rejected"),
    ] {
        let r = post(a, path, &body);
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.json()["error"]["param"], param);
    }
    let listed = get(a, "/v1/feedback").json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 3);
    srv.stop();
    srv.join();
    let rows = jielong_serve::feedback::Store::open_existing(&db).unwrap().rows().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].prompt, "System: 简短\nUser: 你好 <script>alert(1)</script>\nAssistant:");
    assert_eq!((rows[0].rating, rows[0].comment.as_deref()), (Some(1), Some("nice")));
    assert_eq!((rows[0].model.as_str(), rows[0].checkpoint_hash.as_str()), ("tiny", "0123456789abcdef"));
    assert!(rows[0].settings.contains("0.7"));
    assert_eq!((rows[2].kind.as_str(), rows[2].reply.as_str(), rows[2].rejected.as_deref()), ("pair", "A", Some("B")));
    // Without a database the routes say how to get one.
    let srv = start(Opts::default());
    let r = post(srv.addr, "/v1/feedback", &json!({"messages": msgs, "reply": "x", "rating": "up"}));
    assert_eq!(r.status, 404);
    assert!(r.text().contains("--feedback-db"));
    srv.stop();
    srv.join();
}

#[test]
fn flow_serves_a_real_gpt() {
    use candle_core::Device;
    use jielong_models::{Gpt, GptConfig};
    let tk = tokenizer();
    let cfg = GptConfig { vocab_size: tk.vocab_size(), n_layer: 2, n_head: 2, n_embd: 32, max_seq_len: 64, dropout: 0.0, ..GptConfig::tiny() };
    let gpt = Gpt::new(&cfg, jielong_nn::ParamStore::new(3).var_builder(&Device::Cpu)).unwrap();
    let scfg = jielong_serve::ServeConfig { port: 0, model_id: "gpt".into(), ..Default::default() };
    let srv = jielong_serve::start(Box::new(jielong_serve::Owned(gpt)), tk, jielong_tokenizer::ChatTemplate::default_template(), scfg, false).unwrap();
    let a = srv.addr;
    let handles: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                post(a, "/v1/chat/completions", &json!({"messages": [{"role": "user", "content": format!("hello {i}")}], "max_tokens": 80, "seed": i, "ignore_eos": true, "stream": i == 0}))
            })
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Greedy decoding through the server equals greedy decoding by the library.
    let v = post(a, "/v1/completions", &json!({"prompt": "the model", "max_tokens": 12, "temperature": 0, "ignore_eos": true})).json();
    assert_eq!(v["usage"]["completion_tokens"], 12);
    let tk = tokenizer();
    let gpt = Gpt::new(&cfg, jielong_nn::ParamStore::new(3).var_builder(&Device::Cpu)).unwrap();
    let engine = jielong_generate::Engine::new(&gpt, &Device::Cpu).with_vocab_limit(tk.vocab_size());
    let prompt = tk.encode("the model").unwrap();
    let seq = engine.sequence(prompt.clone()).unwrap();
    let chain = jielong_generate::SamplingConfig::greedy().build(&prompt, 0).unwrap();
    let opts = jielong_generate::GenOptions { max_tokens: 12, stop_ids: vec![] };
    let out = jielong_generate::generate(&engine, vec![seq], &mut [chain], &opts, &mut |_, _, _| true).unwrap();
    let mut st = jielong_generate::StreamText::new(&tk, &prompt, &[]);
    let mut text = String::new();
    for &id in out[0].tokens() {
        text.push_str(&st.push(id).unwrap());
    }
    text.push_str(&st.finish().unwrap());
    assert_eq!(v["choices"][0]["text"], text);
    srv.stop();
    srv.join();
}
