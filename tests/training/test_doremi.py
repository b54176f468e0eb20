"""DoReMi: the weight update against hand-computed values; a three-domain property test (irreducible
random tokens, a learnable pattern, real text) against worst-case DRO without a reference; the same
weight trajectory for 1 and 4 accumulation steps, after a resume and on two processes; precomputed
reference losses; the ``--mix`` plans and the per-domain validation figures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from tests.training.conftest import SEQ, world_env
from tests.training.test_train import run as run_train
from training.domain_weights import DomainWeights

# -- the update rule ---------------------------------------------------------------------------------


def test_update_matches_hand_computed_values():
    w = DomainWeights(["a", "b", "c"], eta=1.0, smoothing=1e-3)
    # lambda = (5/10, 1/10, c absent -> its initial 0): exp(.5), exp(.1), exp(0) = 1.648721, 1.105171, 1
    # over their sum 3.753892 = .439203, .294407, .266390; then * 0.999 + 0.001 / 3
    alpha = w.update(torch.tensor([5.0, 1.0, 0.0]), torch.tensor([10.0, 10.0, 0.0]))
    assert alpha.tolist() == pytest.approx([0.439097, 0.294446, 0.266457], abs=2e-6)
    assert w.lam.tolist() == pytest.approx([0.5, 0.1, 0.0])
    assert w.average.tolist() == pytest.approx(alpha.tolist())  # the mean of the one updated alpha
    # step 2: only b seen (lambda .3); a keeps .5; c keeps 0
    alpha2 = w.update(torch.tensor([9.0, 3.0, 7.0]), torch.tensor([0.0, 10.0, 0.0]))
    assert w.lam.tolist() == pytest.approx([0.5, 0.3, 0.0])
    logits = np.log(alpha.numpy()) + np.array([0.5, 0.3, 0.0])
    expect = 0.999 * np.exp(logits) / np.exp(logits).sum() + 0.001 / 3
    assert alpha2.tolist() == pytest.approx(expect.tolist(), abs=2e-6)
    assert w.average.tolist() == pytest.approx(((alpha + alpha2) / 2).tolist())
    assert float(w.alpha.sum()) == pytest.approx(1.0, abs=1e-12)


def test_eta_zero_keeps_alpha_and_smoothing_one_is_uniform():
    start = [0.5, 0.3, 0.2]
    w = DomainWeights(["a", "b", "c"], eta=0.0, smoothing=0.0, initial=start)
    for _ in range(3):
        w.update(torch.tensor([9.0, 1.0, 4.0]), torch.tensor([3.0, 3.0, 3.0]))
    assert w.alpha.tolist() == pytest.approx(start) and w.average.tolist() == pytest.approx(start)
    u = DomainWeights(["a", "b", "c"], eta=1.0, smoothing=1.0, initial=start)
    u.update(torch.tensor([9.0, 1.0, 4.0]), torch.tensor([3.0, 3.0, 3.0]))
    assert u.alpha.tolist() == pytest.approx([1 / 3] * 3)


def test_average_counts_the_initial_weights_only_when_asked():
    a = DomainWeights(["x", "y"], eta=1.0, smoothing=0.0, initial=[0.5, 0.5], average_initial=True)
    b = DomainWeights(["x", "y"], eta=1.0, smoothing=0.0, initial=[0.5, 0.5])
    for w in (a, b):
        w.update(torch.tensor([math.log(3.0), 0.0]), torch.tensor([1.0, 1.0]))  # alpha -> (.75, .25)
    assert b.average.tolist() == pytest.approx([0.75, 0.25])
    assert a.average.tolist() == pytest.approx([0.625, 0.375])  # the reference code's mean with alpha_0


def test_state_round_trip_and_bad_initial_weights():
    w = DomainWeights(["x", "y", "z"])
    w.update(torch.tensor([1.0, 2.0, 0.0]), torch.tensor([4.0, 4.0, 0.0]))
    v = DomainWeights(["x", "y", "z"])
    v.load_state_dict({k: t.clone() for k, t in w.state_dict().items()})
    assert torch.equal(v.alpha, w.alpha) and torch.equal(v.average, w.average) and int(v.steps) == 1
    with pytest.raises(ValueError, match="weights for 3 domains, this run 2"):
        DomainWeights(["x", "y"]).load_state_dict(w.state_dict())
    with pytest.raises(ValueError, match="non-negative"):
        DomainWeights(["x", "y"], initial=[1.0, -1.0])


# -- three synthetic domains -------------------------------------------------------------------------


def write_domains(root, ref_zero: bool = False, n: int = 600, val: int = 60) -> None:
    """(a) ``random``: i.i.d. tokens 257..511 (irreducible: ln 255 nats a token), (b) ``pattern``: a
    counting pattern over 16 letters at a random phase (learnable), (c) ``text``: real English as
    bytes; one MDS stream per domain as the dataset job writes them, plus a validation set."""
    from streaming import MDSWriter

    rng = np.random.default_rng(0)
    text = (REPO / "sample" / "text" / "hq" / "wikipedia.txt").read_text(encoding="utf-8")
    stream: list[int] = []
    for para in text.split("\n"):
        if para.strip():
            stream += list(para.encode("utf-8")) + [256]
    total = n + val
    rows = {"random": [rng.integers(257, 512, SEQ + 1) for _ in range(total)],
            "pattern": [(o + np.arange(SEQ + 1)) % 16 + 65 for o in rng.integers(0, 16, total)],
            "text": [np.asarray(stream[i * (SEQ + 1):(i + 1) * (SEQ + 1)]) for i in range(total)]}
    cols = {"tokens": f"ndarray:uint16:{SEQ + 1}", "domain": "str"}
    if ref_zero:  # "reference losses" of 0: the excess is the proxy's loss (worst-case DRO, no reference)
        cols["ref_loss"] = f"ndarray:float16:{SEQ}"
    domains = {}
    for d, seqs in rows.items():
        with MDSWriter(out=str(root / "domains" / d), columns=cols, size_limit="256kb") as w:
            for s in seqs[:n]:
                w.write({"tokens": s.astype(np.uint16), "domain": d,
                         **({"ref_loss": np.zeros(SEQ, np.float16)} if ref_zero else {})})
        domains[d] = {"folder": f"domains/{d}", "tokens": n * (SEQ + 1)}
    with MDSWriter(out=str(root / "validation"), columns={"tokens": cols["tokens"], "domain": "str"},
                   size_limit="256kb") as w:
        for d, seqs in rows.items():
            for s in seqs[n:]:
                w.write({"tokens": s.astype(np.uint16), "domain": d})
    (root / "manifest.json").write_text(json.dumps({"domains": domains}))


def in_process(monkeypatch, *args: str) -> int:
    """``python -m training.train ARGS`` in this process (a world of one): no interpreter start-up."""
    from training import train

    world_env(monkeypatch)
    return train.main(list(args))


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    root = tmp_path_factory.mktemp("domains")
    write_domains(root / "data")
    write_domains(root / "zero", ref_zero=True)
    # the reference: trained on the natural mixture, long enough to be near each domain's floor
    with pytest.MonkeyPatch.context() as mp:
        assert in_process(mp, "--scale", "debug-bytes", "--data", str(root / "data"), "--mix", "natural", "--out",
                          str(root / "reference"), "--steps", "200", "--global-batch", "24", "--micro-batch", "12",
                          "--log-every", "100") == 0
    return root


def proxy_run(monkeypatch, data, out, *how: str, steps: int) -> None:
    """A proxy run over ``data`` (uniform mixture, global batch 24) with ``how`` naming the reference."""
    assert in_process(monkeypatch, "--scale", "debug-bytes", "--data", str(data), "--mix", "uniform", "--objective",
                      "doremi", *how, "--out", str(out), "--global-batch", "24", "--micro-batch", "12",
                      "--steps", str(steps), "--log-every", "50") == 0


def trajectory(out) -> list[dict]:
    return [json.loads(x) for x in (out / "doremi_trajectory.jsonl").read_text().splitlines()]


def test_doremi_moves_weight_to_text_where_worst_case_dro_picks_noise(domains, tmp_path, monkeypatch):
    proxy_run(monkeypatch, domains / "data", tmp_path / "doremi", "--reference", str(domains / "reference" / "final"),
              steps=100)
    proxy_run(monkeypatch, domains / "zero", tmp_path / "dro", "--reference-losses", steps=100)
    doremi = json.loads((tmp_path / "doremi" / "domain_weights.json").read_text())
    dro = json.loads((tmp_path / "dro" / "domain_weights.json").read_text())
    w, worst = doremi["train_domain_weights"], dro["train_domain_weights"]
    # without a reference the irreducible domain has the largest loss, and takes the weight
    assert worst["random"] > 0.8, worst
    # against the reference its excess is about zero: the weight flows to text, which the reference knows better
    assert w["random"] < 0.25 and w["text"] > 0.6 and w["text"] > 2 * max(w["random"], w["pattern"]), w
    traj = trajectory(tmp_path / "doremi")
    assert [r["step"] for r in traj] == list(range(1, 101))
    assert traj[-1]["average"] == pytest.approx(w)  # the output is the mean of alpha over the steps ...
    assert w != pytest.approx(doremi["final_domain_weights"], abs=1e-3)  # ... not the last alpha
    mean_alpha = {d: float(np.mean([r["alpha"][d] for r in traj])) for d in w}
    assert mean_alpha == pytest.approx(w, rel=1e-9)
    assert doremi["method"] == "doremi" and doremi["steps"] == 100 and doremi["domains"] == ["pattern", "random", "text"]
    assert all(abs(sum(r["alpha"].values()) - 1) < 1e-9 for r in traj)


def test_precomputed_reference_losses_give_the_same_weights(domains, tmp_path, monkeypatch):
    from training import doremi

    assert doremi.main(["ref-losses", "--reference", str(domains / "reference" / "final"), "--data",
                        str(domains / "data"), "--out", str(tmp_path / "withref")]) == 0
    proxy_run(monkeypatch, domains / "data", tmp_path / "live", "--reference", str(domains / "reference" / "final"),
              steps=12)
    proxy_run(monkeypatch, tmp_path / "withref", tmp_path / "pre", "--reference-losses", steps=12)
    a, b = trajectory(tmp_path / "live"), trajectory(tmp_path / "pre")
    for x, y in zip(a, b, strict=True):  # float16 reference losses: equal to about 1e-3
        assert y["alpha"] == pytest.approx(x["alpha"], rel=2e-3), (x["step"], x["alpha"], y["alpha"])


def proxy_args(domains, out, *extra: str) -> list[str]:
    return ["--scale", "debug-bytes", "--data", str(domains / "data"), "--mix", "uniform", "--objective", "doremi",
            "--reference", str(domains / "reference" / "final"), "--out", str(out), "--steps", "6",
            "--global-batch", "8", "--log-every", "100", *extra]


def assert_same_alphas(a: list[dict], b: list[dict], rel: float) -> None:
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for x, y in zip(a, b, strict=True):
        assert y["alpha"] == pytest.approx(x["alpha"], rel=rel), (x["step"], x["alpha"], y["alpha"])
        assert y["tokens"] == x["tokens"]


@pytest.mark.parametrize("lookahead", [False, True])
def test_accumulation_one_and_four_give_the_same_trajectory(domains, tmp_path, monkeypatch, lookahead):
    flag = ["--doremi-lookahead"] if lookahead else []
    assert in_process(monkeypatch, *proxy_args(domains, tmp_path / "a1", "--micro-batch", "8", *flag)) == 0
    assert in_process(monkeypatch, *proxy_args(domains, tmp_path / "a4", "--micro-batch", "2", *flag)) == 0
    a1, a4 = trajectory(tmp_path / "a1"), trajectory(tmp_path / "a4")
    assert_same_alphas(a1, a4, rel=1e-5)
    assert len({json.dumps(r["alpha"]) for r in a1}) == 6  # the weights moved every step


def test_resume_gives_the_identical_trajectory_and_next_loss(domains, tmp_path, monkeypatch, capsys):
    full, parts = tmp_path / "full", tmp_path / "parts"
    assert in_process(monkeypatch, *proxy_args(domains, full, "--log-every", "1")) == 0
    assert in_process(monkeypatch, *proxy_args(domains, parts, "--log-every", "1", "--stop-after", "3")) == 0
    with open(parts / "doremi_trajectory.jsonl", "a") as f:  # a crash after step 3's checkpoint, mid step 4
        f.write(json.dumps({**trajectory(parts)[-1], "step": 4}) + "\n")
    assert in_process(monkeypatch, *proxy_args(domains, parts, "--log-every", "1")) == 0
    assert "resumed from" in capsys.readouterr().out
    assert_same_alphas(trajectory(full), trajectory(parts), rel=1e-9)
    loss = {json.loads(x)["step"]: json.loads(x)["loss"] for x in (full / "metrics.jsonl").read_text().splitlines()}
    again = [json.loads(x) for x in (parts / "metrics.jsonl").read_text().splitlines()]
    assert next(r["loss"] for r in again if r["step"] == 4) == pytest.approx(loss[4], rel=1e-6)
    a = json.loads((full / "domain_weights.json").read_text())
    b = json.loads((parts / "domain_weights.json").read_text())
    assert b["train_domain_weights"] == pytest.approx(a["train_domain_weights"], rel=1e-9)


def test_two_processes_give_the_same_trajectory_as_one(domains, tmp_path, monkeypatch):
    assert in_process(monkeypatch, *proxy_args(domains, tmp_path / "one", "--micro-batch", "4")) == 0
    run_train(proxy_args(domains, tmp_path / "two", "--micro-batch", "2"), nproc=2)  # 2 ranks x 2 x 2
    assert_same_alphas(trajectory(tmp_path / "one"), trajectory(tmp_path / "two"), rel=1e-4)


# -- wiring ------------------------------------------------------------------------------------------


def test_mix_plans_and_their_errors(domains, tmp_path, shards):
    from training.data import plan

    root = str(domains / "data")
    p = plan([root])
    assert p.domains == ["pattern", "random", "text"] and p.specs == [root]
    u = plan([root], "uniform")
    assert [s.rsplit(":", 1)[1] for s in u.specs] == ["0.333333333333"] * 3
    assert u.specs[0].startswith(f"{root}/domains/pattern:")
    assert plan([root], "natural").specs == [f"{root}/domains/{d}" for d in p.domains]
    wfile = tmp_path / "w.json"
    wfile.write_text(json.dumps({"train_domain_weights": {"text": 3, "random": 1, "pattern": 0}, "steps": 5}))
    w = plan([root], str(wfile))
    assert w.weights == {"pattern": 0.0, "random": 0.25, "text": 0.75} and len(w.specs) == 2  # 0: not read
    wfile.write_text(json.dumps({"text": 1, "code": 1}))
    with pytest.raises(SystemExit, match=r"unknown: \['code'\]"):
        plan([root], str(wfile))
    with pytest.raises(SystemExit, match="--mix needs one dataset written with domain streams"):
        plan([str(shards)], "uniform")


def test_doremi_refuses_what_it_cannot_use(domains, tmp_path, monkeypatch, shards):
    from training.config import load_scale
    from training.objectives import build

    scale = load_scale("debug-bytes")
    with pytest.raises(SystemExit, match="needs --reference"):
        in_process(monkeypatch, "--scale", "debug-bytes", "--data", str(domains / "data"), "--objective", "doremi",
                   "--out", str(tmp_path / "x"))
    with pytest.raises(SystemExit, match="needs the data's domains"):
        in_process(monkeypatch, "--scale", "debug-bytes", "--data", str(domains / "data" / "domains" / "text"),
                   "--objective", "doremi", "--reference", str(domains / "reference" / "final"),
                   "--out", str(tmp_path / "y"))
    with pytest.raises(SystemExit, match="has the shape"):  # a reference of another scale
        in_process(monkeypatch, "--scale", "debug-tiny", "--data", str(domains / "data"), "--objective", "doremi",
                   "--reference", str(domains / "reference" / "final"), "--out", str(tmp_path / "z"))
    import argparse

    opts = argparse.Namespace(reference="r", reference_losses=False, doremi_lookahead=False)
    obj = build("doremi", scale, opts)
    obj.domain_ids = {"a": 0}
    with pytest.raises(ValueError, match="domain 'b', which is not among the run's domains"):
        obj.collate([{"tokens": np.zeros(SEQ + 1, np.uint16), "domain": "b"}])


def test_validation_figures_per_domain(domains):
    import torch.nn.functional as F

    from training.domain_eval import evaluate, validation_dataset
    from training.export import load

    model = load(domains / "reference" / "final")
    ds = validation_dataset(str(domains / "data"))
    r = evaluate(model, ds, batch_size=32)
    assert r["sequences"] == 180 and sorted(r["domains"]) == ["pattern", "random", "text"]
    # by hand: the random domain's mean loss over its 60 sequences
    toks = torch.from_numpy(np.stack([ds[i]["tokens"] for i in range(ds.num_samples) if ds[i]["domain"] == "random"])
                            .astype(np.int64))
    with torch.no_grad():
        logits = model(toks[:, :-1])
    want = float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), toks[:, 1:].reshape(-1)))
    assert r["domains"]["random"]["loss"] == pytest.approx(want, rel=1e-5)
    assert r["domains"]["random"]["tokens"] == 60 * SEQ
    assert r["domains"]["random"]["ppl"] == pytest.approx(math.exp(want), rel=1e-5)
    assert r["domains"]["random"]["loss"] > math.log(255) - 0.05  # irreducible: near ln 255 at best
    assert r["domains"]["pattern"]["ppl"] < 1.5 < r["domains"]["text"]["ppl"]
    assert r["worst_ppl"] == r["domains"]["random"]["ppl"]
    assert r["average_ppl"] == pytest.approx(np.mean([v["ppl"] for v in r["domains"].values()]))
