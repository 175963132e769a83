//! Adapters served beside the base (`start_with_adapters`): scripted models that reply
//! differently, so a test knows which engine answered; the adapter's own chat template; feedback
//! rows that name the model; names that clash refused.

use crate::common::*;
use jielong_serve::{Owned, ServeConfig, Served, Server, Variant};
use jielong_tokenizer::ChatTemplate;
use serde_json::json;
use std::time::Duration;

const AD_REPLY: &str = " the model guesses";
const QA: &str = "{% for m in messages %}Q: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}A:{% endif %}";

fn script(reply: &str) -> Script {
    let tk = tokenizer();
    Script { vocab: tk.vocab_size(), max_seq_len: 256, reply: tk.encode(reply).unwrap(), eot: tk.eot_id().unwrap(), delay: Duration::from_millis(2) }
}

fn variant(name: &str) -> Variant {
    Variant { name: name.into(), lm: Box::new(Owned(script(AD_REPLY))), template: ChatTemplate::new(QA, "qa").unwrap(), checkpoint_hash: "feedbeef".into() }
}

fn start_with(adapters: Vec<Variant>, feedback: Option<std::path::PathBuf>) -> jielong_core::Result<Server> {
    let cfg = ServeConfig { port: 0, model_id: "tiny".into(), checkpoint_hash: "0123456789abcdef".into(), feedback_db: feedback, grace: Duration::from_millis(300), ..ServeConfig::default() };
    let served = Served { lm: Some(Box::new(Owned(script(REPLY)))), embed: None };
    jielong_serve::start_with_adapters(served, adapters, tokenizer(), ChatTemplate::default_template(), cfg, false)
}

#[test]
fn adapters_are_picked_by_model_and_use_their_own_template() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fb.sqlite");
    let srv = start_with(vec![variant("ad")], Some(db.clone())).unwrap();
    let a = srv.addr;
    let models = get(a, "/v1/models").json();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["tiny", "ad"], "{models}");
    assert_eq!((models["data"][1]["parent"].as_str(), models["data"][1]["root"].as_str()), (Some("tiny"), Some("tiny")), "{models}");
    assert_eq!(models["data"][1]["checkpoint_hash"], "feedbeef", "{models}");

    let complete = |model: serde_json::Value| {
        let r = post(a, "/v1/completions", &json!({"model": model, "prompt": "Step 1:", "temperature": 0}));
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        (v["model"].as_str().unwrap().to_string(), v["choices"][0]["text"].as_str().unwrap().to_string())
    };
    assert_eq!(complete(json!("ad")), ("ad".to_string(), AD_REPLY.to_string()));
    assert_eq!(complete(json!("tiny")), ("tiny".to_string(), REPLY.to_string()));
    assert_eq!(complete(json!(null)), ("tiny".to_string(), REPLY.to_string()));
    assert_eq!(complete(json!("")), ("tiny".to_string(), REPLY.to_string()));

    // Chat through the adapter: its template, streamed, while the base serves another request.
    let other = std::thread::spawn(move || complete_base(a));
    let r = post(a, "/v1/chat/completions", &json!({"model": "ad", "messages": [{"role": "user", "content": "hello"}], "stream": true, "stream_options": {"include_usage": true}}));
    assert_eq!(r.status, 200, "{}", r.text());
    let mut text = String::new();
    let mut prompt_tokens = None;
    for e in r.events().iter().filter(|e| *e != "[DONE]") {
        let v: serde_json::Value = serde_json::from_str(e).unwrap();
        assert_eq!(v["model"], "ad", "{v}");
        text.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
        if let Some(p) = v["usage"]["prompt_tokens"].as_u64() {
            prompt_tokens = Some(p as usize);
        }
    }
    assert_eq!(text, AD_REPLY);
    assert_eq!(prompt_tokens, Some(tokenizer().encode("Q: hello\nA:").unwrap().len()));
    assert_eq!(other.join().unwrap(), REPLY);

    let r = post(a, "/v1/completions", &json!({"model": "nope", "prompt": "x"}));
    assert_eq!(r.status, 404, "{}", r.text());
    let e = &r.json()["error"];
    assert_eq!((e["code"].as_str(), e["param"].as_str(), e["type"].as_str()), (Some("model_not_found"), Some("model"), Some("invalid_request_error")), "{e}");
    assert!(e["message"].as_str().unwrap().starts_with("The model `nope` does not exist"), "{e}");
    assert!(get(a, "/metrics").text().contains("jielong_generated_tokens_total{model=\"ad\"}"));

    // Feedback names the model that wrote the reply; an unknown one is a 404.
    let msgs = json!([{"role": "user", "content": "hello"}]);
    assert_eq!(post(a, "/v1/feedback", &json!({"model": "ad", "messages": msgs, "reply": AD_REPLY, "rating": "up"})).status, 200);
    assert_eq!(post(a, "/v1/feedback", &json!({"messages": msgs, "reply": REPLY, "rating": "down"})).status, 200);
    assert_eq!(post(a, "/v1/feedback/compare", &json!({"model": "nope", "messages": msgs, "chosen": "a", "rejected": "b"})).status, 404);
    srv.stop();
    srv.join();
    let rows = jielong_serve::feedback::Store::open_existing(&db).unwrap().rows().unwrap();
    let got: Vec<(&str, &str, &str)> = rows.iter().map(|r| (r.model.as_str(), r.checkpoint_hash.as_str(), r.prompt.as_str())).collect();
    assert_eq!(got, [("ad", "feedbeef", "Q: hello\nA:"), ("tiny", "0123456789abcdef", "User: hello\nAssistant:")]);
}

fn complete_base(a: std::net::SocketAddr) -> String {
    let r = post(a, "/v1/completions", &json!({"prompt": "Step 1:", "temperature": 0}));
    r.json()["choices"][0]["text"].as_str().unwrap().to_string()
}

#[test]
fn adapter_names_that_clash_are_refused() {
    let err = |adapters: Vec<Variant>| start_with(adapters, None).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err(vec![variant("tiny")]).contains("is the base model's name"));
    assert!(err(vec![variant("ad"), variant("ad")]).contains("two adapters are named `ad`"));
    assert!(err(vec![variant("")]).contains("name is empty"));
}
