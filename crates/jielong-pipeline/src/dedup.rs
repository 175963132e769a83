//! Deduplication stages: exact (a hash of the normalised text), near-duplicate (MinHash with
//! LSH bands, clusters resolved so the lowest document id of each survives) and line-level
//! across documents (a line seen in an earlier document is cut from the later ones).
//!
//! Each runs in three steps over files, so each step could be a task of a distributed engine:
//! **sign** (map, per shard: `(key, id)` pairs per channel, sorted, in `sigs/shard-NNNNN.bin`;
//! see [`crate::sigfile`]), **reduce** (a k-way merge of every shard's sorted pairs, channel by
//! channel, so memory holds one reader per shard and the duplicates found, never the corpus;
//! for MinHash each band is a channel and could go to its own worker; the output is the plan:
//! which ids go and which lines go where) and **filter** (per shard again, reading the plan).

use crate::doc::Doc;
use crate::minhash::{MinHashConfig, MinHasher};
use crate::sigfile::{for_each_duplicate, Signatures};
use crate::stage::{Counters, Verdict};
use crate::words::{is_symbol, tokens};
use jielong_core::error::IoContext;
use jielong_core::{Error, Result};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::xxh3_64;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinesConfig {
    /// Lines shorter than this (in characters, after trimming) are never treated as duplicates.
    pub min_chars: usize,
}

impl Default for LinesConfig {
    fn default() -> Self {
        LinesConfig { min_chars: 20 }
    }
}

/// The three dedup stages.
#[derive(Debug, Clone)]
pub enum DedupStage {
    Exact,
    MinHash(MinHasher),
    Lines(LinesConfig),
}

/// Lower-cased words without punctuation, joined by single spaces: what "the same text"
/// means for exact dedup and for lines.
pub fn normalise(text: &str) -> String {
    let lower = text.to_lowercase();
    tokens(&lower).into_iter().filter(|w| !is_symbol(w)).collect::<Vec<_>>().join(" ")
}

fn line_hash(line: &str) -> u64 {
    xxh3_64(normalise(line).as_bytes())
}

impl DedupStage {
    pub fn minhash(cfg: MinHashConfig) -> Result<Self, String> {
        cfg.validate()?;
        Ok(DedupStage::MinHash(MinHasher::new(cfg)))
    }

    pub fn name(&self) -> &'static str {
        match self {
            DedupStage::Exact => "exact_dedup",
            DedupStage::MinHash(_) => "minhash_dedup",
            DedupStage::Lines(_) => "line_dedup",
        }
    }

    /// How many channels this stage's signatures have: one per MinHash band, else one.
    pub fn channels(&self) -> usize {
        match self {
            DedupStage::MinHash(m) => m.cfg.num_buckets,
            _ => 1,
        }
    }

    /// Map: add this document's `(key, id)` pairs to its shard's signatures.
    pub fn sign(&self, doc: &Doc, out: &mut Signatures) {
        match self {
            DedupStage::Exact => out.push(0, xxh3_64(normalise(&doc.text).as_bytes()), doc.id),
            DedupStage::MinHash(m) => {
                let sig = m.signature(&doc.text);
                // An empty text has no shingles and no signature: it matches nothing.
                if sig.len() == m.num_hashes() {
                    for (band, h) in m.bands(&sig).into_iter().enumerate() {
                        out.push(band, h, doc.id);
                    }
                }
            }
            DedupStage::Lines(cfg) => {
                let mut v: Vec<u64> = doc.text.lines().map(str::trim).filter(|l| l.chars().count() >= cfg.min_chars).map(line_hash).collect();
                v.sort_unstable();
                v.dedup();
                v.into_iter().for_each(|h| out.push(0, h, doc.id));
            }
        }
    }

    /// Reduce: merge every shard's sorted signatures and decide.
    pub fn reduce(&self, sig_files: &[PathBuf]) -> Result<Plan> {
        let mut plan = Plan::default();
        match self {
            DedupStage::Exact => {
                // The lowest id of each hash is kept; every later one goes.
                for_each_duplicate(sig_files, 0, |_, _, id| {
                    plan.docs.insert(id);
                })?;
                plan.counters.add("duplicates", plan.docs.len() as u64);
            }
            DedupStage::MinHash(m) => {
                // Documents sharing a band hash in any band are one cluster; only documents
                // that collide somewhere enter the union-find.
                let mut uf = UnionFind::default();
                for band in 0..m.cfg.num_buckets {
                    for_each_duplicate(sig_files, band, |_, first, id| uf.union(first, id))?;
                }
                let mut clusters = HashSet::new();
                for id in uf.members() {
                    let root = uf.find(id);
                    clusters.insert(root);
                    if root != id {
                        plan.docs.insert(id);
                    }
                }
                plan.counters.add("clusters", clusters.len() as u64);
                plan.counters.add("duplicates", plan.docs.len() as u64);
            }
            DedupStage::Lines(_) => {
                for_each_duplicate(sig_files, 0, |h, _, id| {
                    plan.lines.entry(id).or_default().insert(h);
                })?;
                plan.counters.add("lines_marked", plan.lines.values().map(|s| s.len() as u64).sum());
            }
        }
        Ok(plan)
    }

    /// Filter: apply the plan to one document.
    pub fn filter(&self, plan: &Plan, doc: &mut Doc, counters: &mut Counters) -> Verdict {
        if plan.docs.contains(&doc.id) {
            return Verdict::Drop(match self {
                DedupStage::Exact => "exact_duplicate",
                _ => "near_duplicate",
            });
        }
        if let (DedupStage::Lines(cfg), Some(gone)) = (self, plan.lines.get(&doc.id)) {
            let mut removed = 0;
            let kept: Vec<&str> = doc
                .text
                .lines()
                .filter(|l| {
                    let t = l.trim();
                    let drop = t.chars().count() >= cfg.min_chars && gone.contains(&line_hash(t));
                    removed += drop as u64;
                    !drop
                })
                .collect();
            counters.add("lines_removed", removed);
            doc.text = kept.join("\n");
            if doc.text.trim().is_empty() {
                return Verdict::Drop("all_lines_duplicated");
            }
        }
        Verdict::Keep
    }
}

