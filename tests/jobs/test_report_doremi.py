"""The DoReMi section (``lakesift.doremi_report``): loading a proxy run's trajectory, weights and
comparison files, the self-contained page and its CLI, and ``jobs/report.py --doremi`` (no Spark)."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET

import pytest

from lakesift import doremi_report as dr
from lakesift.charts import lines

DOMAINS = ["web", "code", "books"]
STEPS = 20
ABSENT = {("code", 5), ("code", 12)}  # (domain, step) pairs with no tokens of the domain


def trajectory() -> list[dict]:
    """20 steps of the exponentiated-gradient update (eta 1, smoothing 0.01) on constructed excess losses."""
    alpha = {d: 1 / 3 for d in DOMAINS}
    average = dict.fromkeys(DOMAINS, 0.0)
    lam = dict.fromkeys(DOMAINS, 0.0)
    rows = []
    for step in range(1, STEPS + 1):
        excess = {d: None if (d, step) in ABSENT else round(0.1 * (i + 1) + 0.01 * step, 4)
                  for i, d in enumerate(DOMAINS)}
        lam = {d: lam[d] if excess[d] is None else excess[d] for d in DOMAINS}
        z = {d: alpha[d] * math.exp(lam[d]) for d in DOMAINS}
        alpha = {d: 0.99 * z[d] / sum(z.values()) + 0.01 / 3 for d in DOMAINS}
        average = {d: average[d] + (alpha[d] - average[d]) / step for d in DOMAINS}
        rows.append({"step": step, "alpha": alpha, "lambda": lam, "excess": excess,
                     "tokens": {d: 0 if excess[d] is None else 1000 * (i + 1) for i, d in enumerate(DOMAINS)},
                     "average": average})
    return rows


def comparison() -> dict:
    def run(ppls, natural):
        return {"weights": {d: 1 / 3 for d in DOMAINS},
                "validation": {"natural": {"loss": math.log(natural), "ppl": natural, "tokens": 900},
                               "domains": {d: {"loss": math.log(p), "ppl": p, "tokens": 300}
                                           for d, p in zip(DOMAINS, ppls, strict=True)},
                               "average_ppl": sum(ppls) / 3, "worst_ppl": max(ppls)}}
    return {"tokens": 4096, "steps": 16, "runs": {"baseline": run([30.0, 12.0, 41.5], 27.25),
                                                   "uniform": run([31.0, 11.0, 40.0], 26.5),
                                                   "doremi": run([29.5, 11.5, 39.75], 26.75)}}


def weights(rows: list[dict]) -> dict:
    return {"train_domain_weights": rows[-1]["average"], "eval_domain_weights": {d: 1 / 3 for d in DOMAINS},
            "final_domain_weights": rows[-1]["alpha"], "reference_weights": {"web": 0.6, "code": 0.25, "books": 0.15},
            "method": "doremi", "steps": STEPS, "eta": 1.0, "smoothing": 0.01, "domains": DOMAINS,
            "reference": "/runs/reference"}


def write(folder, rows, *, weights_file: dict | None = None, comparison_file: dict | None = None, lines_=None):
    folder.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines_ if lines_ is not None else [json.dumps(r) for r in rows]) + "\n"
    (folder / dr.TRAJECTORY).write_text(text)
    if weights_file is not None:
        (folder / dr.WEIGHTS).write_text(json.dumps(weights_file))
    if comparison_file is not None:
        (folder / dr.COMPARISON).write_text(json.dumps(comparison_file))
    return folder


@pytest.fixture
def out(tmp_path):
    rows = trajectory()
    return write(tmp_path / "doremi", rows, weights_file=weights(rows), comparison_file=comparison())


def svgs(html: str) -> list[ET.Element]:
    """Every inline chart, parsed as XML (a malformed one fails the test)."""
    return [ET.fromstring(m) for m in re.findall(r"<svg.*?</svg>", html, re.S)]


def test_load_reads_the_trajectory_weights_and_comparison(out):
    rows = trajectory()
    data = dr.load(str(out))
    assert data["domains"] == DOMAINS and data["steps"] == list(range(1, STEPS + 1)) and data["total_steps"] == STEPS
    assert data["alpha"]["books"] == pytest.approx([r["alpha"]["books"] for r in rows])
    assert data["average"]["web"][-1] == pytest.approx(rows[-1]["average"]["web"])
    assert data["excess"]["code"][4] is None and data["lambda"]["code"][4] == data["lambda"]["code"][3]
    s = data["summary"]["code"]
    assert s["steps"] == STEPS - 2 and s["tokens"] == 2000 * (STEPS - 2)
    assert s["mean_excess"] == pytest.approx(sum(r["excess"]["code"] for r in rows if r["excess"]["code"]) / 18)
    w = data["weights"]
    assert w["reference"] == {"web": 0.6, "code": 0.25, "books": 0.15}
    assert w["average"] == pytest.approx(rows[-1]["average"]) and w["final"] == pytest.approx(rows[-1]["alpha"])
    assert w["meta"] == {"method": "doremi", "steps": STEPS, "eta": 1.0, "smoothing": 0.01, "reference": "/runs/reference"}
    c = data["comparison"]
    assert c["tokens"] == 4096 and list(c["runs"]) == ["baseline", "uniform", "doremi"]
    assert c["runs"]["doremi"]["domains"] == {"web": 29.5, "code": 11.5, "books": 39.75}
    assert c["runs"]["uniform"]["natural"] == 26.5 and c["runs"]["baseline"]["worst"] == 41.5
    json.dumps(data)  # JSON-able: the data report embeds it


def test_page_is_self_contained_with_charts_and_tables(out):
    data = dr.load(str(out))
    html = dr.page(data)
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    charts = svgs(html)
    assert {c.get("data-chart") for c in charts} == {"doremi-alpha", "doremi-lambda"}
    alpha = charts[0]
    paths = alpha.findall("{http://www.w3.org/2000/svg}path")
    assert len(paths) == 6 and sum("stroke-dasharray" in p.attrib for p in paths) == 3  # alpha + dashed average
    for d in DOMAINS:
        assert f"<td>{d}</td>" in html and f">{d}</text>" in html
    # reference, DoReMi average, final, ratio
    web = data["weights"]
    row = (f"<tr><td>web</td><td>0.6000</td><td>{web['average']['web']:.4f}</td><td>{web['final']['web']:.4f}</td>"
           f"<td>{web['average']['web'] / 0.6:.2f}\u00d7</td></tr>")
    assert row in html
    assert "method doremi, steps 20, eta 1.0, smoothing 0.01, reference /runs/reference" in html
    # comparison: the lowest perplexity of each column in bold
    assert "<tr><td>doremi</td><td><b>29.50</b></td><td>11.50</td><td><b>39.75</b></td>" in html
    assert "<tr><td>uniform</td><td>31.00</td><td><b>11.00</b></td><td>40.00</td>" in html
    assert "<td><b>26.50</b></td></tr>" in html  # natural, uniform's
    assert "tokens 4,096, steps 16" in html


def test_without_weights_and_comparison_the_trajectory_is_enough(tmp_path):
    rows = trajectory()
    data = dr.load(str(write(tmp_path / "run", rows)))
    assert data["weights"]["reference"] is None and data["comparison"] is None
    assert data["weights"]["average"] == pytest.approx(rows[-1]["average"])
    html = dr.section(data)
    assert "<tr><td>web</td><td>-</td>" in html and "Validation perplexity" not in html
    assert len(svgs(html)) == 2


def test_a_resumed_run_keeps_the_last_line_of_a_repeated_step(tmp_path):
    rows = trajectory()
    redone = json.loads(json.dumps(rows[9]))
    redone["alpha"] = {"web": 0.5, "code": 0.25, "books": 0.25}
    lines_ = [json.dumps(r) for r in rows[:12]] + [json.dumps(redone)] + [json.dumps(r) for r in rows[10:]] + [""]
    data = dr.load(str(write(tmp_path / "run", rows, lines_=lines_)))
    assert data["steps"] == list(range(1, STEPS + 1))
    assert data["alpha"]["web"][9] == 0.5


def test_missing_trajectory_names_the_folder(tmp_path):
    with pytest.raises(dr.DoremiError, match=rf"no doremi_trajectory.jsonl in {re.escape(str(tmp_path))}"):
        dr.load(str(tmp_path))


@pytest.mark.parametrize("bad, message", [
    ('{"step": 4, "alpha": ', r"line 4: not valid JSON"),
    ('[1, 2]', r"line 4: expected a JSON object, found list"),
    ('{"step": "4"}', r"line 4: 'step' is \"4\", not an integer"),
    ('{"step": 4, "lambda": {}}', r"line 4: 'alpha' is missing or not an object"),
    ('{"step": 4, "alpha": {"web": 1.0}, "lambda": {}, "average": {}}', r"line 4: 'alpha' has domains \['web'\]"),
    ('{"step": 4, "alpha": {"web": NaN, "code": 0, "books": 0}, "lambda": {}, "average": {}}',
     r"line 4: alpha\['web'\] is NaN, not a finite number"),
    ('{"step": 4, "alpha": {"web": 1, "code": 0, "books": 0}, "lambda": {"web": 1, "code": 0, "books": 0}, '
     '"average": {"web": 1, "code": 0, "books": 0}, "excess": {"web": "x"}}', r"line 4: excess\['web'\] is \"x\""),
])
def test_a_malformed_line_is_reported_with_its_number(tmp_path, bad, message):
    rows = trajectory()
    lines_ = [json.dumps(r) for r in rows[:3]] + [bad] + [json.dumps(r) for r in rows[3:]]
    folder = write(tmp_path / "run", rows, lines_=lines_)
    with pytest.raises(dr.DoremiError, match=message) as exc:
        dr.load(str(folder))
    assert str(folder / dr.TRAJECTORY) in str(exc.value)


def test_malformed_weights_and_comparison_files_are_named(tmp_path):
    rows = trajectory()
    bad = dict(weights(rows), reference_weights={"web": "heavy"})
    with pytest.raises(dr.DoremiError, match=r"domain_weights.json: reference_weights\['web'\] is \"heavy\""):
        dr.load(str(write(tmp_path / "a", rows, weights_file=bad)))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / dr.WEIGHTS).write_text("{nope")
    with pytest.raises(dr.DoremiError, match=r"domain_weights.json: not valid JSON"):
        dr.load(str(write(tmp_path / "b", rows)))
    broken = comparison()
    broken["runs"]["uniform"]["validation"]["natural"] = 3
    with pytest.raises(dr.DoremiError, match=r"comparison.json: runs\['uniform'\]: 'natural' is int, not an object"):
        dr.load(str(write(tmp_path / "c", rows, comparison_file=broken)))


def test_a_long_trajectory_is_thinned_for_drawing_but_summarised_in_full(tmp_path):
    rows = []
    for step in range(1, 1001):
        w = {d: 1 / 3 for d in DOMAINS}
        rows.append({"step": step, "alpha": w, "lambda": w, "average": w,
                     "excess": dict.fromkeys(DOMAINS, 0.5), "tokens": dict.fromkeys(DOMAINS, 10)})
    data = dr.load(str(write(tmp_path / "long", rows)))
    small = dr.thin(data)
    assert len(small["steps"]) == dr.MAX_POINTS and small["steps"][0] == 1 and small["steps"][-1] == 1000
    assert len(small["alpha"]["web"]) == dr.MAX_POINTS and small["summary"]["web"]["tokens"] == 10_000
    assert dr.thin(small) is small
    assert "1,000 steps in the trajectory, 400 of them drawn" in dr.section(data)


def test_cli_writes_the_page_and_prints_its_path(out, tmp_path, capsys):
    assert dr.main([str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "doremi.html")
    assert "<svg" in (out / "doremi.html").read_text()
    target = tmp_path / "pages" / "w.html"
    assert dr.main([str(out), "--out", str(target)]) == 0 and target.exists()
    assert dr.main([str(tmp_path / "nothing")]) == 2
    assert "error: no doremi_trajectory.jsonl in" in capsys.readouterr().err


def test_lines_chart_breaks_at_missing_values_and_dashes_the_second_series():
    svg = lines([0, 1, 2, 3, 4], {"a": [1.0, None, 2.0, 3.0, None], "b": [0.5, 0.5, 0.5, 0.5, 0.5]},
                dashed={"a": [1.0, 1.0, 1.5, 2.0, 2.0]}, dashed_label="mean", name="t", title="t", xlabel="step")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    a, a_mean, b = (p.get("d") for p in root.iter(f"{ns}path"))
    assert a.count("M") == 2 and "h0" in a  # the lone first point is a dot
    assert a_mean.count("M") == 1 and b.count("L") == 4
    tips = [r.find(f"{ns}title").text for r in root.iter(f"{ns}rect") if r.get("fill") == "transparent"]
    assert tips[1] == "step 1: a - (mean 1); b 0.5"
    assert ">mean</text>" in svg


def base_report() -> dict:
    return {"lake": "/x", "generated_at": "now", "runs": {"filter": {"run_id": "filter-x", "finished_at": "t"}},
            "funnel": [{"stage": "filter", "step": "a", "docs_in": 3, "docs_out": 1, "chars_in": 30, "chars_out": 9}],
            "reasons": [], "distributions": {"bins_per_decade": 4}, "quality": None, "clusters": None, "mix": None,
            "chars_per_token": 4.0, "chars_per_token_measured": False, "samples": {"kept": [], "rejected": []}}


def test_report_job_loads_each_doremi_folder_before_spark(out, tmp_path):
    from jobs.report import job, parse_args

    assert parse_args([]).doremi == [] and job.configure(parse_args([])) == []
    second = write(tmp_path / "second", trajectory())
    loaded = job.configure(parse_args(["--doremi", str(out), "--doremi", str(second)]))
    assert [d["folder"] for d in loaded] == [str(out), str(second)]
    # a folder without a trajectory: exit 2 with the error, before a Spark session is asked for
    assert job.main(["--doremi", str(tmp_path / "missing"), "--out", str(tmp_path / "r.html")]) == 2
    assert not (tmp_path / "r.html").exists()


def test_report_renders_one_section_per_doremi_folder(out, tmp_path):
    from lakesift.report import render

    plain = render(base_report())
    assert "doremi" not in plain.lower()
    second = dr.load(str(write(tmp_path / "second", trajectory())))
    html = render(dict(base_report(), doremi=[dr.load(str(out)), second]))
    assert html.count("<h2>DoReMi domain weights:") == 2
    assert 'id="doremi-1"' in html and 'id="doremi-2"' in html
    assert {c.get("data-chart") for c in svgs(html) if c.get("data-chart").startswith("doremi")} == {"doremi-1-alpha", "doremi-1-lambda", "doremi-2-alpha",
                                                          "doremi-2-lambda"}
    assert html.index('id="mix"') < html.index('id="doremi-1"') < html.index('id="samples"')
    assert not re.search(r'(src|href)="(https?:)?//', html)
