"""Cluster deployment: the Databricks asset bundle, the EMR step definitions and the code archive.

`databricks bundle validate` needs the Go CLI (not on PyPI; its Go module and npm package are not
served here) and a workspace login, so the bundle is checked against the Jobs API models of
`databricks-bundles` (generated from the CLI's bundle schema: unknown keys and wrong types fail), and
every task is checked against this repository: its file exists and its parameters parse with the
job's own argument parser. The code archive is proven by a real `spark-submit --py-files` run from a
folder that holds nothing of the checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

VAR = re.compile(r"\$\{var\.([A-Za-z_][A-Za-z0-9_]*)\}")
TOP_KEYS = {"bundle", "include", "variables", "targets", "resources", "workspace", "artifacts", "sync",
            "permissions", "run_as", "presets", "experimental", "python"}
TARGET_KEYS = {"mode", "default", "workspace", "variables", "resources", "run_as", "presets", "git",
               "cluster_id", "compute_id", "permissions", "artifacts", "sync", "bundle"}


def load_bundle() -> tuple[dict, dict[str, dict]]:
    main = yaml.safe_load((REPO / "databricks.yml").read_text())
    jobs: dict[str, tuple[dict, Path]] = {}
    for pattern in main.get("include", []):
        for f in sorted(REPO.glob(pattern)):
            doc = yaml.safe_load(f.read_text())
            assert set(doc) <= {"resources", "variables", "targets"}, f
            for name, job in doc["resources"].get("jobs", {}).items():
                assert name not in jobs, f"job {name} defined twice"
                jobs[name] = (job, f)
    return main, jobs


def resolve_vars(value, variables: dict):
    if isinstance(value, str):
        whole = VAR.fullmatch(value)
        if whole:
            return variables[whole.group(1)]
        return VAR.sub(lambda m: str(variables[m.group(1)]), value)
    if isinstance(value, list):
        return [resolve_vars(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: resolve_vars(v, variables) for k, v in value.items()}
    return value


def module_of(entry_point: Path) -> str:
    """``jobs/filter.py`` → ``jobs.filter``; ``jobs/dedup/main.py`` → ``jobs.dedup.main``."""
    return ".".join(entry_point.with_suffix("").parts)


def test_bundle_structure_and_targets():
    main, jobs = load_bundle()
    assert set(main) <= TOP_KEYS
    assert main["bundle"]["name"] == "lakesift"
    assert set(main["targets"]) == {"dev", "prod"}
    assert main["targets"]["dev"]["mode"] == "development" and main["targets"]["prod"]["mode"] == "production"
    assert [t for t, v in main["targets"].items() if v.get("default")] == ["dev"]
    declared = set(main["variables"])
    for t, target in main["targets"].items():
        assert set(target) <= TARGET_KEYS, t
        assert set(target.get("variables", {})) <= declared, f"target {t} sets undeclared variables"
    used = set(VAR.findall(json.dumps([j for j, _ in jobs.values()])))
    assert used <= declared, f"undeclared variables: {used - declared}"
    assert declared <= used, f"declared but unused variables: {declared - used}"
    assert "lakesift_pipeline" in jobs


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_bundle_job_matches_the_jobs_api_and_our_jobs(target):
    from databricks.bundles.jobs import Job

    main, jobs = load_bundle()
    variables = {k: v.get("default") for k, v in main["variables"].items()}
    variables.update(main["targets"][target].get("variables", {}))
    job, where = jobs["lakesift_pipeline"]
    Job.from_dict(job)  # as written, with ${var.*} references
    resolved = resolve_vars(job, variables)
    parsed = Job.from_dict(resolved)  # with this target's values: types must fit the API
    assert parsed.schedule.quartz_cron_expression and len(resolved["schedule"]["quartz_cron_expression"].split()) in (6, 7)
    assert resolved["schedule"]["pause_status"] == ("UNPAUSED" if target == "prod" else "PAUSED")

    tasks = {t["task_key"]: t for t in resolved["tasks"]}
    assert list(tasks) == ["ingest", "filter", "dedup", "tokenize", "report"]
    clusters = {c["job_cluster_key"] for c in resolved["job_clusters"]}
    order = list(tasks)
    for key, task in tasks.items():
        assert task["job_cluster_key"] in clusters, key
        for dep in task.get("depends_on", []):
            assert order.index(dep["task_key"]) < order.index(key), f"{key} depends on a later task"
        spt = task["spark_python_task"]
        script = (where.parent / spt["python_file"]).resolve()
        assert script.is_file() and REPO / "jobs" in script.parents, spt["python_file"]
        for lib in task.get("libraries", []):
            assert (where.parent / lib["requirements"]).resolve().is_file()
        # the parameters are a valid command line of that very job
        mod = __import__(module_of(script.relative_to(REPO)), fromlist=["parse_args"])
        args = mod.parse_args(spt["parameters"])
        if hasattr(args, "config") and args.config:
            assert (REPO / args.config).is_file(), args.config
        if hasattr(args, "lake"):
            assert args.lake == variables["lake"]
    # the stages hand tables to each other by the names the next one reads
    assert tasks["filter"]["spark_python_task"]["parameters"][5] == "documents"
    f_out = __import__("jobs.filter", fromlist=["x"]).parse_args(tasks["filter"]["spark_python_task"]["parameters"]).output
    d_args = __import__("jobs.dedup", fromlist=["x"]).parse_args(tasks["dedup"]["spark_python_task"]["parameters"])
    assert d_args.input == f_out


def test_bundle_validation_catches_mistakes():
    from databricks.bundles.jobs import Job

    _, jobs = load_bundle()
    job = json.loads(json.dumps(jobs["lakesift_pipeline"][0]))
    job["tasks"][0]["spark_python_task"]["paramters"] = []
    with pytest.raises(ValueError, match="paramters"):
        Job.from_dict(job)


def test_cluster_requirements_follow_pyproject():
    import tomllib

    def names(reqs):
        return {re.split(r"[<>=!~ \[;]", r.strip(), maxsplit=1)[0].lower() for r in reqs if r.strip()}

    deps = names(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    cluster = names(line for line in (REPO / "requirements" / "cluster.txt").read_text().splitlines()
                    if not line.startswith("#"))
    assert deps - {"pyspark", "delta-spark"} <= cluster, "cluster.txt misses runtime dependencies"
    assert not cluster & {"pyspark", "delta-spark"}, "the cluster provides Spark and Delta"


def test_code_archive_is_complete_and_reproducible(tmp_path):
    from lakesift.packaging import build_code_zip, code_zip_bytes

    assert code_zip_bytes() == code_zip_bytes()
    z = build_code_zip(tmp_path)
    names = set(zipfile.ZipFile(z).namelist())
    for need in ("udfs/steps/__init__.py", "udfs/resources.py", "jobs/filter.py", "jobs/common/session.py",
                 "lakesift/config.py", "conf/pipelines/dclm_baseline.yaml", "conf/banlists/domains.txt"):
        assert need in names, need
    assert not any(n.endswith(".pyc") or "__pycache__" in n for n in names)
    assert not any(n.startswith(("tests/", "training/", "sample/")) for n in names)


def test_package_renders_emr_steps_that_parse(tmp_path):
    out = tmp_path / "dist"
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "package.py"), "--out", str(out),
                        "--s3", "s3://bucket/ls", "--no-wheel"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    code = next(out.glob("lakesift-code-*.zip"))
    steps = json.loads((out / "emr" / "steps.json").read_text())
    assert [s["Name"] for s in steps] == ["lakesift-ingest", "lakesift-filter", "lakesift-dedup",
                                          "lakesift-tokenize", "lakesift-report"]
    for step in steps:
        args = step["Args"]
        assert "{" not in json.dumps(args), "placeholder left"
        assert args[args.index("--py-files") + 1] == f"s3://bucket/ls/{code.name}"
        main = next(a for a in args if a.endswith(".py"))
        rel = Path(main.removeprefix("s3://bucket/ls/"))
        assert (out / rel).is_file(), rel
        parsed = __import__(module_of(rel), fromlist=["x"]).parse_args(args[args.index(main) + 1:])
        if getattr(parsed, "config", None):
            assert parsed.config in zipfile.ZipFile(code).namelist()  # resolved inside the archive
    run = json.loads((out / "emr" / "serverless-filter-job-run.json").read_text())
    assert code.name in run["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"]


@pytest.mark.spark
def test_spark_submit_with_only_the_code_archive(tmp_path, spark):
    """What an EMR step does: the entry point and --py-files zip, nothing else of the checkout; config
    and banlists come out of the archive, and the lake is a file: URI."""
    from lakesift.packaging import build_code_zip

    lake = tmp_path / "lake"
    rows = [(f"d{i}", f"https://example{i}.org/page", "en", 0.99,
             ("The committee met on Tuesday to discuss the annual budget for the public library. " * 12
              + "\n") * 3 if i % 2 else "short")
            for i in range(12)]
    spark.createDataFrame(rows, "doc_id string, url string, language string, language_score double, text string") \
        .write.format("delta").save(str(lake / "documents"))
    far = tmp_path / "elsewhere"
    far.mkdir()
    shutil.copy2(REPO / "jobs" / "filter.py", far / "filter.py")
    code = build_code_zip(tmp_path / "dist")
    bindir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET")}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    r = subprocess.run([str(bindir / "spark-submit"), "--py-files", str(code), str(far / "filter.py"),
                        "--config", "conf/pipelines/dclm_baseline.yaml", "--skip", "quality,quality_threshold",
                        "--lake", f"file://{lake}"],
                       cwd=far, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    out = r.stdout + r.stderr  # spark-submit passes the Python driver's stderr to its stdout
    assert f"code from {code}" in out  # udfs / jobs were imported from the archive, not a checkout
    assert re.search(r"kept \d+ of 12 documents", out), out[-3000:]
    kept = spark.read.format("delta").load(str(lake / "filtered")).count()
    rejected = spark.read.format("delta").load(str(lake / "filtered_rejected")).count()
    assert kept + rejected == 12 and rejected >= 6


SHIP_PROBE = """
import sys
sys.path.insert(0, {repo!r})  # the driver runs from the checkout, as a spark_python_task does
from jobs.common.session import get_spark
from jobs.common.ship import ship_code

