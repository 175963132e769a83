//! `jielong serve`: an OpenAI-compatible HTTP server over a trained checkpoint, a chat page for
//! the browser, and a store for the 👍/👎 feedback people give on replies.
//!
//! The shape: one engine thread owns the model and decodes every live sequence together, one
//! batched forward pass per step (`scheduler`); HTTP tasks on a tokio runtime parse requests,
//! render chat templates, tokenize, and turn token events back into text (`routes`, `drive`,
//! `respond`). They meet at a bounded queue.
//!
//! Adapters (`jielong serve --adapter NAME=DIR`) are served beside the base as models of their
//! own: each has its own copy of the base's weights with the adapter applied, its own engine
//! thread and queue, and its own chat template; the request's `model` picks one.

pub mod drive;
pub mod embeddings;
pub mod error;
pub mod feedback;
pub mod metrics;
pub mod request;
pub mod respond;
pub mod routes;
pub mod scheduler;
pub mod web;

use axum::routing::{get, post};
use axum::Router;
use embeddings::{EmbedQueue, Embedding};
use jielong_core::{Error, Result};
use jielong_models::CausalLm;
use jielong_tokenizer::{ChatTemplate, Tokenizer};
use metrics::Metrics;
use request::Limits;
use scheduler::Scheduler;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Something that holds a causal language model the engine thread can own.
pub trait LanguageModel: Send + 'static {
    fn lm(&self) -> &dyn CausalLm;
}

impl LanguageModel for Box<dyn jielong_models::Model> {
    fn lm(&self) -> &dyn CausalLm {
        self.as_causal_lm().expect("the caller loads causal language models only")
    }
}

/// A causal model shared with the embedding thread (a causal checkpoint serves both).
impl LanguageModel for Arc<Box<dyn jielong_models::Model>> {
    fn lm(&self) -> &dyn CausalLm {
        self.as_causal_lm().expect("the caller loads causal language models only")
    }
}

/// What a server serves: a causal model for chat and completions, an encoder side for
/// embeddings, or both. A route whose side is missing answers 400.
pub struct Served {
    pub lm: Option<Box<dyn LanguageModel>>,
    pub embed: Option<Embedding>,
}

/// An adapter served beside the base (see [`start_with_adapters`]): the base's weights with
/// the adapter applied, under a name of its own.
pub struct Variant {
    /// The name clients pass as `model`.
    pub name: String,
    pub lm: Box<dyn LanguageModel>,
    /// The adapter's chat template (its own, or the base's when it has none).
    pub template: ChatTemplate,
    /// A hash of the adapter's weights, stored with each feedback row.
    pub checkpoint_hash: String,
}

/// Any `CausalLm` by value (tests, the n-gram model).
pub struct Owned<M: CausalLm + 'static>(pub M);

impl<M: CausalLm + 'static> LanguageModel for Owned<M> {
    fn lm(&self) -> &dyn CausalLm {
        &self.0
    }
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub host: String,
    pub port: u16,
    pub api_key: Option<String>,
    /// Sequences decoded together.
    pub parallel: usize,
    /// Sequences that may wait for a slot before requests get 429.
    pub queue: usize,
    pub limits: Limits,
    pub max_body_bytes: usize,
    /// The name clients pass as `model`.
    pub model_id: String,
    /// A hash of the weights, stored with each feedback row.
    pub checkpoint_hash: String,
    /// The SQLite file for feedback (None: the feedback routes answer 404).
    pub feedback_db: Option<PathBuf>,
    /// On shutdown, live streams get this long to finish before they are cut.
    pub grace: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            api_key: None,
            parallel: 16,
            queue: 64,
            limits: Limits { max_n: 8, max_tokens: 4096, default_max_tokens: 256, max_beams: 8 },
            max_body_bytes: 4 << 20,
            model_id: "jielong".into(),
            checkpoint_hash: String::new(),
            feedback_db: None,
            grace: Duration::from_secs(5),
        }
    }
}

/// What every HTTP task shares.
pub struct AppState {
    pub tk: Arc<Tokenizer>,
    pub template: ChatTemplate,
    pub model_id: String,
    pub checkpoint_hash: String,
    pub max_seq_len: usize,
    pub limits: Limits,
    pub api_key: Option<String>,
    pub sched: Arc<Scheduler>,
    pub metrics: Arc<Metrics>,
    /// One store for the base and its adapters (rows name the model that wrote the reply).
    pub feedback: Option<Arc<Mutex<feedback::Store>>>,
    /// Byte-level tokenizers: piece characters → bytes (for `logprobs` bytes).
    pub byte_table: Option<HashMap<char, u8>>,
    pub created: u64,
    /// Whether a causal model serves chat and completions.
    pub generates: bool,
    /// The embedding thread's queue, when the model can embed.
    pub embed: Option<EmbedQueue>,
    /// For an adapter: the name of the base it sits on.
    pub parent: Option<String>,
    /// On the base's state: the adapters served beside it, each with its own engine.
    pub adapters: Vec<Arc<AppState>>,
}

