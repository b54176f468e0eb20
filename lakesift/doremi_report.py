"""DoReMi domain weights of a proxy run as HTML: how the weights moved, what they ended at, and (after
``make doremi``) how models trained on each mixture validate.

    python -m lakesift.doremi_report OUT [--out OUT/doremi.html]

``OUT`` is a DoReMi proxy run folder or a ``make doremi`` output folder. It holds
``doremi_trajectory.jsonl`` (one line per optimizer step: the domain weights ``alpha`` after the step,
their running ``average``, ``lambda`` (the clipped excess loss driving the update), the step's
``excess`` and ``tokens`` per domain), usually ``domain_weights.json`` (the weights written at the end)
and, from ``make doremi``, ``comparison.json`` (validation perplexities of the runs trained on each
mixture). :func:`load` reads and checks them; :func:`section` is the HTML the data report
(``jobs/report.py --doremi OUT``) embeds; :func:`page` is a page of its own. Inline SVG, no network.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from html import escape

from lakesift import __version__
from lakesift.charts import lines
from lakesift.io import InputError, open_binary, write_text
from lakesift.report import CSS, html_section, muted

TRAJECTORY, WEIGHTS, COMPARISON = "doremi_trajectory.jsonl", "domain_weights.json", "comparison.json"
PER_DOMAIN = ("alpha", "lambda", "average")  # required in every trajectory line, one number per domain
META = ("method", "steps", "eta", "smoothing", "reference")  # the settings domain_weights.json records
MAX_POINTS = 400  # steps drawn per line (and kept in the data report's embedded JSON)


class DoremiError(InputError):
    """A DoReMi folder without a trajectory, or a file in it that does not read as described."""


def _join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name


def _read(uri: str) -> str | None:
    """The file's text, or None when there is no such file."""
    try:
        with open_binary(uri) as fh:
            raw = fh.read()
    except FileNotFoundError:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DoremiError(f"{uri}: not UTF-8 text ({exc})") from None


def _number(value, what: str, allow_none: bool = False) -> float | None:
    """``value`` as a finite float; ValueError naming ``what`` otherwise (JSON booleans are not numbers)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} is {json.dumps(value)}, not a finite number")
    return float(value)


def _mapping(obj: dict, key: str) -> dict:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise ValueError(f"{key!r} is missing or not an object")
    return value


def _optional_mapping(obj: dict, key: str) -> dict:
    """``obj[key]`` when it is an object, {} when it is absent or null."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{key!r} is {type(value).__name__}, not an object")
    return value


def _weights(obj: dict, key: str) -> dict[str, float] | None:
    """``obj[key]`` as {domain: weight}, None when the key is absent."""
    if key not in obj:
        return None
    return {str(d): _number(w, f"{key}[{d!r}]") for d, w in _mapping(obj, key).items()}


