#!/usr/bin/env python
"""Build what a Spark cluster without this checkout needs (EMR, EMR Serverless, YARN, Kubernetes).

    python scripts/package.py [--out dist] [--s3 s3://bucket/lakesift] [--lake URI] [--env]

Writes into ``--out``:
* ``lakesift-code-<digest>.zip``: ``lakesift/``, ``udfs/``, ``jobs/`` and ``conf/`` for ``--py-files``
  (executors import ``udfs`` from it; ``conf/...`` paths in arguments resolve inside it);
* ``lakesift-<version>-py3-none-any.whl``: the same code as a wheel (Databricks / pip users);
* ``jobs/*.py``, ``jobs/*/main.py``: the entry points to upload next to it (spark-submit's main file must be a file);
* ``emr/steps.json`` and ``emr/serverless-filter-job-run.json`` from ``emr/`` with the bucket, lake and
  archive names filled in, ready for ``aws emr add-steps`` / ``aws emr-serverless start-job-run``;
* with ``--env``: ``lakesift-env.tar.gz``, a packed virtualenv (venv-pack) of ``requirements/cluster.txt``
  for ``--archives ...#environment``. Build it on the cluster's OS and Python (e.g. an Amazon Linux
  container for EMR); extra index for CPU-only torch: ``PIP_EXTRA_INDEX_URL``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lakesift import __version__  # noqa: E402
from lakesift.packaging import build_code_zip  # noqa: E402

ENV_ARCHIVE = "lakesift-env.tar.gz"


def render(template: str, values: dict[str, str]) -> str:
    for k, v in values.items():
        template = template.replace("{" + k + "}", v)
    return template


def build_env(out: Path) -> Path:
    venv = ROOT / "build" / "pack-env"
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", "--copies", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(ROOT / "requirements" / "cluster.txt"), "venv-pack>=0.2"], check=True)
    subprocess.run([*pip, "--force-reinstall", "--no-deps", "fasttext-numpy2>=0.10.4"], check=True)
    target = out / ENV_ARCHIVE
    subprocess.run([str(venv / "bin" / "venv-pack"), "-p", str(venv), "-o", str(target), "--force"], check=True)
    return target


def entry_point_files() -> list[Path]:
    """What spark-submit can be given as its main file: ``jobs/<job>.py`` and ``jobs/<job>/main.py``."""
    top = [f for f in sorted((ROOT / "jobs").glob("*.py")) if f.name != "__init__.py"]
    return top + sorted((ROOT / "jobs").glob("*/main.py"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Package Lakesift for spark-submit on a cluster (EMR, EMR Serverless).")
    p.add_argument("--out", default=str(ROOT / "dist"), help="output folder (default dist/)")
    p.add_argument("--s3", default="s3://YOUR-BUCKET/lakesift", help="where you will upload the folder")
    p.add_argument("--lake", help="lake root URI for the step definitions (default <s3>/lake)")
    p.add_argument("--env", action="store_true", help="also build the packed virtualenv (downloads the dependencies)")
    p.add_argument("--no-wheel", action="store_true", help="skip the wheel")
    args = p.parse_args(argv)

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("lakesift-code-*.zip"):
        old.unlink()
    code = build_code_zip(out)
    print(f"code archive   {code}")
    if not args.no_wheel:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                        "-w", str(out), str(ROOT)], check=True)
        print(f"wheel          {out / f'lakesift-{__version__}-py3-none-any.whl'}")
    jobs = out / "jobs"
    entry_points = entry_point_files()
    for f in entry_points:
        dest = out / f.relative_to(ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dest)
    print(f"entry points   {jobs}/ ({len(entry_points)} files)")
    values = {"S3": args.s3.rstrip("/"), "LAKE": args.lake or f"{args.s3.rstrip('/')}/lake",
              "CODE_ZIP": code.name, "ENV_ARCHIVE": ENV_ARCHIVE}
    (out / "emr").mkdir(exist_ok=True)
    for name in ("steps.json", "serverless-filter-job-run.json", "configurations.json"):
        text = render((ROOT / "emr" / name).read_text(), values)
        json.loads(text)  # still valid JSON
        (out / "emr" / name).write_text(text)
    print(f"EMR steps      {out / 'emr' / 'steps.json'}")
    if args.env:
        print(f"packed env     {build_env(out)}")
    print("\nupload and run:")
    print(f"  aws s3 sync {out} {values['S3']} --exclude 'emr/*'")
    print("  aws emr create-cluster ... --configurations file://" + str(out / "emr" / "configurations.json"))
    print(f"  aws emr add-steps --cluster-id j-XXXXXXXX --steps file://{out / 'emr' / 'steps.json'}")
    print(f"  aws emr-serverless start-job-run --cli-input-json file://{out / 'emr' / 'serverless-filter-job-run.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
