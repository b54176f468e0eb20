"""The objective interface: the causal-LM loss by hand, the registry, the batch adapter and the field
check, and an objective with a frozen reference model and checkpointed state run through the trainer
(in this process, a world of one) and resumed."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from tests.training.conftest import world_env
from training import objectives
from training.config import load_scale
from training.model import Transformer, init_parameters
from training.objectives.base import Objective, register
from training.objectives.clm import CausalLM, causal_lm_loss

SCALE = load_scale("debug-bytes")


def test_causal_lm_loss_is_cross_entropy_plus_z_loss():
    torch.manual_seed(0)
    logits, targets = torch.randn(2, 5, 11), torch.randint(0, 11, (2, 5))
    logp = torch.log_softmax(logits, dim=-1)
    ce = -logp.gather(-1, targets.unsqueeze(-1)).mean()
    z = torch.logsumexp(logits, dim=-1).pow(2).mean()
    total, got_ce = causal_lm_loss(logits.bfloat16().float(), targets, 0.0)
    assert total is got_ce
    total, got_ce = causal_lm_loss(logits, targets, 1e-2)
    assert float(got_ce) == pytest.approx(float(ce), rel=1e-6)
    assert float(total) == pytest.approx(float(ce + 1e-2 * z), rel=1e-6)


def test_registry_and_the_clm_batch_adapter():
    clm = objectives.build("clm", SCALE)
    assert isinstance(clm, CausalLM) and clm.fields == ("tokens",)
    with pytest.raises(ValueError, match=r"unknown objective 'nope' \(known: .*clm"):
        objectives.build("nope", SCALE)
    import numpy as np

    samples = [{"tokens": np.arange(i, i + 80, dtype=np.uint16), "source": "x"} for i in range(3)]
    batch = clm.collate(samples)
    assert set(batch) == {"tokens"} and batch["tokens"].dtype == torch.int64
    assert batch["tokens"].shape == (3, SCALE.model.seq_len + 1) and batch["tokens"][2, 0] == 2
    assert Objective(SCALE).collate(samples)["tokens"].shape == (3, 80)  # the default: each field stacked
    model = Transformer(SCALE.model)
    init_parameters(model, 1)
    with torch.no_grad():
        loss, metrics = clm.loss(model, batch)
        logits = model(batch["tokens"][:, :-1])
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["tokens"][:, 1:].reshape(-1))
    assert float(metrics["loss"]) == pytest.approx(float(ce), rel=1e-5) and float(loss) > float(ce)


def test_a_field_the_shards_lack_is_refused(shards):
    from training.data import make_loader

    with pytest.raises(ValueError, match=r"needs the field\(s\) source; its shards have tokens"):
        make_loader([str(shards)], 4, 0, fields=("tokens", "source"))


@register
class WithReference(Objective):
    """CLM plus a frozen reference model's loss as a metric, and a checkpointed count of micro-batches."""

    name = "test-with-reference"
    frozen: list[bool] = []  # per micro-batch: was the reference sharded, frozen and in eval mode

    def __init__(self, scale, options=None):
        super().__init__(scale, options)
        self.clm = CausalLM(scale)
        self.reference = Transformer(scale.model)
        init_parameters(self.reference, 7)
        self.micro_batches = torch.zeros((), dtype=torch.int64)

    def collate(self, samples):
        return self.clm.collate(samples)

    def loss(self, model, batch):
        ref = self.reference
        self.frozen.append(not ref.training and not any(p.requires_grad for p in ref.parameters())
                           and all(hasattr(p, "device_mesh") for p in ref.parameters()))
        with torch.no_grad():
            _, ref_metrics = self.clm.loss(ref, batch)
        self.micro_batches += 1
        loss, metrics = self.clm.loss(model, batch)
        return loss, {**metrics, "reference_loss": ref_metrics["loss"]}

    def end_step(self):
        return {"micro_batches": int(self.micro_batches)}

    def extra_models(self):
        return {"reference": self.reference}

    def state_dict(self):
        return {"micro_batches": self.micro_batches}

    def load_state_dict(self, state):
        self.micro_batches.copy_(state["micro_batches"])


def test_an_objective_with_a_reference_and_state_runs_and_resumes(shards, tmp_path, monkeypatch, capsys):
    from training import train

    def run(*extra):
        world_env(monkeypatch)
        return train.main(["--scale", "debug-bytes", "--data", str(shards), "--out", str(tmp_path), "--steps", "4",
                           "--log-every", "1", "--objective", "test-with-reference", *extra])

    assert run("--stop-after", "2") == 0
    assert run() == 0
    assert "resumed from" in capsys.readouterr().out
    recs = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2, 3, 4]
    # two micro-batches a step; the count came back from step-2 (a fresh objective would restart at 2)
    assert [r["micro_batches"] for r in recs] == [2, 4, 6, 8]
    assert all(r["reference_loss"] > 5.5 for r in recs)  # the untrained reference stays near ln(512)
    assert recs[-1]["loss"] < recs[0]["loss"]
    assert len(WithReference.frozen) == 8 and all(WithReference.frozen)
    assert json.loads((tmp_path / "step-4" / "meta.json").read_text())["objective"] == "test-with-reference"
    world_env(monkeypatch)
    with pytest.raises(SystemExit, match="trained with the 'test-with-reference' objective, not 'clm'"):
        train.main(["--scale", "debug-bytes", "--data", str(shards), "--out", str(tmp_path), "--steps", "6"])
