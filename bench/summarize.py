#!/usr/bin/env python3
"""Summarise bench/compare.sh's JSON lines: per preset and implementation the median tokens/s,
the ratio of jielong to each PyTorch mode, and MFU against one peak for everyone (the best
f32 matmul rate any run measured, candle's or MKL's), printed as a Markdown table."""

import json
import statistics
import sys

runs = [json.loads(line) for line in sys.stdin if line.startswith("{")]
peak = max(r["peak_gflops"] for r in runs)


def label(r):
    if r["impl"] == "jielong":
        return "jielong"
    return "torch.compile" if "compile" in r["impl"] else "PyTorch eager"


threads = sorted({r["threads"] for r in runs})
print(f"common peak: {peak:.1f} GFLOP/s (best 1024^3 f32 matmul of all runs); threads: {threads}\n")
print("| preset | implementation | tokens/s (median) | runs | ratio jielong / this | MFU (common peak) |")
print("|---|---|---:|---:|---:|---:|")
for preset in dict.fromkeys(r["preset"] for r in runs):
    by = {}
    for r in runs:
        if r["preset"] == preset:
            by.setdefault(label(r), []).append(r)
    med = {k: statistics.median(x["tokens_per_s"] for x in v) for k, v in by.items()}
    for k, v in by.items():
        ratio = med["jielong"] / med[k] if "jielong" in med else float("nan")
        mfu = v[0]["flops_per_token"] * med[k] / (peak * 1e9)
        print(f"| {preset} | {k} | {med[k]:,.0f} | {len(v)} | {ratio:.2f}x | {mfu * 100:.1f}% |")
