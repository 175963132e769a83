//! From the engine's token events to text, on the HTTP side.
//!
//! Each choice has its own `StreamText`: ids become text only once a character is complete (a
//! Chinese character or an emoji split over byte tokens is never cut in two), and text that
//! might be the start of a stop string is held back until it is clear it is not, so a stop
//! string split across tokens is still caught and never sent. When a stop string appears the
//! task sets the job's `cancel` flag and the engine drops the sequence before its next step.

use crate::scheduler::{Event, TokenLogprob};
use crate::AppState;
use jielong_generate::StreamText;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;

/// One token with its log-probability, as the API reports it.
#[derive(Debug, Clone)]
pub struct TokenOut {
    pub text: String,
    pub bytes: Vec<u8>,
    pub logprob: f32,
    /// (text, bytes, log-probability) of the most likely alternatives.
    pub top: Vec<(String, Vec<u8>, f32)>,
}

/// New text of one choice, the tokens behind it, and its finish reason once it ends.
#[derive(Debug, Clone)]
pub struct Piece {
    pub index: usize,
    pub text: String,
    pub tokens: Vec<TokenOut>,
    pub finish: Option<&'static str>,
}

#[derive(Debug)]
pub enum End {
    /// Every choice finished; tokens generated over all choices.
    Done { completion_tokens: usize },
    /// The server ended the request (a failed step, shutdown).
    Aborted(String),
    /// The client is gone (`emit` returned false).
    ClientGone,
}

struct Choice<'a> {
    text: StreamText<'a>,
    pending: Vec<TokenOut>,
    done: bool,
}

/// Turn events into pieces until every choice has finished; `emit` returns false when the
/// client has gone, which ends the drive (dropping `rx`, so the engine stops the sequences).
pub async fn drive(
    state: &AppState,
    prompt: &[u32],
    stops: &[String],
    cancels: &[Arc<AtomicBool>],
    mut rx: UnboundedReceiver<(usize, Event)>,
    mut emit: impl FnMut(Piece) -> bool + Send,
) -> End {
    let tk = &*state.tk;
    let mut choices: Vec<Choice> =
        cancels.iter().map(|_| Choice { text: StreamText::new(tk, prompt, stops), pending: Vec::new(), done: false }).collect();
    let mut generated = 0usize;
    while choices.iter().any(|c| !c.done) {
        let Some((i, event)) = rx.recv().await else {
            return End::Aborted("the decoding engine stopped".into());
        };
        let c = &mut choices[i];
        if c.done {
            continue;
        }
        let piece = match event {
            Event::Token { id, logprob } => {
                generated += 1;
                if let Some(lp) = logprob {
                    c.pending.push(state.token_out(id, &lp));
                }
                let text = match c.text.push(id) {
                    Ok(t) => t,
                    Err(e) => return End::Aborted(format!("decoding token {id} failed: {e}")),
                };
                if c.text.stopped {
                    cancels[i].store(true, Ordering::Relaxed);
                    c.done = true;
                    Piece { index: i, text, tokens: std::mem::take(&mut c.pending), finish: Some("stop") }
                } else if text.is_empty() {
                    continue;
                } else {
                    Piece { index: i, text, tokens: std::mem::take(&mut c.pending), finish: None }
                }
            }
            Event::Done { finish } => {
                c.done = true;
                let text = c.text.finish().unwrap_or_default();
                let finish = if c.text.stopped { "stop" } else { finish.as_str() };
                Piece { index: i, text, tokens: std::mem::take(&mut c.pending), finish: Some(finish) }
            }
            Event::Aborted(msg) => return End::Aborted(msg),
        };
        if !emit(piece) {
            return End::ClientGone;
        }
    }
    End::Done { completion_tokens: generated }
}

impl AppState {
    /// The text and bytes of one token, alone.
    pub fn token_bytes(&self, id: u32) -> (String, Vec<u8>) {
        let bytes = match (&self.byte_table, self.tk.id_to_piece(id)) {
            (Some(table), Some(piece)) => {
                let b: Option<Vec<u8>> = piece.chars().map(|c| table.get(&c).copied()).collect();
                b.unwrap_or_else(|| piece.into_bytes())
            }
            _ => self.tk.decode(&[id]).unwrap_or_default().into_bytes(),
        };
        (String::from_utf8_lossy(&bytes).into_owned(), bytes)
    }

    fn token_out(&self, id: u32, lp: &TokenLogprob) -> TokenOut {
        let (text, bytes) = self.token_bytes(id);
        let top = lp
            .top
            .iter()
            .map(|&(t, l)| {
                let (s, b) = self.token_bytes(t);
                (s, b, l)
            })
            .collect();
        TokenOut { text, bytes, logprob: lp.logprob, top }
    }
}
