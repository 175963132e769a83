//! jielong's own n-gram model file: the lookup tables exactly as they sit in memory, so that
//! loading is a memory map and a few checks (milliseconds, whatever the size), not parsing.
//!
//! Layout (little-endian):
//!
//! ```text
//! 0   8 bytes   magic "JLNGRAM\0"
//! 8   u32       format version (FORMAT_VERSION)
//! 12  u32       length L of the JSON header
//! 16  L bytes   JSON: the model's metadata and where each section lies
//! …   padding to a multiple of 8; offsets in the header count from here
//!     vocabulary: u32 offsets (vocab_len + 1) then the UTF-8 bytes of the units
//!     unigrams: vocab_len × [f64 log10 p, f64 log10 b]
//!     per order 2..N, a probing hash table in two arrays of the same length (slots):
//!       hot:  slots × {u64 hash of the n-gram (0: empty), f32 log10 p, f32 log10 b}   16 bytes
//!       cold: slots × {u64 key_lo, u64 key_hi, f64 log10 p, f64 log10 b}             32 bytes
//! ```
//!
//! Scoring text reads only the hot arrays (what KenLM's probing structure holds); the cold ones
//! hold each n-gram exactly, for distributions, export and enumeration (see `table.rs`).
//! Version 1 kept only the cold layout, looked up by key.
//!
//! A file of another version is refused with a one-line error that says to re-export it.

use crate::model::{ModelMeta, NgramModel};
use crate::table::{Buf, Entry, Slot, Table};
use crate::vocab::Vocab;
use jielong_core::error::IoContext;
use jielong_core::{Error, Result};
use memmap2::Mmap;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;

pub const MAGIC: &[u8; 8] = b"JLNGRAM\0";
pub const FORMAT_VERSION: u32 = 2;

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    meta: ModelMeta,
    vocab_len: usize,
    vocab_offsets: usize,
    vocab_bytes: usize,
    vocab_bytes_len: usize,
    unigrams: usize,
    /// Per order 2..N.
    tables: Vec<TableAt>,
}

/// Where one order's table lies and what it holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct TableAt {
    /// Byte offsets of the hot slots and the cold entries.
    slots_at: usize,
    entries_at: usize,
    slots: usize,
    len: usize,
    /// No two stored n-grams share a hash.
    hash_unique: bool,
}

fn align8(x: usize) -> usize {
    x.div_ceil(8) * 8
}