def _json_object(folder: str, name: str) -> dict | None:
    """The JSON object in ``folder/name``, None when the file is absent."""
    uri = _join(folder, name)
    text = _read(uri)
    if text is None:
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DoremiError(f"{uri}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise DoremiError(f"{uri}: expected a JSON object, found {type(obj).__name__}")
    return obj


def _step(row, domains: list[str]) -> dict:
    """One trajectory line, checked: an integer step and one number per domain in each per-domain field
    (``excess`` may be null or leave a domain out: the domain was absent from the step)."""
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, found {type(row).__name__}")
    step = row.get("step")
    if isinstance(step, bool) or not isinstance(step, int):
        raise ValueError(f"'step' is {json.dumps(step)}, not an integer")
    out: dict = {"step": step}
    for key in PER_DOMAIN:
        values = _mapping(row, key)
        if set(values) != set(domains):
            raise ValueError(f"{key!r} has domains {sorted(values)}, expected {sorted(domains)}")
        out[key] = {d: _number(values[d], f"{key}[{d!r}]") for d in domains}
    excess, tokens = _optional_mapping(row, "excess"), _optional_mapping(row, "tokens")
    out["excess"] = {d: _number(excess.get(d), f"excess[{d!r}]", allow_none=True) for d in domains}
    out["tokens"] = {d: int(_number(tokens.get(d, 0), f"tokens[{d!r}]")) for d in domains}
    return out


def _trajectory(folder: str, domains: list[str] | None) -> tuple[list[str], list[dict]]:
    """(domains, one checked row per step in step order). The domain order is ``domains`` (from
    domain_weights.json) or the first line's. A step written twice (a run resumed from an earlier
    checkpoint repeats the steps after it) keeps its last line."""
    uri = _join(folder, TRAJECTORY)
    text = _read(uri)
    if text is None:
        raise DoremiError(f"no {TRAJECTORY} in {folder}: expected a DoReMi proxy run folder or the output "
                          "folder of `make doremi`")
    rows: dict[int, dict] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if domains is None and isinstance(row, dict):
                domains = [str(d) for d in _mapping(row, "alpha")]
            checked = _step(row, domains or [])
        except json.JSONDecodeError as exc:
            raise DoremiError(f"{uri} line {n}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        except ValueError as exc:
            raise DoremiError(f"{uri} line {n}: {exc}") from None
        rows[checked["step"]] = checked
    if not rows:
        raise DoremiError(f"{uri}: no steps recorded")
    return domains, [rows[s] for s in sorted(rows)]


def _summary(domains: list[str], rows: list[dict]) -> dict[str, dict]:
    """Per domain over all steps: steps it was present in, its tokens, mean excess when present, last lambda."""
    out = {}
    for d in domains:
        seen = [r["excess"][d] for r in rows if r["excess"][d] is not None]
        out[d] = {"steps": len(seen), "tokens": sum(r["tokens"][d] for r in rows),
                  "mean_excess": sum(seen) / len(seen) if seen else None, "last_lambda": rows[-1]["lambda"][d]}
    return out


def _final(weights: dict | None, uri: str, rows: list[dict]) -> dict:
    """Reference, DoReMi (average) and final weights: from domain_weights.json when it is there, else
    the trajectory's last line (no reference)."""
    if weights is None:
        return {"reference": None, "average": rows[-1]["average"], "final": rows[-1]["alpha"], "meta": {}}
    try:
        return {"reference": _weights(weights, "reference_weights"),
                "average": _weights(weights, "train_domain_weights") or rows[-1]["average"],
                "final": _weights(weights, "final_domain_weights") or rows[-1]["alpha"],
                "meta": {k: weights[k] for k in META if k in weights}}
    except ValueError as exc:
        raise DoremiError(f"{uri}: {exc}") from None


def _ppl(obj: dict, key: str, what: str) -> float | None:
    """The ``ppl`` of the validation result ``obj[key]``; None when it is not recorded."""
    return _number(_optional_mapping(obj, key).get("ppl"), f"{what}.ppl", allow_none=True)


def _run_result(run) -> dict:
    """One run of comparison.json: its weights and validation perplexities (None where not recorded)."""
    if not isinstance(run, dict):
        raise ValueError(f"expected an object, found {type(run).__name__}")
    val = _mapping(run, "validation")
    domains = _optional_mapping(val, "domains")
    return {"weights": _weights(run, "weights") or {},
            "domains": {str(d): _ppl(domains, d, f"validation.domains[{d!r}]") for d in domains},
            "average": _number(val.get("average_ppl"), "validation.average_ppl", allow_none=True),
            "worst": _number(val.get("worst_ppl"), "validation.worst_ppl", allow_none=True),
            "natural": _ppl(val, "natural", "validation.natural")}


def _comparison(obj: dict | None, uri: str) -> dict | None:
    """comparison.json checked and cut to what the table shows; None without the file."""
    if obj is None:
        return None
    runs = {}
    try:
        for name, run in _mapping(obj, "runs").items():
            try:
                runs[str(name)] = _run_result(run)
            except ValueError as exc:
                raise ValueError(f"runs[{name!r}]: {exc}") from None
    except ValueError as exc:
        raise DoremiError(f"{uri}: {exc}") from None
    return {"tokens": obj.get("tokens"), "steps": obj.get("steps"), "runs": runs}


def load(folder: str | os.PathLike) -> dict:
    """Everything the section shows, as JSON-able data: the trajectory by column (``steps`` and
    {domain: [value per step]} for alpha / average / lambda / excess / tokens), per-domain ``summary``,
    ``weights`` (reference / average / final, ``meta``) and ``comparison`` (None without the file).
    Raises :class:`DoremiError` naming the folder, file and line of what is missing or malformed."""
    folder = os.fspath(folder)
    weights_file = _json_object(folder, WEIGHTS)
    listed = weights_file.get("domains") if weights_file else None
    domains, rows = _trajectory(folder, [str(d) for d in listed] if isinstance(listed, list) else None)
    data = {"folder": folder, "domains": domains, "steps": [r["step"] for r in rows], "total_steps": len(rows)}
    for key in (*PER_DOMAIN, "excess", "tokens"):
        data[key] = {d: [r[key][d] for r in rows] for d in domains}
    data["summary"] = _summary(domains, rows)
    data["weights"] = _final(weights_file, _join(folder, WEIGHTS), rows)
    data["comparison"] = _comparison(_json_object(folder, COMPARISON), _join(folder, COMPARISON))
    return data


def thin(data: dict, points: int = MAX_POINTS) -> dict:
    """``data`` with the trajectory cut to about ``points`` evenly spaced steps (the first and last kept),
    for charts and embedded JSON of a long run; the summary and weights still describe every step."""
    n = len(data["steps"])
    if n <= points:
        return data
    keep = sorted({round(i * (n - 1) / (points - 1)) for i in range(points)})
    out = dict(data, steps=[data["steps"][i] for i in keep])
    for key in (*PER_DOMAIN, "excess", "tokens"):
        out[key] = {d: [vals[i] for i in keep] for d, vals in data[key].items()}
    return out


def _w(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _about(data: dict) -> str:
    """The run's settings (from domain_weights.json) and how many steps the trajectory has and shows."""
    meta = data["weights"]["meta"]
    total, drawn = data["total_steps"], len(data["steps"])
    parts = [", ".join(f"{k} {meta[k]}" for k in META if k in meta)] if meta else []
    parts.append(f"{total:,} steps in the trajectory" + (f", {drawn:,} of them drawn" if drawn < total else ""))
    return muted("; ".join(parts) + ".")


def _alpha_chart(data: dict, anchor: str) -> str:
    return (lines(data["steps"], data["alpha"], dashed=data["average"], dashed_label="running average",
                  name=f"{anchor}-alpha", title="domain weights per step", xlabel="step", ylabel="domain weight")
            + muted("Solid: the weights after each step's update; dashed: their running average, which is "
                    "DoReMi's output mixture."))


def _weights_table(data: dict) -> str:
    w = data["weights"]
    ref = w["reference"] or {}
    rows = []
    for d in data["domains"]:
        r, a = ref.get(d), w["average"].get(d)
        ratio = f"{a / r:.2f}\u00d7" if r and a is not None else "-"
        rows.append(f"<tr><td>{escape(d)}</td><td>{_w(r)}</td><td>{_w(a)}</td><td>{_w(w['final'].get(d))}</td>"
                    f"<td>{ratio}</td></tr>")
    return ("<h3>Domain weights</h3><table><tr><th>domain</th><th>reference</th><th>DoReMi (average)</th>"
            f"<th>final step</th><th>average / reference</th></tr>{''.join(rows)}</table>")


def _lambda_part(data: dict, anchor: str) -> str:
    rows = "".join(
        f"<tr><td>{escape(d)}</td><td>{s['steps']:,}</td><td>{s['tokens']:,}</td><td>{_w(s['mean_excess'])}</td>"
        f"<td>{_w(s['last_lambda'])}</td></tr>" for d, s in data["summary"].items())
    return ("<h3>Excess loss over the reference (lambda)</h3>"
            + lines(data["steps"], data["lambda"], name=f"{anchor}-lambda", title="clipped excess loss per domain",
                    xlabel="step", ylabel="lambda (nats per token)")
            + muted("lambda: a domain's clipped excess loss per token in the step (kept from the previous step when "
                    "the domain was absent); a larger lambda raises the domain's weight.")
            + "<table><tr><th>domain</th><th>steps present</th><th>tokens</th><th>mean excess when present</th>"
            f"<th>last lambda</th></tr>{rows}</table>")


def _best_cells(values: list[float | None]) -> list[str]:
    """Table cells of perplexities, the lowest of the column in bold."""
    best = min((v for v in values if v is not None), default=None)
    return [("-" if v is None else f"<b>{v:.2f}</b>" if v == best else f"{v:.2f}") for v in values]


def _comparison_table(data: dict) -> str:
    c = data.get("comparison")
    if not c or not c["runs"]:
        return ""
    names = list(c["runs"])
    runs = [c["runs"][n] for n in names]
    domains = list(data["domains"]) + sorted({d for r in runs for d in r["domains"]} - set(data["domains"]))
    columns = [[r["domains"].get(d) for r in runs] for d in domains]
    columns += [[r[k] for r in runs] for k in ("average", "worst", "natural")]
    cells = [_best_cells(col) for col in columns]
    head = "".join(f"<th>{escape(d)}</th>" for d in domains) + "<th>average</th><th>worst</th><th>natural</th>"
    body = "".join(f"<tr><td>{escape(n)}</td>" + "".join(f"<td>{col[i]}</td>" for col in cells) + "</tr>"
                   for i, n in enumerate(names))
    budget = ", ".join(f"{k} {c[k]:,}" for k in ("tokens", "steps") if isinstance(c.get(k), int))
    return ("<h3>Validation perplexity of models trained on each mixture</h3>"
            f"<table><tr><th>run</th>{head}</tr>{body}</table>"
            + muted("Per-domain perplexity, their average and worst, and on the natural (unweighted) validation "
                    f"set; bold: the lowest of the column.{' Each run: ' + budget + '.' if budget else ''}"))


def section(data: dict, anchor: str = "doremi") -> str:
    """The HTML section of one DoReMi folder (:func:`load`'s data); ``anchor`` is its id, unique on a page."""
    data = thin(data)
    return html_section(f"DoReMi domain weights: {data['folder']}", _about(data), _alpha_chart(data, anchor),
                        _weights_table(data), _lambda_part(data, anchor), _comparison_table(data), anchor=anchor)


def page(data: dict) -> str:
    """A complete self-contained HTML page with the section."""
    title = f"DoReMi domain weights - {data['folder']}"
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>DoReMi domain weights</h1>"
            f"<p class='muted'>{escape(data['folder'])} - lakesift {__version__}</p>{section(data)}</body></html>\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lakesift.doremi_report",
                                description="Write an HTML page of a DoReMi run's domain-weight trajectory.")
    p.add_argument("folder", metavar="OUT", help="DoReMi proxy run folder or `make doremi` output folder")
    p.add_argument("--out", help="the HTML file to write (default OUT/doremi.html)")
    args = p.parse_args(argv)
    try:
        data = load(args.folder)
    except DoremiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(write_text(args.out or _join(args.folder, "doremi.html"), page(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
