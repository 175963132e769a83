"""The English Wikipedia excerpt of the gensim 4.4.0 wheel as plain text, for the word-vector
benchmark: bench/vectors.sh 1 2 target/bench-wiki/wiki.txt

    .venv-bench/bin/python bench/wiki_text.py [DUMP] [OUT]

DUMP defaults to data/gensim/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2
(scripts/fetch-data), OUT to target/bench-wiki/wiki.txt. Articles of the main namespace only,
redirects dropped; the wikitext is stripped with gensim's own `filter_wiki` (links keep their
text, templates, tables, references and markup go; bold and italic quotes are removed here), then each article's paragraphs are written
one per line with a blank line between articles. Prints the article and word counts.
"""
import bz2
import os
import re
import sys

from gensim.corpora.wikicorpus import extract_pages, filter_wiki

dump = sys.argv[1] if len(sys.argv) > 1 else "data/gensim/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
out = sys.argv[2] if len(sys.argv) > 2 else "target/bench-wiki/wiki.txt"
os.makedirs(os.path.dirname(out), exist_ok=True)
articles = words = 0
with bz2.open(dump, "rb") as f, open(out + ".tmp", "w", encoding="utf-8") as w:
    for title, text, pageid in extract_pages(f, filter_namespaces=("0",)):
        if text.lstrip().lower().startswith("#redirect"):
            continue
        plain = filter_wiki(text)
        lines = []
        for line in plain.splitlines():
            line = re.sub(r"^[=*#:;!| ]+|[= ]+$", "", line)
            line = re.sub(r"'{2,}", "", line).strip()  # bold and italic quotes
            # Keep prose: drop leftover table rows and one-word scraps.
            if len(line.split()) >= 3 and not line.startswith(("{", "}", "|")):
                lines.append(line)
        if lines:
            w.write("\n".join(lines) + "\n\n")
            articles += 1
            words += sum(len(l.split()) for l in lines)
os.replace(out + ".tmp", out)
print(f"{out}: {articles} articles, {words} words (whitespace-separated)")
