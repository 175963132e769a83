//! The two request bodies (`/v1/completions`, `/v1/chat/completions`) as OpenAI defines them,
//! plus jielong's own sampler fields (`top_k`, `min_p`, `repetition_penalty`, `ignore_eos`,
//! `beams`),
//! and their validation into the settings one decoding job needs.
//!
//! Bodies are parsed by hand from bytes (not with axum's `Json` extractor) so that every
//! failure, malformed JSON, invalid UTF-8 or a field of the wrong type, comes back as an
//! OpenAI-shaped 400 that names the field.

use crate::error::ApiError;
use jielong_generate::SamplingConfig;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// A string or a list of strings (`stop`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// `prompt` of a completion: text, one text in a list, or token ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Ids(Vec<u32>),
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// Fields both endpoints share.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Common {
    pub model: Option<String>,
    pub n: Option<i64>,
    pub stop: Option<OneOrMany>,
    pub seed: Option<i64>,
    pub max_tokens: Option<i64>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    // jielong's own
    pub top_k: Option<i64>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub ignore_eos: Option<bool>,
    /// Beam search with this many beams instead of sampling (1 = sampling).
    pub beams: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    pub prompt: Prompt,
    /// The legacy API's number of alternatives per token (0–5).
    pub logprobs: Option<i64>,
    pub echo: Option<bool>,
}

/// `content` of a chat message: a string, or a list of parts of which only text is supported.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Part {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: Option<Content>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub max_completion_tokens: Option<i64>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<i64>,
}

/// Parse a JSON body; every failure is a 400 naming the field where serde could.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    typed(&parse_value(body)?)
}

/// A request body's fields, as the shared `Common` and the endpoint's own (serde's `flatten`
/// would lose the name of a field of the wrong type, so the object is read twice instead).
pub fn parse_two<A: DeserializeOwned, B: DeserializeOwned>(body: &[u8]) -> Result<(A, B), ApiError> {
    let v = parse_value(body)?;
    Ok((typed(&v)?, typed(&v)?))
}

/// The body as a JSON object.
pub fn parse_value(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::invalid("", format!("the request body is not valid UTF-8 ({e}); send JSON encoded as UTF-8")))?;
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        ApiError::invalid("", format!("We could not parse the JSON body of your request ({e}); send a JSON object"))
    })?;
    if !value.is_object() {
        return Err(ApiError::invalid("", "the request body must be a JSON object"));
    }
    Ok(value)
}

pub fn typed<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, ApiError> {
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(value, &mut track);
    T::deserialize(de).map_err(|e| {
        let path = track.path().to_string();
        let param = if path == "." { String::new() } else { path };
        let msg = e.to_string();
        // untagged enums say "data did not match any variant": say what the field takes.
        let hint = match param.split('.').next().unwrap_or("") {
            "prompt" => ": `prompt` takes a string, a list with one string, or a list of token ids",
            "stop" => ": `stop` takes a string or a list of strings",
            "messages" => ": each message is {\"role\": ..., \"content\": \"text\"}",
            _ => "",
        };
        let field = if param.is_empty() { "the request".to_string() } else { format!("`{param}`") };
        ApiError::invalid(&param, format!("{field} is invalid: {msg}{hint}"))
    })
}

/// Limits the server enforces on every request.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_n: usize,
    /// Most tokens one reply may ask for (`max_tokens` above this is a 400).
    pub max_tokens: usize,
    /// `max_tokens` when the request gives none.
    pub default_max_tokens: usize,
    /// Most beams one request may ask for (`beams`); each beam is a sequence of the batch.
    pub max_beams: usize,
}

/// A request's validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub n: usize,
    pub max_tokens: usize,
    pub stops: Vec<String>,
    pub sampling: SamplingConfig,
    /// Whether `seed` was given (otherwise a fresh one was drawn).
    pub seed: u64,
    pub stream: bool,
    pub include_usage: bool,
    pub ignore_eos: bool,
    /// Alternatives per token, when log-probabilities were asked for.
    pub logprobs: Option<usize>,
    /// Beams of a beam search (1: sample); the `n` best hypotheses become the choices.
    pub beams: usize,
}

