//! From ids to text while generating: UTF-8-safe streaming (`TextStream`) plus stop strings.
//! Text that might be the start of a stop string is held back until it is clear that it is not,
//! so a stop string never reaches the user.

use jielong_core::Result;
use jielong_tokenizer::{TextStream, Tokenizer};

pub struct StreamText<'a> {
    stream: TextStream<'a>,
    stops: &'a [String],
    held: String,
    /// Everything released so far.
    pub text: String,
    pub stopped: bool,
}

impl<'a> StreamText<'a> {
    pub fn new(tk: &'a Tokenizer, context: &[u32], stops: &'a [String]) -> Self {
        Self { stream: TextStream::new(tk, context), stops, held: String::new(), text: String::new(), stopped: false }
    }

    /// Add one id; returns the text that can be shown now.
    pub fn push(&mut self, id: u32) -> Result<String> {
        if self.stopped {
            return Ok(String::new());
        }
        if let Some(piece) = self.stream.push(id)? {
            self.held.push_str(&piece);
        }
        Ok(self.release(false))
    }

    /// The rest, at the end of generation.
    pub fn finish(&mut self) -> Result<String> {
        if !self.stopped {
            let rest = self.stream.finish()?;
            self.held.push_str(&rest);
        }
        Ok(self.release(true))
    }

    fn release(&mut self, all: bool) -> String {
        if self.stopped {
            return String::new();
        }
        // A complete stop string: release what comes before it and stop.
        if let Some(at) = self.stops.iter().filter(|s| !s.is_empty()).filter_map(|s| self.held.find(s.as_str())).min() {
            let out = self.held[..at].to_string();
            self.held.clear();
            self.stopped = true;
            self.text.push_str(&out);
            return out;
        }
        // Hold back the longest tail that could still grow into a stop string.
        let mut keep = 0;
        if !all {
            for stop in self.stops {
                for (i, _) in self.held.char_indices() {
                    let tail = &self.held[i..];
                    if tail.len() > keep && stop.starts_with(tail) {
                        keep = tail.len();
                    }
                }
            }
        }
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        self.text.push_str(&out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jielong_tokenizer::TokenizerKind;

    #[test]
    fn stream_text_hides_stop_strings_and_everything_after() {
        let tk = Tokenizer::train(TokenizerKind::Char, 100, ["abcdefgh User: 你好\n"].iter()).unwrap();
        let stops = vec!["\nUser:".to_string()];
        let ids = tk.encode("ab\nUsecd\nUser: he").unwrap();
        let mut s = StreamText::new(&tk, &[], &stops);
        let mut shown = String::new();
        for id in ids {
            shown.push_str(&s.push(id).unwrap());
        }
        shown.push_str(&s.finish().unwrap());
        assert!(s.stopped);
        assert_eq!(shown, "ab\nUsecd");
        assert_eq!(s.text, "ab\nUsecd");
        // No stop string: everything comes out, the held-back tail included.
        let mut s = StreamText::new(&tk, &[], &stops);
        let mut shown = String::new();
        for id in tk.encode("ab\nUs").unwrap() {
            shown.push_str(&s.push(id).unwrap());
        }
        assert_eq!(shown, "ab");
        shown.push_str(&s.finish().unwrap());
        assert_eq!(shown, "ab\nUs");
        assert!(!s.stopped);
    }
}
