//! The pretraining-data pipeline behind `jielong data clean`.
//!
//! Documents stream from text files, folders, JSONL, HTML and WARC archives (plain, `.gz` or
//! `.zst`) through stages run in the order a pipeline TOML lists them:
//!
//! - per-document stages ([`stage::DocStage`]), pure functions of one document that keep it,
//!   drop it with a named rule, or rewrite its text: language identification ([`langid`]),
//!   Gopher's quality and repetition rules ([`gopher`]), C4's line rules ([`c4`]), FineWeb's
//!   extra rules ([`fineweb`]), an n-gram perplexity filter ([`perplexity`]) and PII
//!   scrubbing ([`pii`]);
//! - deduplication stages ([`dedup::DedupStage`]), which need every document before they can
//!   decide: exact (normalised hash), near-duplicate MinHash with LSH bands ([`minhash`]) and
//!   line-level dedup across documents. They run as map → reduce → filter over files, so the
//!   same code could run as tasks of a distributed engine ([`run`] explains the passes).
//!
//! Output is sharded JSONL.zst plus `report.json` / `report.md`: per stage, documents and bytes
//! in and out, and for every removal the rule that fired with a few examples.

pub mod c4;
pub mod config;
pub mod dedup;
pub mod doc;
pub mod fineweb;
pub mod gopher;
pub mod html;
pub mod input;
pub mod langid;
pub mod minhash;
pub mod perplexity;
pub mod pii;
pub mod report;
pub mod sigfile;
pub mod run;
pub mod stage;
pub mod words;

pub use config::Pipeline;
pub use doc::Doc;
pub use run::{run, RunOptions};