/// Union-find over document ids; the root of a set is its lowest id, so the document kept
/// from each cluster is the first one in input order.
#[derive(Default)]
struct UnionFind {
    parent: HashMap<u64, u64>,
}

impl UnionFind {
    fn find(&mut self, x: u64) -> u64 {
        let mut root = x;
        while let Some(&p) = self.parent.get(&root) {
            if p == root {
                break;
            }
            root = p;
        }
        // Path compression.
        let mut cur = x;
        while cur != root {
            let next = self.parent[&cur];
            self.parent.insert(cur, root);
            cur = next;
        }
        root
    }

    fn union(&mut self, a: u64, b: u64) {
        self.parent.entry(a).or_insert(a);
        self.parent.entry(b).or_insert(b);
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent.insert(hi, lo);
        }
    }

    fn members(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.parent.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

/// What a reduce step decided: ids to remove, and per id the hashes of lines to cut.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    pub docs: HashSet<u64>,
    pub lines: HashMap<u64, HashSet<u64>>,
    pub counters: Counters,
}

impl Plan {
    /// Write the plan (little-endian u64s), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut b = Vec::new();
        let mut docs: Vec<u64> = self.docs.iter().copied().collect();
        docs.sort_unstable();
        b.extend_from_slice(&(docs.len() as u64).to_le_bytes());
        docs.iter().for_each(|d| b.extend_from_slice(&d.to_le_bytes()));
        let mut lines: Vec<(u64, u64)> = self.lines.iter().flat_map(|(&d, hs)| hs.iter().map(move |&h| (d, h))).collect();
        lines.sort_unstable();
        b.extend_from_slice(&(lines.len() as u64).to_le_bytes());
        lines.iter().for_each(|(d, h)| {
            b.extend_from_slice(&d.to_le_bytes());
            b.extend_from_slice(&h.to_le_bytes());
        });
        let counters = serde_json::to_vec(&self.counters.0).map_err(|e| Error::input(e.to_string()))?;
        b.extend_from_slice(&counters);
        jielong_core::fs::write_atomic(path, &b)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let b = std::fs::read(path).at(path)?;
        let bad = || Error::format(path, "not a dedup plan written by this version; delete the run's work/ folder and run again");
        let mut at = 0;
        let mut next = || -> Result<u64> {
            let v = b.get(at..at + 8).ok_or_else(bad)?;
            at += 8;
            Ok(u64::from_le_bytes(v.try_into().expect("8 bytes")))
        };
        let mut plan = Plan::default();
        for _ in 0..next()? {
            plan.docs.insert(next()?);
        }
        for _ in 0..next()? {
            let (d, h) = (next()?, next()?);
            plan.lines.entry(d).or_default().insert(h);
        }
        let rest = &b[at..];
        plan.counters.0 = serde_json::from_slice(rest).map_err(|_| bad())?;
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_for(stage: &DedupStage, docs: &[Doc]) -> Plan {
        let dir = tempfile::tempdir().unwrap();
        let mut sigs = Signatures::default();
        docs.iter().for_each(|d| stage.sign(d, &mut sigs));
        let p = dir.path().join("s.bin");
        sigs.write(&p, stage.channels()).unwrap();
        stage.reduce(&[p]).unwrap()
    }

    #[test]
    fn exact_dedup_keeps_the_first_of_equal_normalised_texts() {
        let docs = [Doc::new(0, "a", "Hello,  world!"), Doc::new(1, "b", "hello world"), Doc::new(2, "c", "hello there")];
        let plan = plan_for(&DedupStage::Exact, &docs);
        assert_eq!(plan.docs, HashSet::from([1]));
    }

    #[test]
    fn line_dedup_cuts_lines_seen_in_an_earlier_document() {
        let stage = DedupStage::Lines(LinesConfig { min_chars: 10 });
        let docs = [Doc::new(0, "a", "Subscribe to our newsletter today\nfirst story"), Doc::new(1, "b", "second story here\nSubscribe to our newsletter today")];
        let plan = plan_for(&stage, &docs);
        let mut d1 = docs[1].clone();
        let mut c = Counters::default();
        assert_eq!(stage.filter(&plan, &mut d1, &mut c), Verdict::Keep);
        assert_eq!(d1.text, "second story here");
        let mut d0 = docs[0].clone();
        stage.filter(&plan, &mut d0, &mut c);
        assert_eq!(d0.text, docs[0].text);
        assert_eq!(c.0["lines_removed"], 1);
    }

    #[test]
    fn plan_round_trips_through_its_file() {
        let mut p = Plan::default();
        p.docs.extend([3, 9]);
        p.lines.entry(4).or_default().extend([11, 12]);
        p.counters.add("duplicates", 2);
        let dir = tempfile::tempdir().unwrap();
        p.save(&dir.path().join("plan.bin")).unwrap();
        assert_eq!(Plan::load(&dir.path().join("plan.bin")).unwrap(), p);
    }

    #[test]
    fn union_find_keeps_the_lowest_id_of_a_chain() {
        let mut uf = UnionFind::default();
        uf.union(5, 9);
        uf.union(9, 2);
        uf.union(7, 8);
        assert_eq!(uf.find(5), 2);
        assert_eq!(uf.find(9), 2);
        assert_eq!(uf.find(8), 7);
    }
}
