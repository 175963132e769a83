#!/usr/bin/env python3
"""The datatrove side of the data-pipeline benchmark: the same stages and thresholds as
`jielong data clean --pipeline bench/pipeline-bench.toml`, on the same JSONL, on N workers.

  reader → GopherRepetitionFilter → GopherQualityFilter → C4QualityFilter → FineWebQualityFilter
         → MinhashDedupSignature (+ writer of the survivors)
  MinhashDedupBuckets → MinhashDedupCluster
  reader → MinhashDedupFilter → PIIFormatter → writer

Prints one JSON line: seconds, documents in and kept. Peak memory is measured by the caller
(/usr/bin/time -v). Usage: pipeline_datatrove.py INPUT.jsonl WORK_DIR WORKERS [dedup]
("dedup": MinHash only, no filters and no PII, as bench/pipeline-dedup.toml; for Chinese text,
which datatrove's English word tokenizer cannot judge).
"""
import json, os, shutil, sys, time

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.formatters import PIIFormatter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

def main():
    inp, work, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    dedup_only = len(sys.argv) > 4 and sys.argv[4] == "dedup"
    filters = [] if dedup_only else [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(filter_no_terminal_punct=True), FineWebQualityFilter()]
    shutil.rmtree(work, ignore_errors=True)
    cfg = MinhashConfig()  # 5-grams, 14 buckets x 8 hashes, 64-bit
    folder, name = os.path.dirname(os.path.abspath(inp)), os.path.basename(inp)
    t0 = time.time()
    # One task per worker: the reader splits the file's lines across tasks.
    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(folder, glob_pattern=name, id_key="id"),
            *filters,
            JsonlWriter(f"{work}/filtered"),
            MinhashDedupSignature(output_folder=f"{work}/sigs", config=cfg),
        ],
        tasks=workers, workers=workers, logging_dir=f"{work}/logs/1", skip_completed=False,
    ).run()
    LocalPipelineExecutor(
        pipeline=[MinhashDedupBuckets(input_folder=f"{work}/sigs", output_folder=f"{work}/buckets", config=cfg)],
        tasks=cfg.num_buckets, workers=workers, logging_dir=f"{work}/logs/2", skip_completed=False,
    ).run()
    LocalPipelineExecutor(
        pipeline=[MinhashDedupCluster(input_folder=f"{work}/buckets", output_folder=f"{work}/remove_ids", config=cfg)],
        tasks=1, workers=1, logging_dir=f"{work}/logs/3", skip_completed=False,
    ).run()
    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(f"{work}/filtered"),
            MinhashDedupFilter(input_folder=f"{work}/remove_ids"),
            *([] if dedup_only else [PIIFormatter()]),
            JsonlWriter(f"{work}/output"),
        ],
        tasks=workers, workers=workers, logging_dir=f"{work}/logs/4", skip_completed=False,
    ).run()
    seconds = time.time() - t0
    docs_in = sum(1 for _ in open(inp, encoding="utf-8"))
    kept = 0
    import gzip, glob
    for p in glob.glob(f"{work}/output/*"):
        with gzip.open(p, "rt", encoding="utf-8") as f:
            kept += sum(1 for _ in f)
    print(json.dumps({"tool": "datatrove", "seconds": round(seconds, 2), "docs_in": docs_in, "kept": kept}))


if __name__ == "__main__":
    main()
