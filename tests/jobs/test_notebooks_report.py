"""The Databricks notebooks, run locally top to bottom as plain Python, and the data report they write,
rendered by headless Chromium.

One lake for the module: notebook 00 (end to end) builds it from the bundled sample, exactly as on a
cluster but in this test's Spark session; the stage notebooks then run against it.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.spark

NOTEBOOKS = REPO / "notebooks"
CHARTS = ["funnel-docs", "funnel-tokens", "reasons", "lengths", "languages", "quality", "clusters", "mix"]


def run_notebook(name: str, env: dict[str, str], monkeypatch) -> dict:
    for k, v in env.items():
        monkeypatch.setenv(f"LAKESIFT_NB_{k.upper()}", v)
    cwd = os.getcwd()
    try:
        return runpy.run_path(str(NOTEBOOKS / name), run_name="__main__")
    finally:
        os.chdir(cwd)  # the notebooks make the repository root their working directory


@pytest.fixture(scope="module")
def lake(spark, shared, tmp_path_factory):
    root = tmp_path_factory.mktemp("nb")
    # file: URIs for the lake, the tokenizer and the eval sets: the code path of s3:// / abfss:// / gs://
    env = {"lake": (root / "lake").as_uri(),
           "tokenizer": (shared / "data/tokenizers/gpt-neox-20b/20B_tokenizer.json").as_uri(),
           "eval_dir": (shared / "data/eval").as_uri(), "report": str(root / "report.html")}
    with pytest.MonkeyPatch.context() as mp:
        ns = run_notebook("00_end_to_end.py", env, mp)
    assert ns["report"] == env["report"]
    return root


def _read(spark, lake: Path, table: str):
    return spark.read.format("delta").load(str(lake / "lake" / table))


def test_notebooks_are_databricks_source_format():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.py"))
    assert names == ["00_end_to_end.py", "01_ingest.py", "02_filter.py", "03_dedup.py", "04_tokenize.py",
                     "05_report.py", "_setup.py"]
    setup = (NOTEBOOKS / "_setup.py").read_text()
    assert setup.startswith("# Databricks notebook source\n") and "get_spark(" in setup
    compile(setup, "_setup.py", "exec")
    names.remove("_setup.py")
    for name in names:
        text = (NOTEBOOKS / name).read_text()
        assert text.startswith("# Databricks notebook source\n"), name
        # the shared preamble once: %run on Databricks, the same file run as plain Python elsewhere
        assert "# MAGIC %run ./_setup\n" in text and '"/_setup.py"' in text, name
        assert "get_spark(" not in text, name
        assert text.count("\n# COMMAND ----------\n") >= 4, name
        assert "params(globals()" in text, name  # widgets
        # no pipeline logic in notebooks: every stage goes through a job's main()
        assert "run_job(jobs." in text, name
        compile(text, name, "exec")


def test_end_to_end_notebook_builds_the_lake(spark, lake):
    runs = {r.job for r in _read(spark, lake, "_runs").select("job").collect()}
    assert {"ingest", "train_quality", "filter", "dedup", "tokenize"} <= runs
    n_docs = _read(spark, lake, "documents").count()
    n_kept = _read(spark, lake, "filtered").count()
    n_rej = _read(spark, lake, "filtered_rejected").count()
    assert n_docs > 100 and n_kept + n_rej == n_docs
    manifest = json.loads((lake / "lake" / "datasets" / "demo" / "manifest.json").read_text())
    assert manifest["sequences"] > 0
    assert (lake / "report.html").stat().st_size > 10_000


@pytest.mark.slow  # each stage's job is tested directly; the five notebook re-runs take ~2 min (make test-slow)
@pytest.mark.parametrize("name", ["01_ingest.py", "02_filter.py", "03_dedup.py", "04_tokenize.py", "05_report.py"])
def test_stage_notebook_runs_against_the_demo_lake(name, spark, lake, shared, monkeypatch, capsys):
    env = {"lake": (lake / "lake").as_uri(), "out": str(lake / "stage_out" / name.split(".")[0]),
           "tokenizer": str(shared / "data/tokenizers/gpt-neox-20b/20B_tokenizer.json"),
           "eval_dir": str(shared / "data/eval")}
    if name == "02_filter.py":
        env["set"] = f"quality.model={lake / 'lake' / 'models' / 'quality'}"
    if name == "05_report.py":
        env["out"] = str(lake / "stage_out" / "report.html")
    n_docs = _read(spark, lake, "documents").count()
    ns = run_notebook(name, env, monkeypatch)
    captured = capsys.readouterr()
    out = captured.out
    # every job logs one start and one done line with its run id, inputs / outputs and final counts
    job = {"01_ingest.py": "ingest", "02_filter.py": "filter", "03_dedup.py": "dedup", "04_tokenize.py": "tokenize",
           "05_report.py": "report"}[name]
    start = re.search(rf"lakesift\.{job} INFO event=start job={job} run_id=(\S+) inputs=\S+ outputs=\S+", captured.err)
    done = re.search(rf"lakesift\.{job} INFO event=done job={job} run_id=(\S+) .*seconds=[\d.]+$", captured.err, re.M)
    assert start and done, captured.err[-2000:]
    if job != "report":
        assert start.group(1) == done.group(1)
    if name == "01_ingest.py":  # the sample was ingested by notebook 00: nothing is added twice
        assert _read(spark, lake, "documents").count() == n_docs
    if name == "02_filter.py":
        assert "kept=False" in out  # the per-document explanation cell ran on rejected pages
        assert ns["run_id"].startswith("filter-dclm_baseline-")
    if name == "04_tokenize.py":
        assert "tokens, first ten:" in out
    if name == "05_report.py":
        assert Path(env["out"]).stat().st_size > 10_000


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not exe:
        pytest.fail("headless Chromium not found: `make setup` installs Debian's chromium package")
    return exe


def headless(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def report_data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))


def test_report_numbers_match_the_lake(spark, lake):
    from pyspark.sql import functions as F

    data = report_data((lake / "report.html").read_text())
    funnel = data["funnel"]
    assert funnel[0]["docs_in"] == _read(spark, lake, "documents").count()
    filt = [x for x in funnel if x["stage"] == "filter"]
    assert filt[-1]["docs_out"] == _read(spark, lake, "filtered").count()
    assert funnel[-1]["stage"] == "dedup" and funnel[-1]["docs_out"] == _read(spark, lake, "deduped").count()
    # every drop of the filter run appears under a reason, and they add up
    assert sum(r["docs"] for r in data["reasons"] if r["stage"] == "filter") == \
        funnel[0]["docs_in"] - filt[-1]["docs_out"]
    q = data["quality"]
    reached = next(x for x in funnel if x["step"] == q["step"])
    assert sum(q["hist"]["kept"]) == reached["docs_out"]
    assert sum(q["hist"]["dropped"]) == reached["docs_in"] - reached["docs_out"]
    assert q["threshold"] == pytest.approx(0.018112)
    ds = _read(spark, lake, "datasets").orderBy(F.desc("created_at")).first()
    assert data["mix"]["tokens"] == ds.tokens
    assert data["chars_per_token_measured"] and 2.0 < data["chars_per_token"] < 8.0
    assert data["samples"]["kept"] and all(s["text"] for s in data["samples"]["kept"])
    assert data["samples"]["rejected"][0]["docs"][0]["text"]  # text joined back from the input table


def test_report_renders_with_its_plots_in_headless_chromium(lake, tmp_path):
    report = lake / "report.html"
    html = report.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', html)  # self-contained: nothing fetched
    dom = headless(["--dump-dom", report.as_uri()], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for name in CHARTS:
        m = re.search(rf'<svg[^>]*data-chart="{name}".*?</svg>', dom.stdout, re.S)
        assert m, f"chart {name} missing from the rendered page"
        assert m.group(0).count("<rect") >= 2, f"chart {name} has no bars"
    assert 'class="threshold"' in dom.stdout
    shot = tmp_path / "report.png"
    r = headless([f"--screenshot={shot}", "--window-size=1100,6000", report.as_uri()], tmp_path)
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    from PIL import Image

    im = Image.open(shot).convert("RGB")
    colours = im.getcolors(maxcolors=1 << 20)
    by = {c: n for n, c in colours}
    # bars are drawn in the palette's first colours; the threshold line in red: they were painted
    assert by.get((0x4C, 0x78, 0xA8), 0) > 20_000
    assert by.get((0xF5, 0x85, 0x18), 0) > 500
    assert by.get((0xD6, 0x27, 0x28), 0) > 50


def test_render_without_optional_sections():
    from lakesift.report import render

    data = {"lake": "/x", "generated_at": "now", "runs": {"filter": {"run_id": "filter-x", "finished_at": "t"}},
            "funnel": [{"stage": "filter", "step": "a", "docs_in": 3, "docs_out": 1, "chars_in": 30, "chars_out": 9}],
            "reasons": [{"stage": "filter", "step": "a", "reason": "r<1", "docs": 2}],
            "distributions": {"bins_per_decade": 4}, "quality": None, "clusters": None, "mix": None,
            "chars_per_token": 4.0, "chars_per_token_measured": False, "samples": {"kept": [], "rejected": []}}
    html = render(data)
    assert "no quality_filter step" in html and "No dedup run" in html and "No tokenize run" in html
    assert "estimated at 4 characters per token" in html
    assert report_data(html)["funnel"][0]["docs_out"] == 1
