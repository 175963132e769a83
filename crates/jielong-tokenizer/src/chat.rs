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

pub struct ChatTemplate {
    env: Environment<'static>,
    pub bos_token: String,
    pub eos_token: String,
    /// Strings that end the assistant's turn (besides the end-of-text id).
    pub stop: Vec<String>,
    /// Where the template came from, for messages.
    pub origin: String,
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
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| Error::input(format!("chat template {origin} does not parse: {e}")))?;
        Ok(Self { env, bos_token: String::new(), eos_token: crate::EOT.into(), stop: Vec::new(), origin: origin.into() })
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
