//! Chat templates: a conversation (system, user, assistant messages) rendered to the one text a
//! causal model continues. Templates are Jinja, as in Hugging Face `tokenizer_config.json`
//! (`chat_template`, with `messages`, `add_generation_prompt`, `bos_token`, `eos_token`), run by
//! minijinja with Python string methods (`.strip()`, `.startswith()`, …) and `raise_exception`.

use jielong_core::{Error, Result};
use minijinja::{context, Environment};
use std::path::Path;

/// The template for models without one: plain "Role: text" lines, which a base model trained
/// on prose can continue. Generation stops where the model starts the user's next line.
pub const DEFAULT_TEMPLATE: &str = "{% for message in messages %}{{ message.role | capitalize }}: {{ message.content | trim }}\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Self { role: role.into(), content: content.into() }
    }
}

/// ChatML (OpenAI, Qwen): `<|im_start|>role\ncontent<|im_end|>\n`; the turn ends with `<|im_end|>`.
pub const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Llama 3's turn format (without the date preamble of Meta's template): a header per turn,
/// the turn ends with `<|eot_id|>`.
pub const LLAMA3: &str = "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/// jielong's own: the "Role: text" lines of [`DEFAULT_TEMPLATE`], each assistant turn ended by
/// the end-of-text token every jielong tokenizer has (so no token is added).
pub const BUILTIN_SFT: &str = "{% for message in messages %}{{ message.role | capitalize }}: {{ message.content | trim }}{% if message.role == 'assistant' %}{{ eos_token }}{% endif %}{{ '\n' }}{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}";

pub struct ChatTemplate {
    env: Environment<'static>,
    pub bos_token: String,
    pub eos_token: String,
    /// Strings that end the assistant's turn (besides the end-of-text id).
    pub stop: Vec<String>,
    /// Where the template came from, for messages.
    pub origin: String,
    /// The Jinja source.
    pub source: String,
}

/// The template without transformers' `{% generation %}` / `{% endgeneration %}` tags (they
/// mark the assistant's text for `return_assistant_tokens_mask`; jielong finds that text by
/// rendering prefixes, and minijinja has no such tag).
fn strip_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(i) = rest.find("{%") {
        let Some(j) = rest[i..].find("%}") else { break };
        let inner = rest[i + 2..i + j].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        out.push_str(&rest[..i]);
        if inner != "generation" && inner != "endgeneration" {
            out.push_str(&rest[i..i + j + 2]);
        }
        rest = &rest[i + j + 2..];
    }
    out.push_str(rest);
    out
}

