//! `jielong vectors` through the real binary: train every method on our own English and
//! Chinese text, query, evaluate, plot; every kind of bad input gives one line and status 2.

use crate::common::*;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn vectors_train_query_eval_plot() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let corpus = write_corpus(dir);
    let o = jielong(&["vectors", "train", "--method", "skipgram", "--dim", "16", "--min-count", "1", "--epochs", "2", "--threads", "2", "--lowercase", "--save-corpus", "seen.txt", "--out", "sg", s(&corpus)], dir);
    assert_ok(&o);
    assert!(text(&o).contains("words/s"), "{}", text(&o));
    for f in ["sg/vectors.bin", "sg/vectors.txt", "sg/meta.json", "seen.txt"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("sg/meta.json")).unwrap()).unwrap();
    assert_eq!(meta["method"], "skipgram");
    assert_eq!(meta["dim"], 16);
    assert!(meta["vocab_size"].as_u64().unwrap() > 20);
    assert!(meta["words_per_second"].as_f64().unwrap() > 0.0);
    // The text file starts with the word2vec header; jieba cut the Chinese into words.
    let txt = std::fs::read_to_string(dir.join("sg/vectors.txt")).unwrap();
    assert!(txt.starts_with(&format!("{} 16\n", meta["vocab_size"])));
    assert!(txt.contains("\n模型 "), "jieba word 模型 in the vocabulary");

    let o = jielong(&["vectors", "neighbors", "--vectors", "sg", "--top", "3", "model", "模型"], dir);
    assert_ok(&o);
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 8, "{}", text(&o));
    assert_ok(&jielong(&["vectors", "analogy", "--vectors", "sg/vectors.txt", "model", "words", "训练"], dir));
    let o = jielong(&["vectors", "similarity", "--vectors", "sg/vectors.bin", "model", "model"], dir);
    assert_ok(&o);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1.0000");

    // Evaluation files of our own: one answerable question and one with an unknown word.
    std::fs::write(dir.join("q.txt"), ": mine\nmodel words guess next\nmodel words unicorn next\n").unwrap();
    std::fs::write(dir.join("pairs.tsv"), "# ours\nmodel\twords\t5\nguess\tnext\t3\ntraining\tbetter\t4\nmodel\tzebra\t1\n").unwrap();
    let o = jielong(&["vectors", "eval", "--vectors", "sg", "--analogies", "q.txt", "--pairs", "pairs.tsv", "--json"], dir);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["analogies"]["questions"], 2);
    assert_eq!(v["analogies"]["oov_questions"], 1);
    assert_eq!(v["analogies"]["answered"], 1);
    assert_eq!(v["pairs"][0]["pairs"], 3);
    assert_eq!(v["pairs"][0]["oov_pairs"], 1);
    let o = jielong(&["vectors", "eval", "--vectors", "sg", "--analogies", "q.txt", "--pairs", "pairs.tsv"], dir);
    assert!(text(&o).contains("1 of 2 questions skipped"), "{}", text(&o));

    let o = jielong(&["vectors", "plot", "--vectors", "sg", "--words", "model,words,模型,训练", "--out", "map.svg"], dir);
    assert_ok(&o);
    let svg = std::fs::read_to_string(dir.join("map.svg")).unwrap();
    assert!(svg.contains(">模型</text>") && svg.contains(">words</text>"));
    assert_ok(&jielong(&["vectors", "plot", "--vectors", "sg", "--top", "10", "--out", "top.svg"], dir));
    let o = jielong(&["vectors", "plot", "--vectors", "sg", "--top", "12", "--method", "tsne", "--iterations", "300", "--out", "tsne.svg"], dir);
    assert_ok(&o);
    let svg = std::fs::read_to_string(dir.join("tsne.svg")).unwrap();
    assert!(svg.contains("t-SNE of 12 words") && svg.matches("<text").count() >= 12, "{svg}");
    assert_user_error(&jielong(&["vectors", "plot", "--vectors", "sg", "--top", "12", "--method", "tsne", "--perplexity", "20", "--out", "t.svg"], dir), "--perplexity 20 is not below");

    // CBOW with hierarchical softmax, GloVe, fastText (an unseen word gets n-gram neighbours).
    assert_ok(&jielong(&["vectors", "train", "--method", "cbow", "--hs", "--dim", "8", "--min-count", "1", "--epochs", "1", "--out", "cb", s(&corpus)], dir));
    assert_ok(&jielong(&["vectors", "train", "--method", "glove", "--dim", "8", "--min-count", "1", "--epochs", "3", "--out", "gl", s(&corpus)], dir));
    let g = std::fs::read_to_string(dir.join("gl/vectors.glove.txt")).unwrap();
    assert!(!g.lines().next().unwrap().split(' ').nth(1).unwrap().is_empty() && g.lines().next().unwrap().split(' ').count() == 9);
    assert_ok(&jielong(&["vectors", "train", "--method", "fasttext", "--dim", "8", "--min-count", "1", "--epochs", "1", "--bucket", "5000", "--out", "ft", s(&corpus)], dir));
    assert!(dir.join("ft/vectors.vec").is_file() && dir.join("ft/ngrams.bin").is_file());
    // The bag normalisation is gensim's unless asked otherwise, and meta.json says which.
    let meta = |d: &str| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(dir.join(d).join("meta.json")).unwrap()).unwrap() };
    assert_eq!(meta("ft")["hyperparameters"]["bag_norm"], "ngrams");
    assert_ok(&jielong(&["vectors", "train", "--method", "fasttext", "--bag-norm", "bag", "--dim", "8", "--min-count", "1", "--epochs", "1", "--bucket", "5000", "--out", "ft-bag", s(&corpus)], dir));
    assert_eq!(meta("ft-bag")["hyperparameters"]["bag_norm"], "bag");
    assert_ne!(std::fs::read(dir.join("ft/vectors.bin")).unwrap(), std::fs::read(dir.join("ft-bag/vectors.bin")).unwrap());
    // fastText's own model file: written on request, read back as a vectors source that also
    // gives unseen words a vector, with the same neighbours as the folder it came with.
    assert_ok(&jielong(&["vectors", "train", "--method", "fasttext", "--bin", "--threads", "1", "--dim", "8", "--min-count", "1", "--epochs", "1", "--bucket", "5000", "--out", "ft-bin", s(&corpus)], dir));
    let bin = std::fs::read(dir.join("ft-bin/model.bin")).unwrap();
    assert_eq!(&bin[..8], &[0xba, 0x16, 0x4f, 0x2f, 12, 0, 0, 0]);
    assert_eq!(meta("ft-bin")["files"].as_array().unwrap().last().unwrap(), "model.bin");
    for word in ["modelling", "modellingness"] {
        let from_dir = jielong(&["vectors", "neighbors", "--vectors", "ft-bin", "--top", "3", word], dir);
        let from_bin = jielong(&["vectors", "neighbors", "--vectors", "ft-bin/model.bin", "--top", "3", word], dir);
        assert_ok(&from_bin);
        assert_eq!(text(&from_dir), text(&from_bin), "{word}");
    }
    assert_user_error(&jielong(&["vectors", "train", "--method", "skipgram", "--bin", "--out", "nope", s(&corpus)], dir), "use it with --method fasttext");
    let o = jielong(&["vectors", "neighbors", "--vectors", "ft", "--top", "2", "modelling"], dir);
    assert_ok(&o);
    assert!(text(&o).contains("character n-grams"), "{}", text(&o));
    // Characters as units.
    assert_ok(&jielong(&["vectors", "train", "--units", "chars", "--dim", "8", "--min-count", "1", "--epochs", "1", "--out", "ch", s(&corpus)], dir));
    assert!(std::fs::read_to_string(dir.join("ch/vectors.txt")).unwrap().contains("\n模 "));
}