impl AppState {
    /// The model a request names: absent or empty is the base, else the base or one of its
    /// adapters by name; anything else is a 404 `model_not_found`.
    pub fn pick(self: &Arc<Self>, model: Option<&str>) -> std::result::Result<Arc<AppState>, error::ApiError> {
        match model {
            None | Some("") => Ok(self.clone()),
            Some(m) if m == self.model_id => Ok(self.clone()),
            Some(m) => self.adapters.iter().find(|a| a.model_id == m).cloned().ok_or_else(|| {
                let names: Vec<&str> = std::iter::once(self.model_id.as_str()).chain(self.adapters.iter().map(|a| a.model_id.as_str())).collect();
                error::ApiError::model_not_found(m, &names.join("`, `"))
            }),
        }
    }

    /// Every model served: the base, then its adapters.
    pub fn all(self: &Arc<Self>) -> Vec<Arc<AppState>> {
        std::iter::once(self.clone()).chain(self.adapters.iter().cloned()).collect()
    }

    pub fn fingerprint(&self) -> String {
        format!("jielong-{}", &self.checkpoint_hash[..self.checkpoint_hash.len().min(12)])
    }
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    stop: Arc<tokio::sync::Notify>,
    http: Option<std::thread::JoinHandle<()>>,
    engines: Vec<std::thread::JoinHandle<()>>,
    /// The base model's counters (each adapter has its own; `/metrics` shows all).
    pub metrics: Arc<Metrics>,
}

impl Server {
    /// Begin a graceful shutdown (as Ctrl-C does).
    pub fn stop(&self) {
        self.stop.notify_one();
    }

