//! One split (train or val) of a prepared data folder, read as one stream of token ids.

use crate::meta::DataMeta;
use crate::shard::Shard;
use jielong_core::{Error, Result};
use std::path::Path;

pub struct TokenDataset {
    shards: Vec<Shard>,
    /// `starts[i]` = index of the first token of shard i in the whole stream.
    starts: Vec<usize>,
    len: usize,
    pub meta: DataMeta,
}

impl TokenDataset {
    /// Open `split` of the folder `dir`, checking every shard against `meta.json`.
    pub fn open(dir: &Path, split: &str) -> Result<Self> {
        let meta = DataMeta::load(dir)?;
        let split_meta = meta.split(split)?.clone();
        let mut shards = Vec::new();
        let mut starts = Vec::new();
        let mut len = 0usize;
        for name in &split_meta.shards {
            let shard = Shard::open(&dir.join(name))?;
            let h = shard.header();
            if h.tokenizer_hash_hex() != meta.tokenizer_hash || h.vocab_size as usize != meta.vocab_size {
                return Err(Error::format(
                    shard.path(),
                    "made with a different tokenizer than meta.json says; regenerate the folder with `jielong data prepare`",
                ));
            }
            starts.push(len);
            len += shard.len();
            shards.push(shard);
        }
        if len as u64 != split_meta.n_tokens {
            return Err(Error::format(
                dir.join("meta.json"),
                format!("meta.json says the {split} split has {} tokens but its shards hold {len}; regenerate with `jielong data prepare`", split_meta.n_tokens),
            ));
        }
        Ok(Self { shards, starts, len, meta })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append tokens `[start, start + n)` of the stream to `out` (may cross shard boundaries).
    pub fn read_into(&self, mut start: usize, mut n: usize, out: &mut Vec<u32>) {
        assert!(start + n <= self.len, "read past the end of the dataset");
        let mut i = self.starts.partition_point(|&s| s <= start) - 1;
        while n > 0 {
            let local = start - self.starts[i];
            let take = n.min(self.shards[i].len() - local);
            self.shards[i].read_into(local, take, out);
            start += take;
            n -= take;
            i += 1;
        }
    }

    pub fn to_vec(&self) -> Vec<u32> {
        let mut v = Vec::with_capacity(self.len);
        self.read_into(0, self.len, &mut v);
        v
    }
}
