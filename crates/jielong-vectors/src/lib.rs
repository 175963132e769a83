//! Word vectors learned from co-occurrence, without tensors: word2vec's skip-gram and CBOW
//! (negative sampling or hierarchical softmax, frequent-word subsampling, a linearly decaying
//! learning rate, lock-free parallel SGD), GloVe (weighted least squares on distance-weighted
//! co-occurrence counts, AdaGrad) and fastText (character n-grams hashed into buckets, so unseen
//! words still get a vector). The vectors are written in the formats other tools read
//! (word2vec text and binary, GloVe text, fastText `.vec`) and evaluated on the standard sets
//! (Google analogies, WordSim353, SimLex-999).
//!
//! The modules follow the path of the data: [`corpus`] cuts text into sentences of word ids
//! over a [`vocab::Vocab`]; [`sampling`] (subsampling, the negative table) and [`huffman`] are
//! the word2vec machinery; [`kernels`] holds the per-pair SGD updates that [`word2vec`],
//! [`fasttext`] share through the racy [`hogwild::SharedMatrix`]; [`glove`] is its own trainer;
//! [`embeddings`] and [`formats`] hold and write the result; [`eval`] measures it, [`pca`] and
//! [`tsne`] draw it.

pub mod corpus;
pub mod embeddings;
pub mod eval;
pub mod fasttext;
pub mod fasttext_bin;
pub mod formats;
pub mod glove;
pub mod hogwild;
pub mod huffman;
pub mod kernels;
pub mod pca;
pub mod sampling;
pub mod schedule;
pub mod sigmoid;
pub mod tsne;
pub mod vocab;
pub mod word2vec;

pub use corpus::{Corpus, CorpusOptions};
pub use embeddings::Embeddings;
pub use vocab::Vocab;