    /// Wait until the server has shut down.
    pub fn join(mut self) {
        if let Some(h) = self.http.take() {
            let _ = h.join();
        }
        for h in self.engines.drain(..) {
            let _ = h.join();
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The router over a state (exposed for tests that want no socket).
pub fn router(state: Arc<AppState>, max_body: usize) -> Router {
    let api = Router::new()
        .route("/v1/models", get(routes::models))
        .route("/v1/completions", post(routes::completions))
        .route("/v1/chat/completions", post(routes::chat))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/v1/feedback", post(feedback::rate).get(feedback::list))
        .route("/v1/feedback/compare", post(feedback::compare))
        .layer(axum::middleware::from_fn_with_state(state.clone(), routes::auth));
    Router::new()
        .route("/", get(web::index))
        .route("/app.js", get(web::script))
        .route("/style.css", get(web::style))
        .route("/health", get(routes::health))
        .route("/metrics", get(routes::metrics))
        .merge(api)
        .fallback(routes::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Start the engine thread and the HTTP server; returns once the socket is bound. With
/// `signals`, Ctrl-C and SIGTERM begin a graceful shutdown.
pub fn start(model: Box<dyn LanguageModel>, tk: Tokenizer, template: ChatTemplate, cfg: ServeConfig, signals: bool) -> Result<Server> {
    start_served(Served { lm: Some(model), embed: None }, tk, template, cfg, signals)
}

/// [`start`] for a causal model, an encoder, or both (see [`Served`]).
pub fn start_served(served: Served, tk: Tokenizer, template: ChatTemplate, cfg: ServeConfig, signals: bool) -> Result<Server> {
    start_with_adapters(served, Vec::new(), tk, template, cfg, signals)
}

fn engine_thread(name: &str, model: Box<dyn LanguageModel>, vocab_limit: usize, sched: Arc<Scheduler>, grace: Duration) -> Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || scheduler::run(model.lm(), vocab_limit, &sched, grace))
        .map_err(|e| Error::input(format!("cannot start the engine thread: {e}")))
}

/// [`start_served`] with adapters served beside the base causal model: a request whose
/// `model` is an adapter's name is decoded by that adapter's engine. Names must differ from
/// each other and from `cfg.model_id`.
pub fn start_with_adapters(served: Served, adapters: Vec<Variant>, tk: Tokenizer, template: ChatTemplate, cfg: ServeConfig, signals: bool) -> Result<Server> {
    if served.lm.is_none() && served.embed.is_none() {
        return Err(Error::input("nothing to serve: the model neither generates text nor embeds"));
    }
    if !adapters.is_empty() && served.lm.is_none() {
        return Err(Error::input("adapters apply to a causal language model; this checkpoint only embeds"));
    }
    let mut names = vec![cfg.model_id.as_str()];
    for v in &adapters {
        if v.name.is_empty() {
            return Err(Error::input("an adapter's name is empty: pass --adapter NAME=DIR"));
        }
        if v.name == cfg.model_id {
            return Err(Error::input(format!("the adapter name `{}` is the base model's name: pick another NAME in --adapter NAME=DIR (or --model-name for the base)", v.name)));
        }
        if names.contains(&v.name.as_str()) {
            return Err(Error::input(format!("two adapters are named `{}`: give each its own NAME in --adapter NAME=DIR", v.name)));
        }
        names.push(&v.name);
    }
    if !is_loopback(&cfg.host) && cfg.api_key.is_none() {
        eprintln!(
            "warning: serving on {} without --api-key: anyone who can reach this address can use the model and write feedback",
            cfg.host
        );
    }
    let metrics = Arc::new(Metrics::default());
    let sched = Arc::new(Scheduler::new(cfg.parallel, cfg.queue, metrics.clone()));
    let feedback = match &cfg.feedback_db {
        Some(p) => Some(Arc::new(Mutex::new(feedback::Store::open(p)?))),
        None => None,
    };
    let vocab_limit = tk.vocab_size();
    for (name, model) in served.lm.iter().map(|m| (cfg.model_id.as_str(), m)).chain(adapters.iter().map(|v| (v.name.as_str(), &v.lm))) {
        if model.lm().vocab_size() < vocab_limit {
            return Err(Error::input(format!(
                "the tokenizer has {vocab_limit} ids but the model `{name}` only {}: they do not belong together",
                model.lm().vocab_size()
            )));
        }
    }
    let tk = Arc::new(tk);
    let (max_seq_len, embed) = match served.embed {
        Some(e) => {
            let len = e.model.encoder().max_seq_len();
            (len, Some(EmbedQueue::start(e, tk.clone(), cfg.queue)?))
        }
        None => (0, None),
    };
    let max_seq_len = served.lm.as_ref().map_or(max_seq_len, |m| m.lm().max_seq_len());
    let byte_table = tk.is_byte_level().then(jielong_tokenizer::byte_level::char_to_byte);
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut engines = Vec::new();
    let mut adapter_states = Vec::new();
    let mut scheds = vec![sched.clone()];
    for v in adapters {
        let m = Arc::new(Metrics::default());
        let s = Arc::new(Scheduler::new(cfg.parallel, cfg.queue, m.clone()));
        adapter_states.push(Arc::new(AppState {
            tk: tk.clone(),
            template: v.template,
            model_id: v.name.clone(),
            checkpoint_hash: v.checkpoint_hash,
            max_seq_len: v.lm.lm().max_seq_len(),
            limits: cfg.limits.clone(),
            api_key: cfg.api_key.clone(),
            sched: s.clone(),
            metrics: m,
            feedback: feedback.clone(),
            byte_table: byte_table.clone(),
            created,
            generates: true,
            embed: None,
            parent: Some(cfg.model_id.clone()),
            adapters: Vec::new(),
        }));
        engines.push(engine_thread(&format!("jielong-engine-{}", v.name), v.lm, vocab_limit, s.clone(), cfg.grace)?);
        scheds.push(s);
    }
    let state = Arc::new(AppState {
        tk,
        template,
        model_id: cfg.model_id.clone(),
        checkpoint_hash: cfg.checkpoint_hash.clone(),
        max_seq_len,
        limits: cfg.limits.clone(),
        api_key: cfg.api_key.clone(),
        sched: sched.clone(),
        metrics: metrics.clone(),
        feedback,
        byte_table,
        created,
        generates: served.lm.is_some(),
        embed,
        parent: None,
        adapters: adapter_states,
    });

    if let Some(model) = served.lm {
        engines.insert(0, engine_thread("jielong-engine", model, vocab_limit, sched.clone(), cfg.grace)?);
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::input(format!("cannot start the async runtime: {e}")))?;
    let addr_text = format!("{}:{}", cfg.host, cfg.port);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(&addr_text))
        .map_err(|e| Error::input(format!("cannot listen on {addr_text}: {e}; pick another --port or --host")))?;
    let addr = listener.local_addr().map_err(|e| Error::input(format!("{addr_text}: {e}")))?;
    let stop = Arc::new(tokio::sync::Notify::new());
    let app = router(state, cfg.max_body_bytes);
    let stop2 = stop.clone();
    let http = std::thread::Builder::new()
        .name("jielong-http".into())
        .spawn(move || {
            rt.block_on(async move {
                let shutdown = async move {
                    let term = async {
                        #[cfg(unix)]
                        {
                            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                                Ok(mut s) => {
                                    s.recv().await;
                                }
                                Err(_) => std::future::pending::<()>().await,
                            }
                        }
                        #[cfg(not(unix))]
                        std::future::pending::<()>().await
                    };
                    if signals {
                        tokio::select! {
                            _ = stop2.notified() => {}
                            _ = tokio::signal::ctrl_c() => { eprintln!("shutting down: finishing live replies (Ctrl-C again to force)"); }
                            _ = term => { eprintln!("SIGTERM: shutting down"); }
                        }
                    } else {
                        stop2.notified().await;
                    }
                    // The engines finish or abort live sequences; their streams then end.
                    for s in &scheds {
                        s.shutdown();
                    }
                };
                let _ = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
            });
            rt.shutdown_timeout(Duration::from_secs(1));
        })
        .map_err(|e| Error::input(format!("cannot start the HTTP thread: {e}")))?;
    Ok(Server { addr, stop, http: Some(http), engines, metrics })
}

/// A short hash of a checkpoint's weights file (sha256, hex), stored with feedback rows so a
/// row always says which weights wrote the reply.
pub fn file_hash(path: &std::path::Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
