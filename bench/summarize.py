#!/usr/bin/env python3
"""Summarise bench/compare.sh's JSON lines: per preset and implementation the median and best
tokens/s, the ratio of jielong to each PyTorch mode, and MFU against one peak for everyone (the
best f32 matmul rate any run measured, candle's or MKL's), printed as a Markdown table.

Ratios three ways, because a shared host's speed drifts by ±20% within minutes: of the medians;
the median of the per-round ratios (compare.sh runs the three sides back to back in each round,
so round i of jielong is paired with round i of each PyTorch mode); and of the best runs (the
speed each side reaches when the host lets it, as `timeit` reports its minimum)."""

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
# Model family (gpt / llama) of the runs that report one; compare.sh runs a single family.
families = sorted({r["family"] for r in runs if "family" in r})
fam = f"; family: {', '.join(families)}" if families else ""
print(f"common peak: {peak:.1f} GFLOP/s (best 1024^3 f32 matmul of all runs); threads: {threads}{fam}\n")
print("| preset | implementation | tokens/s (median) | best | runs | jielong / this: medians | paired rounds | best | MFU (median, common peak) |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for preset in dict.fromkeys(r["preset"] for r in runs):
    by = {}
    for r in runs:
        if r["preset"] == preset:
            by.setdefault(label(r), []).append(r["tokens_per_s"])
    flops = next(r["flops_per_token"] for r in runs if r["preset"] == preset)
    med = {k: statistics.median(v) for k, v in by.items()}
    best = {k: max(v) for k, v in by.items()}
    ours = by.get("jielong", [])
    for k, v in by.items():
        nan = float("nan")
        ratio = med["jielong"] / med[k] if ours else nan
        paired = statistics.median(a / b for a, b in zip(ours, v)) if ours else nan
        ratio_best = best["jielong"] / best[k] if ours else nan
        mfu = flops * med[k] / (peak * 1e9)
        print(f"| {preset} | {k} | {med[k]:,.0f} | {best[k]:,.0f} | {len(v)} | {ratio:.2f}x | {paired:.2f}x | {ratio_best:.2f}x | {mfu * 100:.1f}% |")
