//! Trained vectors: one row per word, most frequent word first (the order every writer keeps
//! and every reader restores).

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub words: Vec<String>,
    pub dim: usize,
    /// `words.len() × dim`, row-major.
    pub data: Vec<f32>,
}

impl Embeddings {
    pub fn new(words: Vec<String>, dim: usize, data: Vec<f32>) -> Self {
        assert_eq!(words.len() * dim, data.len(), "embedding shape");
        Embeddings { words, dim, data }
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Word → row. When a word occurs twice (some downloaded files have duplicates), the first
    /// (more frequent) row wins.
    pub fn index(&self) -> HashMap<&str, usize> {
        let mut m = HashMap::with_capacity(self.words.len());
        for (i, w) in self.words.iter().enumerate().rev() {
            m.insert(w.as_str(), i);
        }
        m
    }

    /// Every row scaled to unit length (zero rows stay zero), for cosine similarity.
    pub fn unit_rows(&self) -> Vec<f32> {
        let mut out = self.data.clone();
        for row in out.chunks_mut(self.dim.max(1)) {
            let n = row.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            if n > 0.0 {
                for x in row.iter_mut() {
                    *x = (*x as f64 / n) as f32;
                }
            }
        }
        out
    }
}
