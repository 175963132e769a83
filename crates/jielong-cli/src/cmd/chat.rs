//! `jielong chat`: talk to a checkpoint. The conversation is rendered by a chat template
//! (the tokenizer folder's `tokenizer_config.json`, `--template`, or the built-in "Role: text"
//! lines) and continued by the model. The KV cache stays alive between turns: only the tokens
//! after the part of the conversation the model has already read are fed again.

use super::generate::{ModelArgs, SamplingArgs};
use anyhow::Result;
use jielong_core::Error;
use jielong_generate::{generate, GenOptions, StreamText};
use jielong_tokenizer::{ChatTemplate, Message};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// A system prompt that opens the conversation.
    #[arg(long)]
    pub system: Option<String>,
    /// A Jinja chat template file, or a Hugging Face tokenizer_config.json with one.
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// Longest reply, in tokens.
    #[arg(long, default_value_t = 200)]
    pub max_tokens: usize,
    /// Extra text that ends a reply; may be given several times.
    #[arg(long, num_args = 1..)]
    pub stop: Vec<String>,
    /// Greedy replies instead of sampled ones.
    #[arg(long)]
    pub greedy: bool,
    /// After each reply, print tokens/s and how much of the prompt came from the KV cache.
    #[arg(long)]
    pub stats: bool,
}

const HELP: &str = "commands: /reset (forget the conversation), /system TEXT, /history, /quit";

/// Lines typed by the user: a line editor with history on a terminal, plain lines otherwise.
enum Input {
    Editor(Box<rustyline::DefaultEditor>),
    Plain(std::io::StdinLock<'static>),
}

impl Input {
    fn open() -> Self {
        if std::io::stdin().is_terminal() {
            if let Ok(ed) = rustyline::DefaultEditor::new() {
                return Input::Editor(Box::new(ed));
            }
        }
        Input::Plain(std::io::stdin().lock())
    }

    /// The next line, or None at end of input.
    fn read(&mut self) -> Result<Option<String>> {
        match self {
            Input::Editor(ed) => match ed.readline("you> ") {
                Ok(line) => {
                    let _ = ed.add_history_entry(line.as_str());
                    Ok(Some(line))
                }
                Err(rustyline::error::ReadlineError::Eof) | Err(rustyline::error::ReadlineError::Interrupted) => Ok(None),
                Err(e) => Err(e.into()),
            },
            Input::Plain(stdin) => {
                let mut line = String::new();
                if stdin.read_line(&mut line)? == 0 {
                    return Ok(None);
                }
                Ok(Some(line.trim_end_matches(['\n', '\r']).to_string()))
            }
        }
    }
}

pub fn run(a: Args) -> Result<()> {
    let loaded = a.model.load()?;
    let tk = &loaded.tk;
    let engine = loaded.engine(&a.model);
    let template = match &a.template {
        Some(p) => ChatTemplate::load(p)?,
        None => ChatTemplate::for_tokenizer_dir(&loaded.tokenizer_dir)?,
    };
    let cfg = a.sampling.config(!a.greedy);
    cfg.validate()?;
    let mut stops = template.stop.clone();
    stops.extend(a.stop.iter().cloned());
    let stop_ids: Vec<u32> = tk.eot_id().into_iter().collect();

    let mut messages: Vec<Message> = a.system.iter().map(|s| Message::new("system", s)).collect();
    let mut seq: Option<jielong_generate::Sequence> = None;
    let mut input = Input::open();
    let interactive = matches!(input, Input::Editor(_));
    if interactive {
        println!("jielong chat · template {} · context {} tokens · {HELP}", template.origin, engine.max_seq_len());
    }
    let mut turn = 0u64;
    while let Some(line) = input.read()? {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.split_once(' ').map_or((line, ""), |(c, r)| (c, r.trim())) {
            ("/quit" | "/exit", _) => break,
            ("/reset", _) => {
                messages.retain(|m| m.role == "system");
                seq = None;
                println!("(conversation cleared)");
                continue;
            }
            ("/system", text) => {
                messages.retain(|m| m.role != "system");
                if !text.is_empty() {
                    messages.insert(0, Message::new("system", text));
                }
                println!("(system prompt {})", if text.is_empty() { "removed" } else { "set" });
                continue;
            }
            ("/history", _) => {
                for m in &messages {
                    println!("{}: {}", m.role, m.content);
                }
                continue;
            }
            ("/help", _) => {
                println!("{HELP}");
                continue;
            }
            (c, _) if c.starts_with('/') => {
                println!("unknown command {c}; {HELP}");
                continue;
            }
            _ => {}
        }
        messages.push(Message::new("user", line));
        let text = template.render(&messages, true)?;
        let ids = tk.encode(&text)?;
        if ids.len() >= engine.max_seq_len() {
            // Drop the oldest turns (never the system prompt) until the conversation fits.
            let first = messages.iter().position(|m| m.role != "system");
            if messages.len() > 1 && first.is_some_and(|f| f + 1 < messages.len()) {
                messages.remove(first.expect("checked"));
                messages.pop();
                eprintln!("(the conversation outgrew the {}-token context: the oldest turn was dropped; try again)", engine.max_seq_len());
            } else {
                messages.pop();
                eprintln!("{}", Error::input(format!("that message is {} tokens with the template; the context holds {}", ids.len(), engine.max_seq_len())));
            }
            continue;
        }
        let n_prompt = ids.len();
        let (s, reused) = match seq.take() {
            Some(mut s) => {
                let reused = s.reset_to(ids)?;
                (s, reused)
            }
            None => (engine.sequence(ids)?, 0),
        };
        let chain = jielong_generate::SamplingConfig { seed: jielong_core::Rng::derive(cfg.seed, &[turn]).next_u64(), ..cfg.clone() }.build(&s.tokens, 0)?;
        turn += 1;
        let t0 = Instant::now();
        let mut stream = StreamText::new(tk, &s.tokens, &stops);
        let mut out = std::io::stdout().lock();
        if interactive {
            write!(out, "bot> ")?;
        }
        let outs = generate(&engine, vec![s], &mut [chain], &GenOptions { max_tokens: a.max_tokens, stop_ids: stop_ids.clone() }, &mut |_, id, _| {
            if let Ok(piece) = stream.push(id) {
                let _ = out.write_all(piece.as_bytes()).and_then(|_| out.flush());
            }
            !stream.stopped
        })?;
        let rest = stream.finish()?;
        writeln!(out, "{rest}")?;
        drop(out);
        let o = outs.into_iter().next().expect("one sequence");
        if a.stats {
            let n = o.tokens().len();
            eprintln!(
                "[{n} tokens · {:.1} tokens/s · prompt {n_prompt} tokens, {reused} from the KV cache · {}]",
                n as f64 / t0.elapsed().as_secs_f64(),
                o.finish.as_str()
            );
        }
        messages.push(Message::new("assistant", stream.text.trim()));
        seq = Some(o.sequence);
    }
    Ok(())
}
