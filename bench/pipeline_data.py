#!/usr/bin/env python3
"""Turn the --bench data sets of scripts/fetch-data into JSONL inputs for the data-pipeline
benchmark (jielong data clean vs datatrove): one {"id", "text"} object per line.

  data/spam-assassin/*/*.json  → target/bench-pipeline/emails.jsonl   (raw e-mails, headers kept)
  data/chinese-poetry/**.json  → target/bench-pipeline/poetry.jsonl   (one poem per line: title,
                                  author, paragraphs; the collections overlap, so near-duplicates)
  data/gensim/enwiki-*.bz2     → target/bench-pipeline/wiki.jsonl     (articles, wikitext markup
                                  stripped by a few regexes: links, templates, refs, tables)

Usage: python3 bench/pipeline_data.py [OUT_DIR]
"""
import bz2, glob, json, os, re, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "target", "bench-pipeline")
os.makedirs(out, exist_ok=True)
data = os.path.join(root, "data")

n = 0
with open(os.path.join(out, "emails.jsonl"), "w", encoding="utf-8") as f:
    for p in sorted(glob.glob(os.path.join(data, "spam-assassin", "*", "*.json"))):
        d = json.load(open(p, encoding="utf-8"))
        f.write(json.dumps({"id": f"{d['group']}/{d['id']}", "text": d["text"]}, ensure_ascii=False) + "\n")
        n += 1
print(f"emails.jsonl: {n} documents")

n = 0
with open(os.path.join(out, "poetry.jsonl"), "w", encoding="utf-8") as f:
    for p in sorted(glob.glob(os.path.join(data, "chinese-poetry", "**", "*.json"), recursive=True)):
        try:
            d = json.load(open(p, encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if not isinstance(d, list):
            continue
        for i, poem in enumerate(d):
            if not isinstance(poem, dict):
                continue
            paras = poem.get("paragraphs") or poem.get("content") or []
            if isinstance(paras, str):
                paras = [paras]
            paras = [x for x in paras if isinstance(x, str)]
            if not paras:
                continue
            head = " ".join(x for x in [poem.get("title") or poem.get("rhythmic") or "", poem.get("author") or ""] if isinstance(x, str))
            f.write(json.dumps({"id": f"{os.path.relpath(p, data)}#{i}", "text": head + "\n" + "\n".join(paras)}, ensure_ascii=False) + "\n")
            n += 1
print(f"poetry.jsonl: {n} documents")

def strip_wikitext(t):
    for _ in range(3):
        t = re.sub(r"\{\{[^{}]*\}\}", "", t)
    t = re.sub(r"\{\|.*?\|\}", "", t, flags=re.S)
    t = re.sub(r"<ref[^>]*/>|<ref.*?</ref>", "", t, flags=re.S)
    t = re.sub(r"<[^>]+>", "", t)
    t = re.sub(r"\[\[(?:File|Image|Category):[^\]]*\]\]", "", t)
    t = re.sub(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]", r"\1", t)
    t = re.sub(r"\[https?://[^ \]]* ?([^\]]*)\]", r"\1", t)
    t = re.sub(r"'{2,}", "", t)
    t = re.sub(r"^=+\s*(.*?)\s*=+\s*$", r"\1", t, flags=re.M)
    return re.sub(r"\n{3,}", "\n\n", t).strip()

n = 0
wiki = glob.glob(os.path.join(data, "gensim", "enwiki-*.bz2"))
with open(os.path.join(out, "wiki.jsonl"), "w", encoding="utf-8") as f:
    if wiki:
        xml = bz2.open(wiki[0], "rt", encoding="utf-8").read()
        for m in re.finditer(r"<title>(.*?)</title>.*?<text[^>]*>(.*?)</text>", xml, flags=re.S):
            import html
            text = strip_wikitext(html.unescape(m.group(2)))
            if text and not text.lower().startswith("#redirect"):
                f.write(json.dumps({"id": m.group(1), "text": text}, ensure_ascii=False) + "\n")
                n += 1
print(f"wiki.jsonl: {n} documents")
