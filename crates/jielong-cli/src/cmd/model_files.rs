//! The one place where `--checkpoint PATH` is turned into a causal language model: either a
//! training run's checkpoint, or a single model file of a family that is not trained by
//! `jielong train` (today: an n-gram model trained with `jielong ngram train --units tokens`).
//!
//! Such families join through [`FILE_LOADERS`]: a recogniser that looks at the file (its magic
//! bytes, cheaply) and a loader that returns the model with its tokenizer. `generate`, `eval`
//! and `chat` all load through [`super::generate::ModelArgs::load`], which asks these loaders
//! first and falls back to checkpoints, so a new file-based family is one entry here and no
//! change to any command.

use jielong_models::Model;
use jielong_tokenizer::Tokenizer;
use std::path::{Path, PathBuf};

/// A model, the tokenizer its ids belong to, and the folder that tokenizer came from (a chat
/// template may sit beside it).
pub type FileModel = (Box<dyn Model>, Tokenizer, PathBuf);

/// A kind of single-file model that loads as a causal LM.
pub struct FileLoader {
    /// What the file is, for messages.
    pub name: &'static str,
    /// Whether `path` (a file) is of this kind.
    pub recognises: fn(&Path) -> jielong_core::Result<bool>,
    /// Load it; `tokenizer` overrides the one the file names.
    pub load: fn(&Path, Option<&Path>) -> jielong_core::Result<FileModel>,
}

/// Every single-file model kind, asked in order.
pub const FILE_LOADERS: &[FileLoader] = &[FileLoader {
    name: "n-gram model (jielong ngram train --units tokens)",
    recognises: jielong_ngram::binary::is_binary,
    load: |path, tokenizer| {
        let (lm, tk, dir) = jielong_ngram::causal::NgramLm::load(path, tokenizer)?;
        Ok((Box::new(lm), tk, dir))
    },
}];

/// The loader that recognises `path`, if it is a file one of them knows.
pub fn loader_for(path: &Path) -> jielong_core::Result<Option<&'static FileLoader>> {
    if !path.is_file() {
        return Ok(None);
    }
    for l in FILE_LOADERS {
        if (l.recognises)(path)? {
            return Ok(Some(l));
        }
    }
    Ok(None)
}
