//! What a run did, stage by stage: documents and bytes in and out, every removal under the
//! rule that fired with a few examples, and each stage's counters (PII replacements per type,
//! lines dropped, clusters found). Written as `report.json` and a readable `report.md`.

use crate::input::{InputProblem, ReadStats};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// A removed document as the report shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Example {
    pub id: u64,
    pub source: String,
    /// The first 300 characters.
    pub text: String,
}

impl Example {
    pub fn new(id: u64, source: &str, text: &str) -> Self {
        let end = text.char_indices().nth(300).map_or(text.len(), |(i, _)| i);
        Example { id, source: source.to_string(), text: text[..end].to_string() }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StageReport {
    pub name: String,
    pub docs_in: u64,
    pub docs_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Documents removed, per rule.
    pub removed: BTreeMap<String, u64>,
    /// The first removed documents (in input order), per rule.
    pub examples: BTreeMap<String, Vec<Example>>,
    pub counters: BTreeMap<String, u64>,
}

impl StageReport {
    pub fn new(name: &str) -> Self {
        StageReport { name: name.to_string(), ..Default::default() }
    }

    /// Add another shard's figures; `self` holds earlier shards, so its examples come first.
    pub fn merge(&mut self, o: &StageReport, examples_per_rule: usize) {
        self.docs_in += o.docs_in;
        self.docs_out += o.docs_out;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        for (k, v) in &o.removed {
            *self.removed.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &o.counters {
            *self.counters.entry(k.clone()).or_insert(0) += v;
        }
        for (k, ex) in &o.examples {
            let mine = self.examples.entry(k.clone()).or_default();
            for e in ex {
                if mine.len() < examples_per_rule {
                    mine.push(e.clone());
                }
            }
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub inputs: Vec<String>,
    pub read: ReadStats,
    /// Files that could not be (fully) read.
    pub problems: Vec<InputProblem>,
    pub docs_in: u64,
    pub docs_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub shards: usize,
    pub stages: Vec<StageReport>,
    pub threads: usize,
    pub seconds: f64,
}

impl Report {
    /// The report as Markdown for people.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let pct = |a: u64, b: u64| if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 };
        let _ = writeln!(s, "# jielong data clean: report\n");
        let _ = writeln!(
            s,
            "{} documents ({:.1} MB of text) from {} files → **{} kept** ({:.1}%, {:.1} MB) in {} shards; {:.1} s on {} threads ({:.0} documents/s).\n",
            self.docs_in,
            self.bytes_in as f64 / 1e6,
            self.read.files,
            self.docs_out,
            pct(self.docs_out, self.docs_in),
            self.bytes_out as f64 / 1e6,
            self.shards,
            self.seconds,
            self.threads,
            self.docs_in as f64 / self.seconds.max(1e-9)
        );
        if !self.problems.is_empty() {
            let _ = writeln!(s, "**{} input files could not be read fully** (counted, not fatal; `--strict` stops on them):\n", self.problems.len());
            for p in &self.problems {
                let _ = writeln!(s, "- `{}`: {}", p.file, p.error);
            }
            s.push('\n');
        }
        let _ = writeln!(s, "| stage | documents in | out | removed | bytes in | bytes out |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
        for st in &self.stages {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} ({:.1}%) | {} | {} |",
                st.name,
                st.docs_in,
                st.docs_out,
                st.docs_in - st.docs_out,
                pct(st.docs_in - st.docs_out, st.docs_in),
                st.bytes_in,
                st.bytes_out
            );
        }
        for st in &self.stages {
            if st.removed.is_empty() && st.counters.is_empty() {
                continue;
            }
            let _ = writeln!(s, "\n## {}\n", st.name);
            for (rule, n) in &st.removed {
                let _ = writeln!(s, "- **{rule}**: {n} documents removed");
                for e in st.examples.get(rule).into_iter().flatten() {
                    let one_line: String = e.text.chars().take(160).map(|c| if c == '\n' { ' ' } else { c }).collect();
                    let _ = writeln!(s, "  - #{} `{}`: {}", e.id, e.source, one_line.replace('|', "\\|"));
                }
            }
            for (k, n) in &st.counters {
                let _ = writeln!(s, "- {k}: {n}");
            }
        }
        s
    }
}