/// Write to a temporary sibling of `path` through `body`, then rename: never a half-written file.
pub(crate) fn write_streamed(path: &Path, body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    let tmp = jielong_core::fs::tmp_sibling(path);
    let result = (|| {
        let file = std::fs::File::create(&tmp).at(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        body(&mut w).at(&tmp)?;
        let file = w.into_inner().map_err(|e| e.into_error()).at(&tmp)?;
        file.sync_all().at(&tmp)?;
        std::fs::rename(&tmp, path).at(path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Write `model` in the binary format at `path` (atomically).
pub fn write(model: &NgramModel, path: &Path) -> Result<()> {
    let words = model.vocab().words();
    let mut offsets: Vec<u32> = Vec::with_capacity(words.len() + 1);
    let mut blob = Vec::new();
    offsets.push(0);
    for w in words {
        blob.extend_from_slice(w.as_bytes());
        offsets.push(blob.len() as u32);
    }
    let mut at = 0usize;
    let mut place = |bytes: usize| {
        let start = at;
        at = align8(at + bytes);
        start
    };
    let vocab_offsets = place(offsets.len() * 4);
    let vocab_bytes = place(blob.len());
    let unigrams = place(model.unigram_slice().len() * 16);
    let tables = model
        .tables()
        .iter()
        .map(|t| TableAt {
            slots_at: place(std::mem::size_of_val(t.slots())),
            entries_at: place(std::mem::size_of_val(t.raw_entries())),
            slots: t.slots().len(),
            len: t.len(),
            hash_unique: t.is_hash_unique(),
        })
        .collect();
    let header = Header {
        meta: model.meta().clone(),
        vocab_len: words.len(),
        vocab_offsets,
        vocab_bytes,
        vocab_bytes_len: blob.len(),
        unigrams,
        tables,
    };
    let json = serde_json::to_vec(&header).map_err(|e| Error::Other(format!("serializing the model header: {e}")))?;
    write_streamed(path, |out| {
        out.write_all(MAGIC)?;
        out.write_all(&FORMAT_VERSION.to_le_bytes())?;
        out.write_all(&(json.len() as u32).to_le_bytes())?;
        out.write_all(&json)?;
        let mut pos = 0usize;
        let data_start = 16 + json.len();
        out.write_all(&vec![0u8; align8(data_start) - data_start])?;
        let mut section = |out: &mut dyn Write, offset: usize, bytes: &[u8]| -> std::io::Result<()> {
            out.write_all(&vec![0u8; offset - pos])?;
            out.write_all(bytes)?;
            pos = offset + bytes.len();
            Ok(())
        };
        section(out, header.vocab_offsets, bytemuck::cast_slice(&offsets))?;
        section(out, header.vocab_bytes, &blob)?;
        section(out, header.unigrams, bytemuck::cast_slice(model.unigram_slice()))?;
        for (t, at) in model.tables().iter().zip(&header.tables) {
            section(out, at.slots_at, bytemuck::cast_slice(t.slots()))?;
            section(out, at.entries_at, bytemuck::cast_slice(t.raw_entries()))?;
        }
        Ok(())
    })
}

/// Whether `path` starts with the binary format's magic bytes.
pub fn is_binary(path: &Path) -> Result<bool> {
    let mut f = std::fs::File::open(path).at(path)?;
    let mut magic = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        match f.read(&mut magic[got..]).at(path)? {
            0 => break,
            k => got += k,
        }
    }
    Ok(got == 8 && &magic == MAGIC)
}

/// Memory-map a model written by [`write`].
pub fn load(path: &Path) -> Result<NgramModel> {
    if cfg!(target_endian = "big") {
        return Err(Error::input("jielong's binary n-gram files are little-endian; on this machine use the ARPA file"));
    }
    let file = std::fs::File::open(path).at(path)?;
    // SAFETY: the map is read-only; a file changed underneath a running process is the same
    // hazard as for any mmap-based model format (KenLM's included).
    let map = Arc::new(unsafe { Mmap::map(&file) }.at(path)?);
    let bad = |msg: &str| Error::format(path, format!("{msg}: the model file is damaged; export it again"));
    if map.len() < 16 || &map[..8] != MAGIC {
        return Err(Error::format(path, "not a jielong n-gram model file (no JLNGRAM magic bytes)"));
    }
    let version = u32::from_le_bytes(map[8..12].try_into().unwrap());
    if version != FORMAT_VERSION {
        return Err(Error::format(
            path,
            format!("n-gram model file format version {version}, but this jielong reads version {FORMAT_VERSION}: rebuild it (jielong ngram train, or import its ARPA file)"),
        ));
    }
    let json_len = u32::from_le_bytes(map[12..16].try_into().unwrap()) as usize;
    let json = map.get(16..16 + json_len).ok_or_else(|| bad("the header is cut short"))?;
    let header: Header = serde_json::from_slice(json).map_err(|_| bad("the header is not valid"))?;
    let base = align8(16 + json_len);
    let offsets: Buf<u32> = Buf::mapped(&map, base + header.vocab_offsets, header.vocab_len + 1).ok_or_else(|| bad("the vocabulary is cut short"))?;
    let blob = map.get(base + header.vocab_bytes..base + header.vocab_bytes + header.vocab_bytes_len).ok_or_else(|| bad("the vocabulary is cut short"))?;
    let mut words = Vec::with_capacity(header.vocab_len);
    for w in offsets.windows(2) {
        let piece = blob.get(w[0] as usize..w[1] as usize).ok_or_else(|| bad("a vocabulary offset is out of range"))?;
        words.push(std::str::from_utf8(piece).map_err(|_| bad("a unit is not UTF-8"))?.to_string());
    }
    let vocab = Vocab::from_words(words).map_err(|_| bad("the vocabulary is not valid"))?;
    let unigrams: Buf<[f64; 2]> = Buf::mapped(&map, base + header.unigrams, header.vocab_len).ok_or_else(|| bad("the unigrams are cut short"))?;
    if header.tables.len() + 1 != header.meta.order {
        return Err(bad("the header's tables do not match its order"));
    }
    let mut tables = Vec::with_capacity(header.tables.len());
    for (i, at) in header.tables.iter().enumerate() {
        let slots: Buf<Slot> = Buf::mapped(&map, base + at.slots_at, at.slots).ok_or_else(|| bad("a table is cut short"))?;
        let entries: Buf<Entry> = Buf::mapped(&map, base + at.entries_at, at.slots).ok_or_else(|| bad("a table is cut short"))?;
        tables.push(Table::from_parts(i + 2, slots, entries, at.len, at.hash_unique).ok_or_else(|| bad("a table is not valid"))?);
    }
    Ok(NgramModel::from_tables(header.meta, vocab, unigrams, tables))
}
