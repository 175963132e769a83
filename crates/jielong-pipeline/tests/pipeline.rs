//! End-to-end checks of the pipeline: PII precision and recall per type on a labelled fixture
//! of our own writing, MinHash estimates against exact Jaccard, planted near-duplicates found,
//! output independent of the thread count and of an interruption, every input format, and
//! bad input.

use jielong_core::rng::Rng;
use jielong_pipeline::doc::{Doc, Removed};
use jielong_pipeline::minhash::{estimated_jaccard, jaccard, MinHashConfig, MinHasher};
use jielong_pipeline::pii::{scan, Kind};
use jielong_pipeline::run::read_jsonl_zst;
use jielong_pipeline::{Pipeline, RunOptions};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

#[test]
fn pii_precision_and_recall_per_type_on_the_labelled_fixture() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pii.jsonl")).unwrap();
    // type → (true positives, false positives, false negatives)
    let mut tally: BTreeMap<String, (u32, u32, u32)> = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = v["text"].as_str().unwrap();
        let want: HashSet<(String, String)> = v["pii"].as_array().unwrap().iter().map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_str().unwrap().to_string())).collect();
        let got: HashSet<(String, String)> = scan(t, &Kind::ALL).into_iter().map(|f| (f.kind.name().to_string(), t[f.start..f.end].to_string())).collect();
        for g in &got {
            let e = tally.entry(g.0.clone()).or_default();
            if want.contains(g) { e.0 += 1 } else { e.1 += 1; eprintln!("false positive {g:?} in {t:?}") }
        }
        for w in want.difference(&got) {
            tally.entry(w.0.clone()).or_default().2 += 1;
            eprintln!("missed {w:?} in {t:?}");
        }
    }
    for kind in ["email", "ipv4", "ipv6", "phone", "cn_id", "card", "iban", "secret"] {
        let (tp, fp, fn_) = tally.get(kind).copied().unwrap_or_default();
        let precision = tp as f64 / (tp + fp).max(1) as f64;
        let recall = tp as f64 / (tp + fn_).max(1) as f64;
        eprintln!("{kind:<7} tp {tp} fp {fp} fn {fn_}  precision {precision:.2} recall {recall:.2}");
        assert!(tp > 0, "{kind}: the fixture must hold positives");
        assert_eq!((precision, recall), (1.0, 1.0), "{kind}");
    }
}

/// A made-up vocabulary: syllable words that share nothing with real text.
fn vocab() -> Vec<String> {
    let syl = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "zu", "ha", "be", "do", "fi", "gu"];
    let mut v = Vec::new();
    for a in syl {
        for b in syl {
            for c in syl {
                v.push(format!("{a}{b}{c}"));
            }
        }
    }
    v
}

/// A document of `sentences` sentences of 12 random words.
fn random_doc(rng: &mut Rng, words: &[String], sentences: usize) -> Vec<String> {
    (0..sentences).map(|_| (0..12).map(|_| words[rng.below(words.len() as u64) as usize].clone()).collect::<Vec<_>>().join(" ") + ".").collect()
}

#[test]
fn minhash_estimates_jaccard_within_the_theoretical_bound() {
    let words = vocab();
    let mut rng = Rng::new(11);
    let m = MinHasher::new(MinHashConfig::default());
    let k = m.num_hashes() as f64;
    let (mut err_sum, mut sigma_sum, mut n) = (0.0, 0.0, 0.0);
    for pair in 0..300 {
        let a = random_doc(&mut rng, &words, 20);
        // Replace a growing share of the sentences: Jaccard from 1 down to about 0.
        let keep = 20 - (pair % 21);
        let mut b: Vec<String> = a[..keep].to_vec();
        b.extend(random_doc(&mut rng, &words, 20 - keep));
        let (ta, tb) = (a.join("\n"), b.join("\n"));
        let j = jaccard(&m.shingles(&ta), &m.shingles(&tb));
        let est = estimated_jaccard(&m.signature(&ta), &m.signature(&tb));
        let sigma = (j * (1.0 - j) / k).sqrt();
        assert!((est - j).abs() <= 5.0 * sigma + 1e-9, "pair {pair}: J {j:.3}, estimate {est:.3}, 5σ = {:.3}", 5.0 * sigma);
        err_sum += (est - j).abs();
        sigma_sum += sigma;
        n += 1.0;
    }
    // For an unbiased estimate with spread σ, E|error| = σ·√(2/π) ≈ 0.8σ.
    let (mean_err, mean_sigma) = (err_sum / n, sigma_sum / n);
    eprintln!("mean |error| {mean_err:.4}, mean σ {mean_sigma:.4}");
    assert!(mean_err <= 1.1 * mean_sigma * (2.0 / std::f64::consts::PI).sqrt() + 0.002, "mean |error| {mean_err:.4} against σ {mean_sigma:.4}");
}