impl ChatTemplate {
    pub fn new(source: &str, origin: &str) -> Result<Self> {
        let mut env = Environment::new();
        // As transformers renders them.
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("default delimiters"),
        );
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        minijinja_contrib::add_to_environment(&mut env);
        env.add_function("raise_exception", |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
        });
        env.add_template_owned("chat", strip_generation_tags(source))
            .map_err(|e| Error::input(format!("chat template {origin} does not parse: {e}")))?;
        Ok(Self { env, bos_token: String::new(), eos_token: crate::EOT.into(), stop: Vec::new(), origin: origin.into(), source: source.into() })
    }

    /// A template by name: `chatml`, `llama3` or `builtin` (jielong's "Role: text" lines with
    /// an end-of-text token after each reply).
    pub fn named(name: &str) -> Result<Self> {
        let (src, bos, eos) = match name {
            "chatml" => (CHATML, "", "<|im_end|>"),
            "llama3" => (LLAMA3, "<|begin_of_text|>", "<|eot_id|>"),
            "builtin" => (BUILTIN_SFT, "", crate::EOT),
            _ => return Err(Error::input(format!("unknown chat template `{name}`: use chatml, llama3, builtin or a .jinja / tokenizer_config.json file"))),
        };
        let mut t = Self::new(src, name)?;
        t.bos_token = bos.into();
        t.eos_token = eos.into();
        t.stop = vec![eos.into()];
        if name == "builtin" {
            t.stop.extend(["\nUser:".to_string(), "\nSystem:".to_string()]);
        }
        t.source = src.into();
        Ok(t)
    }

    /// The special tokens the template writes: its bos and eos tokens and every `<|…|>` literal
    /// in its source (the turn markers a tokenizer must hold as single tokens).
    pub fn special_tokens(&self) -> Vec<String> {
        let mut out: Vec<String> = [&self.bos_token, &self.eos_token].into_iter().filter(|t| !t.is_empty()).cloned().collect();
        let mut rest = self.source.as_str();
        while let Some(i) = rest.find("<|") {
            let after = &rest[i + 2..];
            match after.find("|>") {
                Some(j) if j > 0 && !after[..j].contains(|c: char| c.is_whitespace() || c == '\'' || c == '"' || c == '<') => {
                    let tok = format!("<|{}|>", &after[..j]);
                    if !out.contains(&tok) {
                        out.push(tok);
                    }
                    rest = &after[j + 2..];
                }
                _ => rest = after,
            }
        }
        out
    }

    /// `tokenizer_config.json` holding this template (what `for_tokenizer_dir` reads back):
    /// saved beside a fine-tuned checkpoint so that chat, generate --chat and serve use it.
    pub fn to_tokenizer_config(&self) -> serde_json::Value {
        serde_json::json!({ "chat_template": self.source, "bos_token": self.bos_token, "eos_token": self.eos_token })
    }

    /// The built-in template, stopping at the next "User:" line.
    pub fn default_template() -> Self {
        let mut t = Self::new(DEFAULT_TEMPLATE, "(built-in)").expect("the built-in template parses");
        t.stop = vec!["\nUser:".into(), "\nSystem:".into()];
        t
    }

    /// A `.jinja` file, or a Hugging Face `tokenizer_config.json` with a `chat_template`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::input(format!("cannot read chat template {}: {e}", path.display())))?;
        if path.extension().is_some_and(|e| e == "json") {
            Self::from_tokenizer_config(&text, &path.display().to_string())
        } else {
            Self::new(&text, &path.display().to_string())
        }
    }

    /// The template a tokenizer folder carries (its `tokenizer_config.json`), or the built-in one.
    pub fn for_tokenizer_dir(dir: &Path) -> Result<Self> {
        let cfg = dir.join("tokenizer_config.json");
        if cfg.is_file() {
            let text = std::fs::read_to_string(&cfg).map_err(|e| Error::io(&cfg, e))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Error::input(format!("{} is not JSON: {e}", cfg.display())))?;
            if v.get("chat_template").is_some() {
                return Self::from_tokenizer_config(&text, &cfg.display().to_string());
            }
        }
        Ok(Self::default_template())
    }

    fn from_tokenizer_config(text: &str, origin: &str) -> Result<Self> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::input(format!("{origin} is not JSON: {e}")))?;
        // A string, or a list of named templates (take "default").
        let source = match v.get("chat_template") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template")?.as_str().map(String::from))
                .ok_or_else(|| Error::input(format!("{origin}: no template named \"default\" in chat_template")))?,
            _ => return Err(Error::input(format!("{origin} has no chat_template string"))),
        };
        let token = |name: &str| -> Option<String> {
            match v.get(name)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Object(o) => o.get("content")?.as_str().map(String::from),
                _ => None,
            }
        };
        let mut t = Self::new(&source, origin)?;
        if let Some(b) = token("bos_token") {
            t.bos_token = b;
        }
        if let Some(e) = token("eos_token") {
            t.stop.push(e.clone());
            t.eos_token = e;
        }
        Ok(t)
    }

    /// The conversation as text; with `add_generation_prompt`, ready for the assistant's reply.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let tmpl = self.env.get_template("chat").expect("added in new()");
        tmpl.render(context! {
            messages => messages
                .iter()
                .map(|m| minijinja::Value::from_pairs([("role", m.role.as_str()), ("content", m.content.as_str())]))
                .collect::<minijinja::Value>(),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
        .map_err(|e| Error::input(format!("chat template {} failed: {e}", self.origin)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv() -> Vec<Message> {
        vec![Message::new("system", "Be brief."), Message::new("user", " 你好 "), Message::new("assistant", "Hi."), Message::new("user", "Again?")]
    }

    #[test]
    fn chat_named_templates_render_and_list_their_turn_tokens() {
        let t = ChatTemplate::named("chatml").unwrap();
        let c = [Message::new("user", "hi"), Message::new("assistant", "yo")];
        assert_eq!(t.render(&c, false).unwrap(), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n");
        assert_eq!(t.special_tokens(), ["<|im_end|>", "<|im_start|>"]);
        let l = ChatTemplate::named("llama3").unwrap();
        assert_eq!(l.render(&c[..1], true).unwrap(), "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
        assert_eq!(l.special_tokens(), ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]);
        let b = ChatTemplate::named("builtin").unwrap();
        assert_eq!(b.render(&c, false).unwrap(), "User: hi\nAssistant: yo<|endoftext|>\n");
        assert!(ChatTemplate::named("alpaca").err().unwrap().to_string().contains("chatml, llama3, builtin"));
        // transformers' generation tags are accepted and ignored.
        let g = ChatTemplate::new("{% for m in messages %}{% generation %}{{ m.content }}{%- endgeneration %}{% endfor %}", "g").unwrap();
        assert_eq!(g.render(&c, false).unwrap(), "hiyo");
        // Saved and read back as a tokenizer_config.json.
        let back = ChatTemplate::from_tokenizer_config(&t.to_tokenizer_config().to_string(), "saved").unwrap();
        assert_eq!(back.render(&c, true).unwrap(), t.render(&c, true).unwrap());
        assert_eq!(back.eos_token, "<|im_end|>");
    }

    #[test]
    fn chat_default_template_renders_role_lines() {
        let t = ChatTemplate::default_template();
        assert_eq!(
            t.render(&conv(), true).unwrap(),
            "System: Be brief.\nUser: 你好\nAssistant: Hi.\nUser: Again?\nAssistant:"
        );
        assert!(!t.render(&conv(), false).unwrap().ends_with("Assistant:"));
    }

    #[test]
    fn chat_hf_style_template_with_python_methods_and_exceptions() {
        // ChatML as HF tokenizer_config.json files write it, using Python-style string methods.
        let cfg = r#"{"bos_token": {"content": "<s>"}, "eos_token": "<|im_end|>",
            "chat_template": "{{ bos_token }}{% for message in messages %}{% if message['role'] not in ['system', 'user', 'assistant'] %}{{ raise_exception('bad role ' + message['role']) }}{% endif %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'].strip() + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"}"#;
        let t = ChatTemplate::from_tokenizer_config(cfg, "test").unwrap();
        let text = t.render(&conv()[..2], true).unwrap();
        assert_eq!(text, "<s><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n");
        assert!(t.stop.contains(&"<|im_end|>".to_string()));
        let err = t.render(&[Message::new("robot", "x")], false).unwrap_err();
        assert!(err.is_user_error() && err.to_string().contains("bad role robot"), "{err}");
        assert!(ChatTemplate::new("{% for %}", "broken").err().expect("must fail").to_string().contains("broken"));
    }
}