impl Common {
    /// Check every field against OpenAI's ranges and the server's limits.
    pub fn settings(&self, max_tokens: Option<i64>, logprobs: Option<usize>, limits: &Limits) -> Result<Settings, ApiError> {
        let n = self.n.unwrap_or(1);
        if n < 1 || n as usize > limits.max_n {
            return Err(ApiError::invalid("n", format!("`n` is {n}: it must be between 1 and {} (the server's --max-n)", limits.max_n)));
        }
        let max_tokens = match max_tokens.or(self.max_tokens) {
            None => limits.default_max_tokens,
            Some(m) if m < 1 => {
                return Err(ApiError::invalid("max_tokens", format!("`max_tokens` is {m}: it must be at least 1")));
            }
            Some(m) if m as usize > limits.max_tokens => {
                return Err(ApiError::invalid(
                    "max_tokens",
                    format!("`max_tokens` is {m}: this server allows at most {} (its --max-tokens)", limits.max_tokens),
                ));
            }
            Some(m) => m as usize,
        };
        let stops = match &self.stop {
            None => Vec::new(),
            Some(OneOrMany::One(s)) => vec![s.clone()],
            Some(OneOrMany::Many(v)) => v.clone(),
        };
        if stops.len() > 4 {
            return Err(ApiError::invalid("stop", format!("`stop` has {} strings: at most 4 are allowed", stops.len())));
        }
        let stops: Vec<String> = stops.into_iter().filter(|s| !s.is_empty()).collect();
        let temperature = self.temperature.unwrap_or(1.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::invalid("temperature", format!("`temperature` is {temperature}: it must be between 0 and 2")));
        }
        let top_p = self.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::invalid("top_p", format!("`top_p` is {top_p}: it must be in (0, 1]")));
        }
        for (name, v) in [("frequency_penalty", self.frequency_penalty), ("presence_penalty", self.presence_penalty)] {
            if let Some(v) = v {
                if !(-2.0..=2.0).contains(&v) {
                    return Err(ApiError::invalid(name, format!("`{name}` is {v}: it must be between -2 and 2")));
                }
            }
        }
        let top_k = self.top_k.unwrap_or(0);
        if top_k < 0 {
            return Err(ApiError::invalid("top_k", format!("`top_k` is {top_k}: it must be 0 (off) or positive")));
        }
        let min_p = self.min_p.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&min_p) {
            return Err(ApiError::invalid("min_p", format!("`min_p` is {min_p}: it must be in [0, 1]")));
        }
        let repetition_penalty = self.repetition_penalty.unwrap_or(1.0);
        if !(repetition_penalty > 0.0 && repetition_penalty.is_finite()) {
            return Err(ApiError::invalid("repetition_penalty", format!("`repetition_penalty` is {repetition_penalty}: it must be positive")));
        }
        let beams = self.beams.unwrap_or(1);
        if beams < 1 || beams as usize > limits.max_beams {
            return Err(ApiError::invalid(
                "beams",
                format!("`beams` is {beams}: it must be between 1 (sampling) and {} (the server's --max-beams)", limits.max_beams),
            ));
        }
        if beams > 1 && n > beams {
            return Err(ApiError::invalid("n", format!("`n` is {n} but `beams` is {beams}: beam search returns at most one choice per beam")));
        }
        if beams > 1 && logprobs.is_some() {
            return Err(ApiError::invalid("logprobs", "log-probabilities are not reported for beam search: drop `logprobs` or `beams`"));
        }
        let seed = match self.seed {
            Some(s) => s as u64,
            None => {
                let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                jielong_core::Rng::derive(t.as_nanos() as u64, &[std::process::id() as u64]).next_u64()
            }
        };
        // OpenAI's defaults: the model's own distribution, nothing cut; temperature 0 is greedy.
        let sampling = SamplingConfig {
            sample: temperature > 0.0,
            temperature,
            top_k: top_k as usize,
            top_p,
            min_p,
            typical_p: 1.0,
            repetition_penalty,
            presence_penalty: self.presence_penalty.unwrap_or(0.0),
            frequency_penalty: self.frequency_penalty.unwrap_or(0.0),
            penalty_last_n: 0,
            no_repeat_ngram: 0,
            seed,
            ..SamplingConfig::default()
        };
        sampling.validate().map_err(|e| ApiError::invalid("", e.to_string()))?;
        Ok(Settings {
            n: n as usize,
            max_tokens,
            stops,
            sampling,
            seed,
            stream: self.stream.unwrap_or(false),
            include_usage: self.stream_options.as_ref().is_some_and(|o| o.include_usage),
            ignore_eos: self.ignore_eos.unwrap_or(false),
            logprobs,
            beams: beams as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { max_n: 4, max_tokens: 100, default_max_tokens: 16, max_beams: 4 }
    }

    #[test]
    fn request_parse_names_the_wrong_field() {
        let e = parse::<Common>(br#"{"messages": [], "temperature": "hot"}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("temperature"), "{}", e.message);
        let e = parse::<ChatRequest>(b"{\"messages\": [").unwrap_err();
        assert!(e.message.contains("parse the JSON"), "{}", e.message);
        let e = parse::<ChatRequest>(b"{\"messages\": [], \"x\": \"\xff\"}").unwrap_err();
        assert!(e.message.contains("UTF-8"), "{}", e.message);
        let e = parse::<CompletionRequest>(br#"{"prompt": {"a": 1}}"#).unwrap_err();
        assert!(e.message.contains("token ids"), "{}", e.message);
    }

    #[test]
    fn request_settings_enforce_ranges_and_limits() {
        let c = |j: &str| parse::<Common>(j.as_bytes()).unwrap();
        let s = c(r#"{"prompt": "x", "seed": 3}"#).settings(None, None, &limits()).unwrap();
        assert_eq!((s.n, s.max_tokens, s.seed, s.sampling.temperature, s.sampling.top_k), (1, 16, 3, 1.0, 0));
        for (body, param) in [
            (r#"{"prompt": "x", "n": 5}"#, "n"),
            (r#"{"prompt": "x", "max_tokens": -1}"#, "max_tokens"),
            (r#"{"prompt": "x", "max_tokens": 101}"#, "max_tokens"),
            (r#"{"prompt": "x", "temperature": 2.5}"#, "temperature"),
            (r#"{"prompt": "x", "top_p": 0}"#, "top_p"),
            (r#"{"prompt": "x", "presence_penalty": 3}"#, "presence_penalty"),
            (r#"{"prompt": "x", "stop": ["a","b","c","d","e"]}"#, "stop"),
            (r#"{"prompt": "x", "beams": 0}"#, "beams"),
            (r#"{"prompt": "x", "beams": 5}"#, "beams"),
            (r#"{"prompt": "x", "beams": 2, "n": 3}"#, "n"),
        ] {
            let e = c(body).settings(None, None, &limits()).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
        }
    }
}
