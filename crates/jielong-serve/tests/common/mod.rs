//! Helpers for the HTTP tests: a real server on a free loopback port, a plain HTTP/1.1 client
//! over a TcpStream (so a test can also hang up mid-stream), and a scripted language model.
//!
//! The scripted model is a real `CausalLm` whose next-token distribution is fixed by a script:
//! after any context that ends with the first j tokens of `reply` it puts almost all mass on
//! `reply[j]` (and on end-of-text once the whole reply is there), with a second, much less
//! likely candidate so log-probabilities have alternatives. It lets a test know the exact text
//! a server must send, down to the bytes of a Chinese character split across three tokens.
#![allow(dead_code)]

use candle_core::{Device, Tensor};
use jielong_models::{CausalLm, DecodeState};
use jielong_serve::request::Limits;
use jielong_serve::{Owned, ServeConfig, Server};
use jielong_tokenizer::{ChatTemplate, Tokenizer, TokenizerKind};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, Clone, Default)]
struct Seen(Vec<u32>);

impl DecodeState for Seen {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn rewind(&mut self, len: usize) -> candle_core::Result<usize> {
        self.0.truncate(len);
        Ok(self.0.len())
    }
    fn clear(&mut self) {
        self.0.clear()
    }
    fn fork(&self) -> Box<dyn DecodeState> {
        Box::new(self.clone())
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

pub struct Script {
    pub vocab: usize,
    pub max_seq_len: usize,
    pub reply: Vec<u32>,
    pub eot: u32,
    /// Time one forward pass takes (to make requests last).
    pub delay: Duration,
}

impl Script {
    fn next(&self, seen: &[u32]) -> u32 {
        let j = (0..=self.reply.len()).rev().find(|&j| seen.ends_with(&self.reply[..j])).unwrap_or(0);
        if j == self.reply.len() {
            self.eot
        } else {
            self.reply[j]
        }
    }

    fn row(&self, seen: &[u32]) -> Vec<f32> {
        let mut row = vec![0f32; self.vocab];
        let next = self.next(seen) as usize;
        row[next] = 14.0;
        row[(next + 1) % self.vocab] = 7.0;
        row
    }
}

impl CausalLm for Script {
    fn logits(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let ids: Vec<Vec<u32>> = ids.to_vec2()?;
        let (b, t) = (ids.len(), ids[0].len());
        let mut out = Vec::with_capacity(b * t * self.vocab);
        for seq in &ids {
            for i in 0..t {
                out.extend(self.row(&seq[..=i]));
            }
        }
        Tensor::from_vec(out, (b, t, self.vocab), &Device::Cpu)
    }
    fn loss(&self, _: &Tensor, _: &Tensor, _: jielong_models::ForwardOpts) -> candle_core::Result<Tensor> {
        candle_core::bail!("the scripted model is not trainable")
    }
    fn vocab_size(&self) -> usize {
        self.vocab
    }
    fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }
    fn new_state(&self) -> Box<dyn DecodeState> {
        Box::new(Seen::default())
    }
    fn forward_cached(&self, chunks: &[&[u32]], states: &mut [&mut dyn DecodeState]) -> candle_core::Result<Tensor> {
        std::thread::sleep(self.delay);
        let mut out = Vec::with_capacity(chunks.len() * self.vocab);
        for (chunk, state) in chunks.iter().zip(states.iter_mut()) {
            let seen = jielong_models::state::downcast::<Seen>(&mut **state, "script")?;
            seen.0.extend_from_slice(chunk);
            out.extend(self.row(&seen.0));
        }
        Tensor::from_vec(out, (chunks.len(), self.vocab), &Device::Cpu)
    }
}

/// A byte-level BPE trained on English only: Chinese characters and emoji come out as single
/// bytes, three or four tokens each.
pub fn tokenizer() -> Tokenizer {
    let text: Vec<String> = (0..40)
        .map(|i| format!("Step {i}: the model reads the words so far and guesses the next one. User: Assistant: hello world\n"))
        .collect();
    Tokenizer::train(TokenizerKind::Bpe, 300, text.iter()).unwrap()
}

pub const REPLY: &str = " 你好, world 🙂! END of 接龙 text";

pub struct Opts {
    pub parallel: usize,
    pub queue: usize,
    pub api_key: Option<String>,
    pub delay: Duration,
    pub max_seq_len: usize,
    pub feedback: Option<std::path::PathBuf>,
    pub max_body: usize,
}

impl Default for Opts {
    fn default() -> Self {
        Self { parallel: 4, queue: 8, api_key: None, delay: Duration::ZERO, max_seq_len: 256, feedback: None, max_body: 1 << 20 }
    }
}

pub fn start(o: Opts) -> Server {
    let tk = tokenizer();
    let reply = tk.encode(REPLY).unwrap();
    let model = Script { vocab: tk.vocab_size(), max_seq_len: o.max_seq_len, reply, eot: tk.eot_id().unwrap(), delay: o.delay };
    let cfg = ServeConfig {
        host: "127.0.0.1".into(),
        port: 0,
        api_key: o.api_key,
        parallel: o.parallel,
        queue: o.queue,
        limits: Limits { max_n: 4, max_tokens: 5000, default_max_tokens: 64, max_beams: 4 },
        max_body_bytes: o.max_body,
        model_id: "tiny".into(),
        checkpoint_hash: "0123456789abcdef".into(),
        feedback_db: o.feedback,
        grace: Duration::from_millis(300),
    };
    jielong_serve::start(Box::new(Owned(model)), tk, ChatTemplate::default_template(), cfg, false).unwrap()
}

pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }
    /// The `data:` payloads of a server-sent event stream.
    pub fn events(&self) -> Vec<String> {
        let text = self.text();
        assert!(text.ends_with("\n\n"), "a stream ends with a blank line: {text:?}");
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| e.strip_prefix("data: ").unwrap_or_else(|| panic!("not an SSE data line: {e:?}")).to_string())
            .collect()
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap().trim(), 16).unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

pub fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response head");
    let headers = String::from_utf8(raw[..split].to_vec()).unwrap();
    let status: u16 = headers.split(' ').nth(1).unwrap().parse().unwrap();
    let rest = &raw[split + 4..];
    let body = if headers.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(rest) } else { rest.to_vec() };
    Reply { status, headers, body }
}

pub fn post(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Reply {
    send(addr, "POST", path, &[("Content-Type", "application/json")], body.to_string().as_bytes())
}

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, "GET", path, &[], b"")
}

/// Open a streaming request and return the socket once the first bytes of the body arrived.
pub fn open_stream(addr: SocketAddr, path: &str, body: &serde_json::Value) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.to_string();
    let head = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("data: ") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the stream closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    s
}

/// The value of a metric line `name value` in Prometheus text.
pub fn metric(addr: SocketAddr, name: &str) -> f64 {
    let text = get(addr, "/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).map(|v| v.parse().unwrap()))
        .unwrap_or_else(|| panic!("no metric {name} in {text}"))
}

/// Wait until `f` holds (or fail after a few seconds).
pub fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..300 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for: {what}");
}
