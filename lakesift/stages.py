"""The stage manifest (``stages.yaml``) of staged continued pre-training, Colossal-LLaMA-2's recipe: the
dataset job writes it beside a bucketed dataset (``buckets`` in its config, ``docs/vocab.md``), the trainer
runs it (``python -m training.train --stages DATASET/stages.yaml``).

    version: 1
    buckets:                       # what the dataset job wrote (filled in by the job)
      0: {folder: buckets/bucket-000, sequences: 812, domains: {news: 406, wiki: 406}}
      ...
    stages:
      - name: embed                # stage 1: align the new embedding rows, everything else frozen
        buckets: [0]
        freeze: new_rows
        steps: 50
      - name: full                 # stage 2: new knowledge, every parameter
        buckets: [1, 2]
        optimizer: reset
      - name: replay               # stage 3: a replay mix, 30% of it from another dataset
        buckets: [3]
        replay: [{path: /data/en-dataset, weight: 0.3}]

Each stage starts from the previous stage's last checkpoint (the first from ``--init-from``, or a fresh
model); ``optimizer: keep`` also carries the optimizer state over, ``reset`` (default) loads the weights
only, as Colossal's ``--load_checkpoint`` between stages does. ``freeze``: ``none``; ``non_embedding``
(only the input embedding and the output head train); ``new_rows`` (only the rows of the ids added by a
vocabulary expansion, ``base_vocab_size`` onwards, train: everything else, old rows included, stays bit
for bit). ``steps`` defaults to one pass over the stage's samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from lakesift.config import StrictModel


class Replay(StrictModel):
    path: str  # an MDS dataset folder or URI (relative paths: to the folder of stages.yaml)
    weight: float = Field(gt=0, lt=1)  # its share of the stage's samples


class Stage(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    buckets: list[int] | Literal["all"] = "all"
    replay: list[Replay] = []
    freeze: Literal["none", "non_embedding", "new_rows"] = "none"
    optimizer: Literal["reset", "keep"] = "reset"
    steps: int | None = Field(None, gt=0)  # default: one pass over the stage's samples
    lr: float | None = Field(None, gt=0)  # default: the scale's
    warmup: int | None = Field(None, ge=0)  # default: the scale's

    @model_validator(mode="after")
    def _replay_share(self):
        if sum(r.weight for r in self.replay) >= 1:
            raise ValueError(f"stage {self.name}: replay weights must sum to less than 1")
        return self


class Bucket(StrictModel):
    folder: str  # relative to the dataset folder
    sequences: int = Field(ge=0)
    domains: dict[str, int] = {}  # sequences per domain (category)


class StageManifest(StrictModel):
    version: Literal[1] = 1
    buckets: dict[int, Bucket] = {}
    stages: list[Stage] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_buckets(self):
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stages: duplicate stage names {names}")
        for s in self.stages:
            if s.buckets != "all":
                unknown = sorted(set(s.buckets) - set(self.buckets)) if self.buckets else []
                if unknown or not s.buckets:
                    raise ValueError(f"stage {s.name}: buckets {unknown or '[]'} not in the dataset "
                                     f"(has {sorted(self.buckets)})")
        return self

    def stage_buckets(self, stage: Stage) -> list[int]:
        return sorted(self.buckets) if stage.buckets == "all" else sorted(stage.buckets)

    def specs(self, stage: Stage, root: str) -> list[str]:
        """The trainer's ``--data`` specs (``PATH[:PROPORTION]``) of ``stage``, the dataset in ``root``:
        its buckets (natural proportions), then the replay datasets at their shares."""
        root = root.rstrip("/")
        ids = self.stage_buckets(stage)
        folders = [f"{root}/{self.buckets[b].folder}" for b in ids]
        if not stage.replay:
            return folders
        rest = 1.0 - sum(r.weight for r in stage.replay)
        total = sum(self.buckets[b].sequences for b in ids) or 1
        out = [f"{f}:{rest * self.buckets[b].sequences / total:.12f}" for f, b in zip(folders, ids, strict=True)
               if self.buckets[b].sequences]
        for r in stage.replay:
            path = r.path if "://" in r.path or Path(r.path).is_absolute() else f"{root}/{r.path}"
            out.append(f"{path}:{r.weight:.12f}")
        return out

    def samples(self, stage: Stage) -> int:
        """Samples of one pass over the stage: its buckets' sequences, scaled up by the replay share."""
        n = sum(self.buckets[b].sequences for b in self.stage_buckets(stage))
        return int(n / (1.0 - sum(r.weight for r in stage.replay)))


def load(path: str | Path) -> StageManifest:
    """``stages.yaml`` as a :class:`StageManifest` (errors name the file and the key)."""
    from lakesift.config import load_model

    return load_model(StageManifest, Path(path))
