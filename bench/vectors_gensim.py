"""gensim 4.4.0 side of the word-vector benchmark (bench/vectors.sh).

Trains Word2Vec (skip-gram or CBOW) or FastText on a corpus file written by
`jielong vectors train --save-corpus` (one sentence a line, words split by spaces: the very
words jielong trained on), with the same hyperparameters, and prints one JSON line: words/s
(corpus words x epochs / seconds in `train`), analogy accuracy (evaluate_word_analogies,
restrict_vocab=30000) and WordSim353 / SimLex-999 Spearman rho (evaluate_word_pairs).

  .venv-bench/bin/python bench/vectors_gensim.py --method skipgram --corpus seen.txt --seed 1
"""

import argparse
import json
import logging
import time

from gensim.models import FastText, Word2Vec
from gensim.models.word2vec import LineSentence

p = argparse.ArgumentParser()
p.add_argument("--method", choices=["skipgram", "cbow", "fasttext"], required=True)
p.add_argument("--corpus", required=True)
p.add_argument("--dim", type=int, default=100)
p.add_argument("--window", type=int, default=5)
p.add_argument("--min-count", type=int, default=5)
p.add_argument("--negative", type=int, default=5)
p.add_argument("--sample", type=float, default=1e-3)
p.add_argument("--epochs", type=int, default=5)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--alpha", type=float, default=0.025)
p.add_argument("--bucket", type=int, default=2_000_000)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--data", default="data/gensim")
p.add_argument("--save", default=None, help="write the vectors in word2vec text format here")
a = p.parse_args()
logging.basicConfig(level=logging.WARNING)

sentences = LineSentence(a.corpus)
common = dict(vector_size=a.dim, window=a.window, min_count=a.min_count, negative=a.negative, hs=0,
              sample=a.sample, workers=a.threads, alpha=a.alpha, min_alpha=0.0001, seed=a.seed)
if a.method == "fasttext":
    model = FastText(sg=1, min_n=3, max_n=6, bucket=a.bucket, **common)
else:
    model = Word2Vec(sg=1 if a.method == "skipgram" else 0, **common)
model.build_vocab(sentences)
t0 = time.perf_counter()
model.train(sentences, total_examples=model.corpus_count, total_words=model.corpus_total_words, epochs=a.epochs)
seconds = time.perf_counter() - t0
wv = model.wv
acc, _ = wv.evaluate_word_analogies(f"{a.data}/questions-words.txt", restrict_vocab=30000)
ws = wv.evaluate_word_pairs(f"{a.data}/wordsim353.tsv")
sl = wv.evaluate_word_pairs(f"{a.data}/simlex999.txt")
if a.save:
    wv.save_word2vec_format(a.save)
print(json.dumps({
    "tool": "gensim", "method": a.method, "seed": a.seed, "threads": a.threads,
    "words_per_second": model.corpus_total_words * a.epochs / seconds, "train_seconds": seconds,
    "vocab": len(wv), "analogy": acc, "wordsim353": ws[1][0], "simlex999": sl[1][0], "ws_oov": ws[2],
}))
