//! The token shard file: a fixed 64-byte header, then little-endian token ids.
//!
//! ```text
//! offset size field
//!      0    8 magic          b"JLSHARD\0"
//!      8    4 version        u32 LE (1)
//!     12    4 bytes_per_token u32 LE (2 when vocab_size <= 65536, else 4)
//!     16    8 n_tokens       u64 LE
//!     24    4 vocab_size     u32 LE
//!     28    4 reserved       0
//!     32   32 tokenizer_hash SHA-256 of the tokenizer (raw bytes)
//!     64    … ids            n_tokens × bytes_per_token, little-endian
//! ```
//! Files are memory-mapped for reading and written to a temporary name then renamed.

use jielong_core::error::IoContext;
use jielong_core::{Error, Result};
use std::path::{Path, PathBuf};

pub const MAGIC: [u8; 8] = *b"JLSHARD\0";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 64;

const REGENERATE: &str = "regenerate it with `jielong data prepare`";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardHeader {
    pub version: u32,
    pub bytes_per_token: u32,
    pub n_tokens: u64,
    pub vocab_size: u32,
    pub tokenizer_hash: [u8; 32],
}

impl ShardHeader {
    pub fn tokenizer_hash_hex(&self) -> String {
        self.tokenizer_hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..12].copy_from_slice(&self.version.to_le_bytes());
        h[12..16].copy_from_slice(&self.bytes_per_token.to_le_bytes());
        h[16..24].copy_from_slice(&self.n_tokens.to_le_bytes());
        h[24..28].copy_from_slice(&self.vocab_size.to_le_bytes());
        h[32..64].copy_from_slice(&self.tokenizer_hash);
        h
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        if bytes.len() < HEADER_LEN || bytes[0..8] != MAGIC {
            return Err(Error::format(path, format!("not a jielong token shard (no JLSHARD header); {REGENERATE}")));
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let version = u32_at(8);
        if version != VERSION {
            return Err(Error::format(
                path,
                format!("shard format version {version}, this jielong reads version {VERSION}; {REGENERATE}"),
            ));
        }
        let bytes_per_token = u32_at(12);
        if bytes_per_token != 2 && bytes_per_token != 4 {
            return Err(Error::format(path, format!("corrupt header: {bytes_per_token} bytes per token; {REGENERATE}")));
        }
        let n_tokens = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
        let mut tokenizer_hash = [0u8; 32];
        tokenizer_hash.copy_from_slice(&bytes[32..64]);
        Ok(Self { version, bytes_per_token, n_tokens, vocab_size: u32_at(24), tokenizer_hash })
    }
}

fn hash_bytes(hex: &str) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return Err(Error::Other(format!("tokenizer hash must be 64 hex digits, got {hex:?}")));
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| Error::Other(format!("bad hex in tokenizer hash {hex:?}")))?;
    }
    Ok(out)
}

/// Write `ids` as a shard, atomically.
pub fn write_shard(path: &Path, ids: &[u32], vocab_size: usize, tokenizer_hash: &str) -> Result<()> {
    let bytes_per_token: u32 = if vocab_size <= 1 << 16 { 2 } else { 4 };
    let header = ShardHeader {
        version: VERSION,
        bytes_per_token,
        n_tokens: ids.len() as u64,
        vocab_size: vocab_size as u32,
        tokenizer_hash: hash_bytes(tokenizer_hash)?,
    };
    let mut buf = Vec::with_capacity(HEADER_LEN + ids.len() * bytes_per_token as usize);
    buf.extend_from_slice(&header.to_bytes());
    for &id in ids {
        if id as usize >= vocab_size {
            return Err(Error::Other(format!("token id {id} >= vocab size {vocab_size}")));
        }
        if bytes_per_token == 2 {
            buf.extend_from_slice(&(id as u16).to_le_bytes());
        } else {
            buf.extend_from_slice(&id.to_le_bytes());
        }
    }
    jielong_core::fs::write_atomic(path, &buf)
}

/// A memory-mapped shard.
pub struct Shard {
    path: PathBuf,
    header: ShardHeader,
    mmap: memmap2::Mmap,
}

impl Shard {
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::input(format!("{}: shard not found; {REGENERATE}", path.display()))
            } else {
                Error::io(path, e)
            }
        })?;
        // SAFETY: the file is opened read-only and shards are never modified in place (they are
        // replaced by rename), so the mapping stays valid for the life of `Shard`.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.at(path)?;
        let header = ShardHeader::parse(path, &mmap)?;
        let want = HEADER_LEN as u64 + header.n_tokens * header.bytes_per_token as u64;
        if mmap.len() as u64 != want {
            return Err(Error::format(
                path,
                format!(
                    "truncated or damaged: the header promises {} tokens ({want} bytes) but the file has {} bytes; {REGENERATE}",
                    header.n_tokens,
                    mmap.len()
                ),
            ));
        }
        Ok(Self { path: path.to_path_buf(), header, mmap })
    }

    pub fn header(&self) -> &ShardHeader {
        &self.header
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.header.n_tokens as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append ids `[start, start + n)` to `out`.
    pub fn read_into(&self, start: usize, n: usize, out: &mut Vec<u32>) {
        let data = &self.mmap[HEADER_LEN..];
        match self.header.bytes_per_token {
            2 => out.extend(
                data[start * 2..(start + n) * 2].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as u32),
            ),
            _ => out.extend(
                data[start * 4..(start + n) * 4]
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn shard_round_trips_both_widths() {
        let dir = tempfile::tempdir().unwrap();
        for vocab in [300usize, 100_000] {
            let p = dir.path().join(format!("s{vocab}.bin"));
            let ids: Vec<u32> = (0..1000).map(|i| (i * 37 % vocab) as u32).collect();
            write_shard(&p, &ids, vocab, H).unwrap();
            let s = Shard::open(&p).unwrap();
            assert_eq!(s.header().tokenizer_hash_hex(), H);
            let mut back = Vec::new();
            s.read_into(0, s.len(), &mut back);
            assert_eq!(back, ids);
            let mut part = Vec::new();
            s.read_into(10, 3, &mut part);
            assert_eq!(part, &ids[10..13]);
        }
    }

    #[test]
    fn shard_rejects_truncated_and_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.bin");
        write_shard(&p, &[1, 2, 3, 4], 10, H).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
        let e = Shard::open(&p).err().unwrap();
        assert!(e.is_user_error() && e.to_string().contains("truncated"), "{e}");
        std::fs::write(&p, b"GPT2 some other format entirely, long enough to hold a header.....").unwrap();
        let e = Shard::open(&p).err().unwrap();
        assert!(e.to_string().contains("not a jielong token shard"), "{e}");
        let mut v2 = bytes.clone();
        v2[8] = 9;
        std::fs::write(&p, &v2).unwrap();
        assert!(Shard::open(&p).err().unwrap().to_string().contains("version 9"));
        assert!(Shard::open(&dir.path().join("none.bin")).err().unwrap().is_user_error());
    }
}
