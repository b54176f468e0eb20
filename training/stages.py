"""Staged continued pre-training (``python -m training.train --stages DATASET/stages.yaml``): the stages of a
bucketed dataset's manifest (``lakesift/stages.py``) run in order, in one process group, each a training
run of its own in ``OUT/stage-<i>-<name>/`` (checkpoints, metrics, TensorBoard, its ``final/`` export).

* stage 1 starts from ``--init-from`` (e.g. a checkpoint resized by ``python -m training.resize``), or
  new weights; stage i > 1 from stage i - 1's last checkpoint: its weights, and with ``optimizer: keep``
  its optimizer state too (parameters it left frozen start with a fresh state);
* each stage has its own learning-rate schedule (warmup, cosine decay), ``steps`` (default: one pass
  over its samples), ``lr`` and ``warmup`` (default: the scale's) and ``freeze`` (``training.freeze``);
* a stage whose run finished (its last checkpoint at its last step) is skipped when the command is run
  again; a stage that was interrupted resumes exactly from its newest checkpoint (``--stop-after`` stops
  the stage it falls in), so the same command continues the whole sequence;
* ``OUT/stages.json`` records each stage: its data specs, steps, freeze, optimizer, start and final loss.
"""

from __future__ import annotations

import json
from pathlib import Path


def stage_dir(out: Path, index: int, name: str) -> Path:
    return out / f"stage-{index}-{name}"


def last_checkpoint(folder: Path) -> tuple[Path, int] | None:
    """The newest complete ``step-N`` of a stage's folder and its step, or None."""
    done = sorted((p for p in folder.glob("step-*") if (p / "meta.json").exists()), key=lambda p: int(p.name[5:]))
    return (done[-1], int(done[-1].name[5:])) if done else None


def final_loss(folder: Path) -> float | None:
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return None
    lines = path.read_text().splitlines()
    return json.loads(lines[-1])["loss"] if lines else None


def run_stages(args, world, train_run) -> list[dict]:
    """Run every stage of ``args.stages`` (``train_run(args, world, RunSpec)`` trains one); returns the
    records written to ``OUT/stages.json``."""
    from lakesift.config import ConfigError
    from lakesift.stages import load
    from training import start
    from training.config import load_scale
    from training.train import RunSpec

    path = Path(args.stages)
    try:
        manifest = load(path)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    root, out = str(path.resolve().parent), Path(args.out)
    global_batch = args.global_batch or load_scale(args.scale).global_batch
    prev = start.inspect(args.init_from)
    records = []
    for i, st in enumerate(manifest.stages, 1):
        folder = stage_dir(out, i, st.name)
        steps = st.steps or max(1, manifest.samples(st) // global_batch)
        specs = manifest.specs(st, root)
        last = last_checkpoint(folder)
        record = {"stage": i, "name": st.name, "out": str(folder), "data": specs, "steps": steps, "freeze": st.freeze,
                  "optimizer": st.optimizer, "start": prev.path or "new", "lr": st.lr, "warmup": st.warmup}
        if last is not None and last[1] >= steps:
            if world.main:
                print(f"stage {i}/{len(manifest.stages)} {st.name}: done ({last[0]}), skipped", flush=True)
        else:
            if world.main:
                print(f"stage {i}/{len(manifest.stages)} {st.name}: {steps} steps on {len(specs)} stream(s), freeze "
                      f"{st.freeze}, optimizer {st.optimizer}, from {prev.path or 'new weights'}", flush=True)
            keep = st.optimizer == "keep" and prev.kind == "dcp"
            train_run(args, world, RunSpec(specs, folder, prev, st.freeze, steps, st.lr, st.warmup, keep,
                                           args.stop_after))
            last = last_checkpoint(folder)
            if last is None or last[1] < steps:  # stopped early (--stop-after): the next stages wait
                record["finished"] = False
                records.append(record)
                break
        record.update(finished=True, checkpoint=str(last[0]), final_loss=final_loss(folder))
        records.append(record)
        prev = start.inspect(str(last[0]))
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "stages.json").write_text(json.dumps(records, indent=1))
    return records