fn options(out: &Path, threads: usize) -> RunOptions {
    RunOptions { out: out.to_path_buf(), threads, resume: false, strict: false, progress: false, fail_after_shards: None }
}

fn removed_ids(out: &Path) -> HashSet<u64> {
    let mut ids = HashSet::new();
    let dir = out.join("removed");
    for e in std::fs::read_dir(&dir).unwrap() {
        let rows: Vec<Removed> = read_jsonl_zst(&e.unwrap().path()).unwrap();
        ids.extend(rows.iter().map(|r| r.id));
    }
    ids
}

#[test]
fn minhash_finds_planted_near_duplicates() {
    let words = vocab();
    let mut rng = Rng::new(5);
    let originals: Vec<Vec<String>> = (0..400).map(|_| random_doc(&mut rng, &words, 25)).collect();
    let mut docs: Vec<String> = originals.iter().map(|d| d.join("\n")).collect();
    let mut planted = HashSet::new();
    for i in 0..120 {
        let mut d = originals[i * 3].clone();
        match i % 4 {
            // Two words changed.
            0 => {
                for _ in 0..2 {
                    let s = rng.below(d.len() as u64) as usize;
                    let mut w: Vec<String> = d[s].split(' ').map(str::to_string).collect();
                    let at = rng.below(w.len() as u64) as usize;
                    w[at] = words[rng.below(words.len() as u64) as usize].clone();
                    d[s] = w.join(" ");
                }
            }
            // Two sentences swapped.
            1 => d.swap(3, 17),
            // A sentence inserted.
            2 => d.insert(10, random_doc(&mut rng, &words, 1).remove(0)),
            // A sentence deleted, and the case of one changed.
            _ => {
                d.remove(7);
                d[0] = d[0].to_uppercase();
            }
        }
        planted.insert(docs.len() as u64);
        docs.push(d.join("\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("docs.jsonl");
    std::fs::write(&input, docs.iter().map(|t| serde_json::json!({ "text": t }).to_string() + "\n").collect::<String>()).unwrap();
    let p = Pipeline::parse("[settings]\nshard_docs = 64\n\n[[stage]]\nkind = \"minhash_dedup\"\n", Path::new("."), &[]).unwrap();
    let out = dir.path().join("out");
    let report = jielong_pipeline::run(&p, &[input], &options(&out, 2)).unwrap();
    let removed = removed_ids(&out);
    let hit = removed.intersection(&planted).count() as f64;
    let (recall, precision) = (hit / planted.len() as f64, hit / removed.len().max(1) as f64);
    eprintln!("planted {}, removed {}, recall {recall:.3}, precision {precision:.3}", planted.len(), removed.len());
    assert!(recall >= 0.95 && precision >= 0.99, "recall {recall:.3}, precision {precision:.3}");
    assert_eq!(report.docs_out, report.docs_in - removed.len() as u64);
}

/// Prose that passes the quality rules, varied by `i`, with some PII and some repeats.
fn corpus(dir: &Path) -> PathBuf {
    let words = vocab();
    let mut rng = Rng::new(9);
    let mut lines = String::new();
    for i in 0..300 {
        // Sentences of 12 words, a third of them stop words: no template, so no repeated n-grams.
        let stop = ["the", "be", "to", "of", "and", "that", "have", "with"];
        let body: Vec<String> = (0..8)
            .map(|_| {
                let w: Vec<&str> = (0..12).map(|_| if rng.below(3) == 0 { stop[rng.below(8) as usize] } else { words[rng.below(3375) as usize].as_str() }).collect();
                w.join(" ") + "."
            })
            .collect();
        let mut text = body.join("\n");
        if i % 7 == 0 {
            text.push_str(&format!("\nWrite to reader{i}@example.org for the full story of the river."));
        }
        if i % 11 == 0 {
            text = "too short".into();
        }
        lines.push_str(&serde_json::json!({ "text": text, "id": i }).to_string());
        lines.push('\n');
        if i % 13 == 0 {
            lines.push_str(&serde_json::json!({ "text": text }).to_string());
            lines.push('\n');
        }
    }
    let p = dir.join("corpus.jsonl");
    std::fs::write(&p, lines).unwrap();
    p
}

const PIPE: &str = "[settings]\nshard_docs = 40\n\n[[stage]]\nkind = \"gopher_quality\"\nmin_doc_words = 20\n\n[[stage]]\nkind = \"gopher_repetition\"\n\n[[stage]]\nkind = \"exact_dedup\"\n\n[[stage]]\nkind = \"minhash_dedup\"\n\n[[stage]]\nkind = \"pii\"\n";

fn outputs(out: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for dir in [out.to_path_buf(), out.join("removed")] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.to_string_lossy().ends_with(".jsonl.zst") {
                m.insert(p.strip_prefix(out).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    m
}

#[test]
fn output_is_the_same_for_any_thread_count_and_after_an_interruption() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus(dir.path());
    let p = Pipeline::parse(PIPE, Path::new("."), &[]).unwrap();
    let one = dir.path().join("one");
    let r1 = jielong_pipeline::run(&p, std::slice::from_ref(&input), &options(&one, 1)).unwrap();
    let two = dir.path().join("two");
    let r2 = jielong_pipeline::run(&p, std::slice::from_ref(&input), &options(&two, 2)).unwrap();
    assert_eq!(outputs(&one), outputs(&two));
    assert_eq!((r1.docs_out, &r1.stages), (r2.docs_out, &r2.stages));
    // The corpus's planted problems were found.
    let stage = |name: &str| r1.stages.iter().find(|s| s.name == name).unwrap();
    // Short: i % 11 == 0 for i < 300 (28), and the copies of i = 0, 143, 286 (i % 13 == 0 too).
    assert_eq!(stage("gopher_quality").removed["gopher_short_doc"], 31);
    assert_eq!(stage("gopher_repetition").docs_in - stage("gopher_repetition").docs_out, 0);
    // Copies of i % 13 == 0 (24), less the three short ones already gone.
    assert_eq!(stage("exact_dedup").removed["exact_duplicate"], 21);
    // Addresses in i % 7 == 0 (43), less the short ones (i % 77 == 0: 4).
    assert_eq!(stage("pii").counters["email"], 39);
    let kept: Vec<Doc> = outputs(&one).keys().filter(|k| k.starts_with("shard-")).flat_map(|k| read_jsonl_zst::<Doc>(&one.join(k)).unwrap()).collect();
    assert_eq!(kept.len() as u64, r1.docs_out);
    assert!(kept.iter().all(|d| !d.text.contains("@example.org")));
    assert!(kept.iter().any(|d| d.text.contains("Write to <EMAIL> for")));

    // Killed after three shards, then resumed: the same bytes.
    let cut = dir.path().join("cut");
    let mut o = options(&cut, 2);
    o.fail_after_shards = Some(3);
    assert!(jielong_pipeline::run(&p, std::slice::from_ref(&input), &o).is_err());
    assert!(!cut.join("report.json").exists());
    let mut o = options(&cut, 2);
    // Without --resume the half-done folder is refused.
    assert!(jielong_pipeline::run(&p, std::slice::from_ref(&input), &o).unwrap_err().to_string().contains("--resume"));
    o.resume = true;
    let r3 = jielong_pipeline::run(&p, std::slice::from_ref(&input), &o).unwrap();
    assert_eq!(outputs(&one), outputs(&cut));
    assert_eq!(r1.stages, r3.stages);
    // A different pipeline in the same folder is refused.
    let other = Pipeline::parse(&PIPE.replace("min_doc_words = 20", "min_doc_words = 21"), Path::new("."), &[]).unwrap();
    assert!(jielong_pipeline::run(&other, &[input], &o).unwrap_err().to_string().contains("different run"));
}

/// A WARC record as crawlers write them.
fn warc_record(kind: &str, uri: &str, content_type: &str, body: &[u8], n: usize) -> Vec<u8> {
    let mut r = format!(
        "WARC/1.0\r\nWARC-Type: {kind}\r\nWARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-{n:012}>\r\nWARC-Date: 2026-12-04T00:00:00Z\r\nWARC-Target-URI: {uri}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r.extend_from_slice(b"\r\n\r\n");
    r
}

const ARTICLE: &str = "<html><head><title>Mills</title></head><body><nav><a href='/'>Home</a> <a href='/shop'>Shop</a></nav><article><p>The river carried timber down to the mills, and every spring the town grew a little larger. Families came from the hills to work the saws, and the market square filled with their carts and their songs.</p><p>By the end of the century the mills had closed, but the town kept its bridges, its library and the habit of meeting by the water on summer evenings.</p></article><footer>All rights reserved.</footer></body></html>";

#[test]
fn every_input_format_is_read_and_broken_files_are_counted() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in");
    std::fs::create_dir(&inp).unwrap();
    std::fs::write(inp.join("a.txt"), "Plain text document.").unwrap();
    std::fs::write(inp.join("b.html"), ARTICLE).unwrap();
    let jsonl = format!("{}\n{}\nnot json\n", serde_json::json!({"text": "from jsonl", "id": "x1"}), serde_json::json!({"html": ARTICLE, "url": "https://example.org/m"}));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(jsonl.as_bytes()).unwrap();
    std::fs::write(inp.join("c.jsonl.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(inp.join("d.txt.zst"), zstd::stream::encode_all("zstd text".as_bytes(), 3).unwrap()).unwrap();
    let http = format!("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{ARTICLE}");
    let mut warc = warc_record("request", "https://example.org/w", "application/http; msgtype=request", b"GET /w HTTP/1.1\r\n\r\n", 1);
    warc.extend(warc_record("response", "https://example.org/w", "application/http; msgtype=response", http.as_bytes(), 2));
    warc.extend(warc_record("conversion", "https://example.org/w", "text/plain", "WET text of the page.".as_bytes(), 3));
    std::fs::write(inp.join("e.warc"), &warc).unwrap();
    // A truncated gzip archive.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&b"lots of text ".repeat(5000)).unwrap();
    let bytes = gz.finish().unwrap();
    std::fs::write(inp.join("f.txt.gz"), &bytes[..bytes.len() / 2]).unwrap();

    let p = Pipeline::parse("[[stage]]\nkind = \"pii\"\n", Path::new("."), &[]).unwrap();
    let out = dir.path().join("out");
    let r = jielong_pipeline::run(&p, std::slice::from_ref(&inp), &options(&out, 2)).unwrap();
    let kept: Vec<Doc> = read_jsonl_zst(&out.join("shard-00000.jsonl.zst")).unwrap();
    let texts: Vec<&str> = kept.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(texts.len(), 7, "{texts:?}");
    assert_eq!(texts[0], "Plain text document.");
    assert!(texts[1].starts_with("The river carried timber") && !texts[1].contains("Shop") && !texts[1].contains("rights"), "{}", texts[1]);
    assert_eq!(texts[2], "from jsonl");
    assert!(kept[2].source.ends_with("c.jsonl.gz:1 id=x1"), "{}", kept[2].source);
    assert!(texts[3].starts_with("The river carried timber"));
    assert_eq!(texts[4], "zstd text");
    assert!(texts[5].starts_with("The river carried timber") && kept[5].source.contains("https://example.org/w"));
    assert_eq!(texts[6], "WET text of the page.");
    assert_eq!(r.read.jsonl_bad_lines, 1);
    assert_eq!(r.read.warc_records_skipped, 1);
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert!(r.problems[0].file.ends_with("f.txt.gz"));
    assert!(std::fs::read_to_string(out.join("report.md")).unwrap().contains("could not be read fully"));
    // --strict stops on the broken archive instead.
    let mut o = options(&dir.path().join("strict"), 1);
    o.strict = true;
    let e = jielong_pipeline::run(&p, &[inp], &o).unwrap_err().to_string();
    assert!(e.contains("f.txt.gz"), "{e}");
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::default_pipeline(&[]).unwrap();
    let e = jielong_pipeline::run(&p, &[dir.path().join("missing.txt")], &options(&dir.path().join("o1"), 1)).unwrap_err().to_string();
    assert!(e.contains("no such file"), "{e}");
    std::fs::write(dir.path().join("x.bin"), "x").unwrap();
    let e = jielong_pipeline::run(&p, &[dir.path().join("x.bin")], &options(&dir.path().join("o2"), 1)).unwrap_err().to_string();
    assert!(e.contains("unknown kind of input"), "{e}");
    std::fs::write(dir.path().join("empty.jsonl"), "").unwrap();
    let e = jielong_pipeline::run(&p, &[dir.path().join("empty.jsonl")], &options(&dir.path().join("o3"), 1)).unwrap_err().to_string();
    assert!(e.contains("no documents"), "{e}");
    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), "mine").unwrap();
    std::fs::write(dir.path().join("a.txt"), "text").unwrap();
    let e = jielong_pipeline::run(&p, &[dir.path().join("a.txt")], &options(&busy, 1)).unwrap_err().to_string();
    assert!(e.contains("not empty"), "{e}");
}
