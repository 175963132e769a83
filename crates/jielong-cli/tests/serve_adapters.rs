//! `jielong serve --adapter NAME=DIR`: a base and two adapters (LoRA, prefix tuning with a
//! template of its own) trained here on a tiny spine run, served by one process; the request's
//! `model` picks one, and each answers what `jielong generate` answers with the same adapter.

use crate::common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn write_chat(dir: &Path) {
    let lines: Vec<String> = ["step", "model", "words", "guess", "训练", "模型"]
        .iter()
        .cycle()
        .take(24)
        .map(|w| {
            let r: String = w.chars().rev().collect();
            serde_json::json!({"messages": [{"role": "user", "content": w}, {"role": "assistant", "content": r}]}).to_string()
        })
        .collect();
    std::fs::write(dir.join("chat.jsonl"), lines.join("\n") + "\n").unwrap();
    // A template of the prefix-tuning adapter's own, unlike the base's "User: …" lines.
    let qa = "{% for message in messages %}{% if message.role == 'user' %}Q: {{ message.content }}\n{% else %}A: {{ message.content }}{{ eos_token }}\n{% endif %}{% endfor %}{% if add_generation_prompt %}A:{% endif %}";
    std::fs::write(dir.join("qa.jinja"), qa).unwrap();
}

/// The server process; killed when dropped.
struct Serving {
    child: Child,
    addr: String,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, args: &[&str]) -> Serving {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jielong"))
        .args(["serve", "--checkpoint", "run", "--port", "0", "--no-feedback"])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let addr = loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            panic!("serve ended before listening: {seen}");
        };
        seen.push_str(&line);
        seen.push('\n');
        if let Some(rest) = line.trim().strip_prefix("OpenAI API") {
            let url = rest.split_whitespace().next().unwrap();
            break url.trim_start_matches("http://").trim_end_matches("/v1").to_string();
        }
    };
    assert!(seen.contains("adapter        `lora`") && seen.contains("adapter        `soft` · template"), "{seen}");
    // Keep reading stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Serving { child, addr }
}

/// (status, body) of one HTTP/1.1 request; a chunked body is put back together.
fn request(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut rest = &raw[split + 4..];
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        loop {
            let end = rest.windows(2).position(|w| w == b"\r\n").expect("chunk size");
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap().trim(), 16).unwrap();
            rest = &rest[end + 2..];
            if size == 0 {
                break out;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
    } else {
        rest.to_vec()
    };
    (status, String::from_utf8(body).unwrap())
}

