"""datatrove's 4-stage MinHash dedup on a JSONL file; run with datatrove's own venv by
bench/dedup_speed.py. Prints one JSON line: seconds and the ids it removed.

    python bench/datatrove_minhash_peer.py JSONL_FOLDER WORKDIR WORKERS
"""

import json
import sys
import time
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import (
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter


def main() -> None:
    src, work, workers = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    cfg = MinhashConfig()  # datatrove's defaults: 5-grams, 14 buckets x 8 hashes
    reader = JsonlReader(str(src), glob_pattern="*.jsonl", id_key="id", text_key="text")
    t0 = time.perf_counter()
    LocalPipelineExecutor([reader, MinhashDedupSignature(output_folder=str(work / "sigs"), config=cfg)],
                          tasks=workers, workers=workers, logging_dir=str(work / "logs1")).run()
    LocalPipelineExecutor([MinhashDedupBuckets(input_folder=str(work / "sigs"), output_folder=str(work / "buckets"),
                                               config=cfg)],
                          tasks=cfg.num_buckets, workers=workers, logging_dir=str(work / "logs2")).run()
    LocalPipelineExecutor([MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "ids"),
                                               config=cfg)],
                          tasks=1, logging_dir=str(work / "logs3")).run()
    reader2 = JsonlReader(str(src), glob_pattern="*.jsonl", id_key="id", text_key="text")
    LocalPipelineExecutor([reader2, MinhashDedupFilter(input_folder=str(work / "ids"),
                                                       exclusion_writer=JsonlWriter(str(work / "removed"))),
                           JsonlWriter(str(work / "kept"))],
                          tasks=workers, workers=workers, logging_dir=str(work / "logs4")).run()
    seconds = time.perf_counter() - t0
    removed = []
    import gzip

    for f in sorted((work / "removed").glob("*")):
        opener = gzip.open if f.suffix == ".gz" else open
        with opener(f, "rt") as fh:
            removed += [json.loads(line)["id"] for line in fh]
    print(json.dumps({"seconds": seconds, "removed": removed}))


if __name__ == "__main__":
    main()