#[test]
fn vectors_bad_input_gives_one_line_and_status_2() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let corpus = write_corpus(dir);
    let c = s(&corpus);
    std::fs::write(dir.join("empty.txt"), " \n\n").unwrap();
    let train = |extra: &[&str], input: &str| {
        let mut args = vec!["vectors", "train", "--epochs", "1", "--out", "out"];
        args.extend(extra);
        args.push(input);
        jielong(&args, dir)
    };
    assert_user_error(&train(&[], "empty.txt"), "corpus is empty");
    assert_user_error(&train(&["--min-count", "100000"], c), "--min-count 100000 leaves no words");
    assert_user_error(&train(&["--dim", "0"], c), "--dim 0");
    assert_user_error(&train(&["--window", "0"], c), "--window 0");
    assert_user_error(&train(&["--method", "glove", "--window", "0"], c), "--window 0");
    assert_user_error(&train(&[], "nowhere.txt"), "no such file");
    // Flags are checked before the corpus is read: a bad flag wins over a missing file.
    assert_user_error(&train(&["--dim", "0"], "nowhere.txt"), "--dim 0");
    assert_user_error(&train(&["--method", "fasttext", "--hs"], "nowhere.txt"), "drop --hs");
    assert_user_error(&train(&["--method", "glove", "--x-max", "0"], "nowhere.txt"), "--x-max 0");
    assert!(!dir.join("out").exists(), "no output after a failed run");

    assert_ok(&train(&["--min-count", "1"], c));
    std::fs::write(dir.join("bad-header.txt"), "hello world\nx 1 2\n").unwrap();
    std::fs::write(dir.join("bad-width.txt"), "2 3\nx 1 2 3\ny 1 2\n").unwrap();
    assert_user_error(&jielong(&["vectors", "neighbors", "--vectors", "bad-width.txt", "x"], dir), "has 2 numbers, expected 3");
    std::fs::write(dir.join("bad.bin"), "2 3\nx 1 2\n").unwrap();
    assert_user_error(&jielong(&["vectors", "similarity", "--vectors", "bad.bin", "x", "y"], dir), "truncated");
    // A folder's vectors.txt must start with the word2vec header.
    std::fs::create_dir_all(dir.join("hdr")).unwrap();
    std::fs::write(dir.join("hdr/vectors.txt"), "2 x\nx 1 2\n").unwrap();
    assert_user_error(&jielong(&["vectors", "similarity", "--vectors", "hdr", "x", "y"], dir), "first line should be");
    assert_user_error(&jielong(&["vectors", "neighbors", "--vectors", "out", "zzzunknown"], dir), "not in the vocabulary");
    assert_user_error(&jielong(&["vectors", "analogy", "--vectors", "out", "model", "zzz", "words"], dir), "\"zzz\" is not in the vocabulary");
    assert_user_error(&jielong(&["vectors", "neighbors", "--vectors", "nothing-here", "x"], dir), "no such vectors file");
    assert_user_error(&jielong(&["vectors", "eval", "--vectors", "out", "--analogies", "missing.txt"], dir), "run scripts/fetch-data");
    assert_user_error(&jielong(&["vectors", "plot", "--vectors", "out", "--out", "m.svg"], dir), "--words a,b,c or --top N");
}

