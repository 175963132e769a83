//! Analysis: the words of a text as retrieval counts them, the same words the n-gram models
//! count (`jielong_text::segment::word_spans`: UAX #29 word boundaries, jieba for runs of Han
//! characters, only tokens with a letter or digit), lowercased. Documents, queries and the
//! tantivy index all go through [`terms`], so a query term matches exactly the document words
//! it should, in English and in Chinese alike.

/// One analysed word: its lowercased form and its byte range in the text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// The words of `text`, lowercased, with their byte offsets in `text`.
pub fn terms(text: &str) -> Vec<Term> {
    jielong_text::segment::word_spans(text)
        .into_iter()
        .map(|s| Term { text: s.text.to_lowercase(), start: s.start, end: s.end() })
        .collect()
}

/// Just the lowercased words of `text`.
pub fn term_texts(text: &str) -> Vec<String> {
    terms(text).into_iter().map(|t| t.text).collect()
}

/// A tantivy tokenizer that emits [`terms`], so the tantivy index sees jieba's Chinese words and
/// UAX #29's English words, lowercased, exactly as the rest of jielong does.
#[derive(Clone, Default)]
pub struct JielongTokenizer {
    token: tantivy::tokenizer::Token,
}

/// Name under which [`JielongTokenizer`] is registered in an index.
pub const TOKENIZER_NAME: &str = "jielong_words";

/// The token stream of [`JielongTokenizer`]: the terms are cut up front (jieba needs the whole
/// Han run anyway) and handed out one by one.
pub struct JielongTokenStream<'a> {
    terms: std::vec::IntoIter<Term>,
    token: &'a mut tantivy::tokenizer::Token,
    position: usize,
}

impl tantivy::tokenizer::Tokenizer for JielongTokenizer {
    type TokenStream<'a> = JielongTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> JielongTokenStream<'a> {
        self.token.reset();
        JielongTokenStream { terms: terms(text).into_iter(), token: &mut self.token, position: 0 }
    }
}

impl tantivy::tokenizer::TokenStream for JielongTokenStream<'_> {
    fn advance(&mut self) -> bool {
        let Some(t) = self.terms.next() else { return false };
        self.token.text = t.text;
        self.token.offset_from = t.start;
        self.token.offset_to = t.end;
        self.token.position = self.position;
        self.token.position_length = 1;
        self.position += 1;
        true
    }

    fn token(&self) -> &tantivy::tokenizer::Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut tantivy::tokenizer::Token {
        self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::tokenizer::{TokenStream, Tokenizer};

    #[test]
    fn terms_lowercase_english_and_cut_chinese() {
        let t = term_texts("The Cat sat. 我们学习语言模型！");
        assert_eq!(t, ["the", "cat", "sat", "我们", "学习", "语言", "模型"]);
        let spans = terms("Ab 猫");
        assert_eq!((spans[1].start, spans[1].end), (3, 6));
    }

    #[test]
    fn tokenizer_emits_the_same_terms_with_positions() {
        let mut tok = JielongTokenizer::default();
        let mut stream = tok.token_stream("Hello, 世界 hello");
        let mut got = Vec::new();
        while stream.advance() {
            let t = stream.token();
            got.push((t.text.clone(), t.offset_from, t.position));
        }
        assert_eq!(got, [("hello".to_string(), 0, 0), ("世界".to_string(), 7, 1), ("hello".to_string(), 14, 2)]);
    }
}
