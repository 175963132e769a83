//! Token data on disk and in batches: versioned shard files (`shard`), the `data prepare`
//! pipeline that writes them (`prepare`), reading a split back (`dataset`), batchers
//! (`batcher`), and the unigram baseline every model should beat (`baseline`).

pub mod baseline;
pub mod batcher;
pub mod dataset;
pub mod meta;
pub mod prepare;
pub mod labelled;
pub mod sft;
pub mod shard;
pub mod streams;
pub mod tasks;

pub use baseline::UnigramBaseline;
pub use batcher::{Batch, RandomWindows};
pub use dataset::TokenDataset;
pub use meta::{DataMeta, PrepareReport, SplitMeta};
pub use prepare::{prepare, PrepareOptions};
pub use shard::{Shard, ShardHeader};
pub use streams::SequentialStreams;
