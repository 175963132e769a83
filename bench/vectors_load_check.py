"""Do jielong's vector files load in gensim 4.4.0, and give the same vectors and scores?

  .venv-bench/bin/python bench/vectors_load_check.py RUN_DIR [EVAL_JSON|-] [OOV_WORDS]

RUN_DIR is a folder written by `jielong vectors train`. Checks:
1. KeyedVectors.load_word2vec_format reads vectors.bin (binary=True) and vectors.txt, and
   both give bit-identical float32 matrices (the text is written with round-trip decimals);
2. they equal the matrix read straight from vectors.bin's bytes with numpy (an independent
   reader of word2vec.c's layout), in the same word order;
3. with EVAL_JSON (`jielong vectors eval --json` output), gensim's evaluate_word_analogies
   (restrict_vocab=30000) and evaluate_word_pairs agree with jielong's figures;
4. when RUN_DIR holds model.bin (`--method fasttext --bin`), gensim's load_facebook_model reads
   it: same words and counts, every in-vocabulary vector equal to vectors.vec's (gensim
   recomputes each word's mean from the word row and the n-gram buckets it hashes itself), and
   for OOV_WORDS (comma-separated, optional third argument) the nearest neighbours gensim finds
   for its n-gram vector, to set beside `jielong vectors neighbors --vectors RUN_DIR/model.bin`.
Prints what it checked; exits 1 on any mismatch.
"""

import json
import sys

import numpy as np
from gensim.models import KeyedVectors

run = sys.argv[1]
b = KeyedVectors.load_word2vec_format(f"{run}/vectors.bin", binary=True)
t = KeyedVectors.load_word2vec_format(f"{run}/vectors.txt", binary=False)
assert b.index_to_key == t.index_to_key, "word order differs between .bin and .txt"
assert np.array_equal(b.vectors.view(np.uint32), t.vectors.view(np.uint32)), "text and binary differ"

raw = open(f"{run}/vectors.bin", "rb").read()
nl = raw.index(b"\n")
n, dim = map(int, raw[:nl].split())
pos, words, rows = nl + 1, [], []
for _ in range(n):
    sp = raw.index(b" ", pos)
    words.append(raw[pos:sp].decode())
    rows.append(np.frombuffer(raw, dtype="<f4", count=dim, offset=sp + 1))
    pos = sp + 1 + 4 * dim + 1
assert words == b.index_to_key, "gensim's word order differs from the file's"
assert np.array_equal(np.stack(rows).view(np.uint32), b.vectors.view(np.uint32)), "gensim's vectors differ from the file's bytes"
print(f"{run}: {n} words x {dim}: .bin and .txt load in gensim {__import__('gensim').__version__}, bit-identical to the file's bytes")

if len(sys.argv) > 2 and sys.argv[2] != "-":
    ours = json.load(open(sys.argv[2]))
    qfile = ours["analogies"]["file"]
    acc, sections = b.evaluate_word_analogies(qfile, restrict_vocab=ours["analogies"]["restrict"])
    total = [s for s in sections if s["section"] == "Total accuracy"][0]
    g = (len(total["correct"]), len(total["correct"]) + len(total["incorrect"]))
    j = (ours["analogies"]["correct"], ours["analogies"]["answered"])
    print(f"analogies: gensim {g[0]}/{g[1]} = {acc:.4f}, jielong {j[0]}/{j[1]} = {ours['analogies']['accuracy']:.4f}")
    ok = g == j
    for p in ours["pairs"]:
        pr, sp, oov = b.evaluate_word_pairs(p["file"])
        print(f"{p['file']}: gensim rho {sp[0]:.6f} (oov {oov:.2f}%), jielong rho {p['spearman']:.6f} (oov {100 * p['oov_ratio']:.2f}%)")
        ok &= abs(sp[0] - p["spearman"]) < 1e-4 and abs(oov - 100 * p["oov_ratio"]) < 1e-6
    if not ok:
        sys.exit("evaluation differs")
    print("evaluation: same as gensim")

import os

if os.path.exists(f"{run}/model.bin"):
    from gensim.models.fasttext import load_facebook_model

    ft = load_facebook_model(f"{run}/model.bin")
    vec = KeyedVectors.load_word2vec_format(f"{run}/vectors.vec", binary=False)
    assert ft.wv.index_to_key == vec.index_to_key, "model.bin's word order differs from vectors.vec's"
    diff = np.abs(ft.wv.vectors - vec.vectors).max()
    print(f"{run}/model.bin: load_facebook_model reads {len(ft.wv)} words x {ft.wv.vector_size}, "
          f"{ft.wv.bucket} buckets; largest difference from vectors.vec {diff:.2e}")
    assert diff < 1e-5, "gensim's vectors from model.bin differ from vectors.vec"
    for w in (sys.argv[3].split(",") if len(sys.argv) > 3 else []):
        near = ft.wv.most_similar(w, topn=5)
        print(f"  gensim, {w} (in vocabulary: {w in ft.wv.key_to_index}): " + ", ".join(f"{x} {s:.4f}" for x, s in near))
