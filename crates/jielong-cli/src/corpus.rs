//! The built-in corpus: the jielong handbook (docs/handbook, English and 简体中文), compiled
//! into the binary so `jielong quickstart` needs nothing else.

use anyhow::Result;
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/handbook.rs"));

/// Write the handbook chapters under `dir` (so the user can open what the model was trained
/// on) and return the folder.
pub fn write_handbook(dir: &Path) -> Result<PathBuf> {
    anyhow::ensure!(!HANDBOOK.is_empty(), "this jielong was built without its handbook (docs/handbook is empty)");
    for (rel, text) in HANDBOOK {
        let path = dir.join(rel);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(*text) {
            jielong_core::fs::write_atomic(&path, text.as_bytes())?;
        }
    }
    Ok(dir.to_path_buf())
}

pub fn handbook_bytes() -> usize {
    HANDBOOK.iter().map(|(_, t)| t.len()).sum()
}