#[test]
fn vectors_initialise_a_gpt_through_train_init_embeddings() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let corpus = write_corpus(p);
    let c = s(&corpus);
    assert_ok(&jielong(&["tokenizer", "train", "--kind", "word", "--vocab-size", "400", "--out", "tok", c], p));
    assert_ok(&jielong(&["data", "prepare", "--tokenizer", "tok", "--out", "shards", c], p));
    assert_ok(&jielong(&["vectors", "train", "--dim", "32", "--min-count", "1", "--epochs", "1", "--out", "v32", c], p));
    assert_ok(&jielong(&["vectors", "train", "--dim", "16", "--min-count", "1", "--epochs", "1", "--out", "v16", c], p));
    let cfg = repo_root().join("configs/gpt-tiny.toml");
    let small = ["--set", "data.dir=shards", "--set", "model.n_layer=1", "--set", "model.n_embd=32", "--set", "model.max_seq_len=16", "--set", "train.max_steps=2", "--set", "train.batch_size=2"];
    let train = |out: &str, vectors: &str| {
        let mut args = vec!["train", "--config", cfg.to_str().unwrap(), "--out", out, "--init-embeddings", vectors];
        args.extend(small);
        jielong(&args, p)
    };
    let o = train("run", "v32");
    assert_ok(&o);
    assert!(text(&o).contains("embeddings: ") && text(&o).contains(" tokens start from the vectors in v32"), "{}", text(&o));
    assert_user_error(&train("bad", "v16"), "--dim 32");
    assert!(!p.join("bad").exists(), "a refused run leaves no folder");
    // A subword tokenizer has no words to look up.
    assert_ok(&jielong(&["tokenizer", "train", "--kind", "bpe", "--vocab-size", "300", "--out", "bpe", c], p));
    assert_ok(&jielong(&["data", "prepare", "--tokenizer", "bpe", "--out", "shards-bpe", c], p));
    let mut args = vec!["train", "--config", cfg.to_str().unwrap(), "--out", "bpe-run", "--init-embeddings", "v32"];
    args.extend(small);
    args.extend(["--set", "data.dir=shards-bpe"]);
    assert_user_error(&jielong(&args, p), "--kind word");
}