fn post(addr: &str, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let (status, text) = request(addr, "POST", path, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

/// What `jielong generate` prints after the (rendered) prompt, greedy.
fn generated(dir: &Path, adapter: Option<&str>, chat: bool, prompt: &str, shown: &str) -> String {
    let mut args = vec!["generate", "--checkpoint", "run", "--prompt", prompt, "--strategy", "greedy", "--max-tokens", "8"];
    if let Some(a) = adapter {
        args.extend(["--adapter", a]);
    }
    if chat {
        args.push("--chat");
    }
    let o = jielong(&args, dir);
    assert_ok(&o);
    let out = String::from_utf8(o.stdout).unwrap();
    out.strip_prefix(shown).and_then(|s| s.strip_suffix('\n')).unwrap_or_else(|| panic!("generate printed {out:?}, not {shown:?} + text")).to_string()
}

#[test]
fn cli_serve_adapters_are_picked_by_the_request_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    spine(d);
    write_chat(d);
    let o = jielong(&["sft", "--checkpoint", "run", "--data", "chat.jsonl", "--regime", "lora", "--lora-rank", "4", "--max-steps", "10", "--out", "lora"], d);
    assert_ok(&o);
    let o = jielong(&["sft", "--checkpoint", "run", "--data", "chat.jsonl", "--regime", "prefix", "--template", "qa.jinja", "--max-steps", "10", "--lr", "0.1", "--out", "soft"], d);
    assert_ok(&o);

    // The references, through `generate` (the library path: load_with_adapter, Engine).
    let prompt = "the model";
    let want_base = generated(d, None, false, prompt, prompt);
    let want_lora = generated(d, Some("lora"), false, prompt, prompt);
    let want_soft = generated(d, Some("soft"), false, prompt, prompt);
    assert!(want_base != want_lora && want_base != want_soft, "the adapters must change the greedy text: {want_base:?} {want_lora:?} {want_soft:?}");
    let want_chat_soft = generated(d, Some("soft"), true, "words", "Q: words\nA:");
    let want_chat_lora = generated(d, Some("lora"), true, "words", "User: words\nAssistant:");

    // One named, one named by its folder.
    let srv = serve(d, &["--adapter", "lora=lora", "--adapter", "soft"]);
    let a = srv.addr.as_str();
    let (status, text) = request(a, "GET", "/v1/models", "");
    assert_eq!(status, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ids: Vec<&str> = v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["run", "lora", "soft"], "{v}");
    assert!(v["data"][0]["parent"].is_null() && v["data"][0]["root"] == "run", "{v}");
    for m in &v["data"].as_array().unwrap()[1..] {
        assert_eq!((m["parent"].as_str(), m["root"].as_str(), m["object"].as_str()), (Some("run"), Some("run"), Some("model")), "{v}");
    }

    let complete = |model: Option<&str>| {
        let mut body = serde_json::json!({"prompt": prompt, "max_tokens": 8, "temperature": 0});
        if let Some(m) = model {
            body["model"] = m.into();
        }
        let (s, v) = post(a, "/v1/completions", body);
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["model"].as_str(), Some(model.filter(|m| !m.is_empty()).unwrap_or("run")), "{v}");
        v["choices"][0]["text"].as_str().unwrap().to_string()
    };
    assert_eq!(complete(Some("run")), want_base);
    assert_eq!(complete(None), want_base, "no `model` is the base");
    assert_eq!(complete(Some("")), want_base, "an empty `model` is the base");
    assert_eq!(complete(Some("lora")), want_lora);
    assert_eq!(complete(Some("soft")), want_soft);

    // Chat renders through the adapter's own template.
    let chat = |model: &str| {
        let (s, v) = post(a, "/v1/chat/completions", serde_json::json!({"model": model, "messages": [{"role": "user", "content": "words"}], "max_tokens": 8, "temperature": 0}));
        assert_eq!(s, 200, "{v}");
        v["choices"][0]["message"]["content"].as_str().unwrap().to_string()
    };
    assert_eq!(chat("soft"), want_chat_soft);
    assert_eq!(chat("lora"), want_chat_lora);

    // Streaming from an adapter: the chunks add up to the same text.
    let (s, text) = request(a, "POST", "/v1/completions", &serde_json::json!({"model": "lora", "prompt": prompt, "max_tokens": 8, "temperature": 0, "stream": true}).to_string());
    assert_eq!(s, 200, "{text}");
    let mut streamed = String::new();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).map(|e| e.strip_prefix("data: ").unwrap()).collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{text}");
    for e in &events[..events.len() - 1] {
        let v: serde_json::Value = serde_json::from_str(e).unwrap();
        assert_eq!(v["model"], "lora", "{v}");
        streamed.push_str(v["choices"][0]["text"].as_str().unwrap_or(""));
    }
    assert_eq!(streamed, want_lora);

    // An unknown model: 404 in OpenAI's shape.
    let (s, v) = post(a, "/v1/chat/completions", serde_json::json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(s, 404, "{v}");
    let e = &v["error"];
    assert_eq!((e["type"].as_str(), e["param"].as_str(), e["code"].as_str()), (Some("invalid_request_error"), Some("model"), Some("model_not_found")), "{v}");
    assert!(e["message"].as_str().unwrap().starts_with("The model `nope` does not exist"), "{v}");

    // Metrics by model: the tokens each engine generated.
    let (_, m) = request(a, "GET", "/metrics", "");
    let tokens = |model: &str| -> f64 {
        let key = format!("jielong_generated_tokens_total{{model=\"{model}\"}} ");
        m.lines().find_map(|l| l.strip_prefix(&key)).unwrap_or_else(|| panic!("no {key} in {m}")).parse().unwrap()
    };
    assert!(tokens("run") > 0.0 && tokens("lora") > 0.0 && tokens("soft") > 0.0, "{m}");
    drop(srv);

    // Bad input: one line, status 2, before anything listens.
    assert_user_error(&jielong(&["serve", "--checkpoint", "run", "--port", "0", "--adapter", "x=corpus"], d), "is not an adapter folder");
    assert_user_error(&jielong(&["serve", "--checkpoint", "run", "--port", "0", "--adapter", "a=lora", "--adapter", "a=soft"], d), "two adapters are named `a`");
    assert_user_error(&jielong(&["serve", "--checkpoint", "run", "--port", "0", "--adapter", "run=lora"], d), "is the base model's name");
    // Another base: the run copied with one weight changed.
    copy_dir(&d.join("run"), &d.join("other"));
    for f in walk(&d.join("other")).into_iter().filter(|p| p.file_name().is_some_and(|n| n == "model.safetensors")) {
        let mut bytes = std::fs::read(&f).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(&f, bytes).unwrap();
    }
    assert_user_error(&jielong(&["serve", "--checkpoint", "other", "--port", "0", "--adapter", "lora"], d), "trained on another base");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}
