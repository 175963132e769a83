//! Decoding state: what a causal model carries from one decoding step to the next, for one
//! sequence. Each family has its own (a KV cache for attention models, hidden and cell states
//! for recurrent nets, the last n − 1 tokens for an n-gram model); the engine, beam search, the
//! chat REPL's prefix reuse and context shift handle them all through this trait, and a model
//! recovers its own type with `downcast`.

use candle_core::Result;
use jielong_nn::KvCache;
use std::any::Any;

pub trait DecodeState: Send + std::fmt::Debug {
    /// Tokens the state has read.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Go back to the state after the first `len` tokens, if the family can; returns the
    /// number of tokens the state now holds (≤ `len`). A state that cannot rewind (a recurrent
    /// net's hidden state) clears itself and returns 0, and the engine feeds the tokens again.
    fn rewind(&mut self, len: usize) -> Result<usize>;
    fn clear(&mut self);
    /// An independent copy (a beam that forks).
    fn fork(&self) -> Box<dyn DecodeState>;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl Clone for Box<dyn DecodeState> {
    fn clone(&self) -> Self {
        self.fork()
    }
}

/// The family's own state type behind a `dyn DecodeState`, or an error naming both.
pub fn downcast<'a, T: 'static>(state: &'a mut dyn DecodeState, family: &str) -> Result<&'a mut T> {
    let any = state.as_any_mut();
    any.downcast_mut::<T>().ok_or_else(|| {
        candle_core::Error::Msg(format!("a {family} model was given a decoding state made by another family")).bt()
    })
}

impl DecodeState for KvCache {
    fn len(&self) -> usize {
        KvCache::len(self)
    }
    fn rewind(&mut self, len: usize) -> Result<usize> {
        self.truncate(len)?;
        Ok(KvCache::len(self))
    }
    fn clear(&mut self) {
        KvCache::clear(self)
    }
    fn fork(&self) -> Box<dyn DecodeState> {
        Box::new(self.clone())
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