spark = get_spark("probe")

def where(batches):
    import pyarrow as pa
    import udfs.resources
    for b in batches:
        yield pa.RecordBatch.from_pydict({{"f": [udfs.resources.__file__] * b.num_rows,
                                          "banlist": [udfs.resources.resolve("banlists/domains.txt")] * b.num_rows}})

for r in spark.range(2, numPartitions=2).mapInArrow(where, "f string, banlist string").collect():
    print("EXECUTOR", r.f, r.banlist)
print("SHIPPED", ship_code(spark))
"""


@pytest.mark.spark
def test_ship_code_makes_executors_import_the_archive(tmp_path):
    """The Databricks spark_python_task path: a driver running from a checkout, executors that do not
    have it. get_spark ships the code zip with addPyFile (forced here on a local master with
    LAKESIFT_SHIP_CODE=1) and the Python workers import udfs, and read conf/ files, from it."""
    probe = tmp_path / "probe.py"
    probe.write_text(SHIP_PROBE.format(repo=str(REPO)))
    bindir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET")}
    env.update(PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}", LAKESIFT_SHIP_CODE="1")
    r = subprocess.run([str(bindir / "spark-submit"), str(probe)], cwd=tmp_path, capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    shipped = re.search(r"SHIPPED (\S+)", r.stdout).group(1)
    assert shipped.endswith(".zip") and Path(shipped).is_file()
    rows = re.findall(r"EXECUTOR (\S+) (\S+)", r.stdout)
    assert len(rows) == 2
    for f, banlist in rows:
        assert Path(shipped).name in f and str(REPO) not in f, f  # from the archive
        assert Path(banlist).is_file() and str(REPO) not in banlist
