"""Domains, DoReMi's unit of mixing (``docs/domains.md``): which domain a document belongs to, and what the
driver settles about the domains once packing has counted them.

* assignment (per document, executors): ``domains.by: source`` the source's name; ``column`` a column's
  value as a string; ``url_host`` the URL's host, lowercased, without ``www.``; ``url_tld`` the host's
  last label. ``rules`` (fnmatch globs, first match wins) then rename values; a value no rule matches
  keeps itself, or becomes ``default`` with ``rules_only``; a missing, empty or unparseable value is
  ``default``.
* folders: a domain written as its own MDS dataset (``layout: streams``, the validation set) lives in
  ``domains/<folder>``, the name with every character outside ``[A-Za-z0-9._-]`` replaced by ``_`` (and
  no leading dot); two domains whose folders would be the same, ignoring case, are refused.
* the plan (driver): the sorted domain names, their folders, each (source, domain)'s index among its
  source's domains (for ``seq_id``, ``jobs.dataset.mix``) and the mixing unit.
* reference weights: each domain's tokens or chunks (``reference``) times its ``epochs`` multiplier,
  normalised: DoReMi's reference mixture.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from lakesift.config import ConfigError

FOLDER_CHARS = re.compile(r"[^A-Za-z0-9._-]")
FOLDER_MAX = 120  # characters of a folder name (a long host stays well under file-name limits)
_IP = re.compile(r"^[0-9.]+$|:")  # an IPv4 address, or an IPv6 one (hostname keeps its colons)


# ------------------------------------------------------------------------------ assignment

def url_host(url: str | None) -> str | None:
    """The URL's host, lowercased, a leading ``www.`` and a trailing dot removed; a URL without a scheme
    is read as ``//url``. None when there is none or the URL does not parse."""
    if not url or not url.strip():
        return None
    url = url.strip()
    try:
        parts = urlsplit(url if "://" in url or url.startswith("//") else f"//{url}")
        host, _ = parts.hostname, parts.port  # a port that is not a number: not a URL ("mailto:x")
    except ValueError:
        return None
    host = (host or "").rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    return host if host and not any(c.isspace() for c in host) else None


def url_tld(url: str | None) -> str | None:
    """The last label of the URL's host (``org``, ``cn``); None for no host, an IP address or a host
    of one label."""
    host = url_host(url)
    if host is None or _IP.search(host) or "." not in host:
        return None
    return host.rsplit(".", 1)[1] or None


def domain_of(value: str | None, by: str, rules: tuple[tuple[str, str], ...], rules_only: bool,
              default: str) -> str:
    """The domain of a document whose column / URL value is ``value`` (``by`` column, url_host or url_tld);
    ``rules``: (glob, domain) pairs."""
    if by == "url_host":
        value = url_host(value)
    elif by == "url_tld":
        value = url_tld(value)
    elif value is not None:
        value = value.strip()
    if not value:
        return default
    for glob, domain in rules:
        if fnmatch.fnmatchcase(value, glob):
            return domain
    return default if rules_only else value


def domain_column(d, source_name: str):
    """The Spark column of a document's domain, for a select on its source table (so a table column
    literally named ``source`` is read as that column, not the source's name)."""
    from pyspark.sql import functions as F

    if d.by == "source":
        return F.lit(source_name)
    by, rules, only, default = d.by, tuple((r.match, r.domain) for r in d.rules), d.rules_only, d.default

    def assign(value):
        return domain_of(value, by, rules, only, default)

    col = d.column if d.by == "column" else d.url_column
    # a pickled UDF: Spark 4.2's Arrow-optimised one stalls on a Delta (columnar) scan
    return F.udf(assign, "string", useArrow=False)(F.col(col).cast("string"))


def source_column(d) -> str | None:
    """The column each source table must have for the domains (None for ``by: source``)."""
    return {"source": None, "column": d.column}.get(d.by, d.url_column)


# ------------------------------------------------------------------------------ the driver's plan

def folder_name(domain: str) -> str:
    """The folder of a domain: ``[A-Za-z0-9._-]`` kept, anything else ``_``, no leading dot, at most
    ``FOLDER_MAX`` characters."""
    name = FOLDER_CHARS.sub("_", domain)[:FOLDER_MAX]
    return "_" + name[1:] if not name or name.startswith(".") else name


def folders(domains: list[str]) -> dict[str, str]:
    """``{domain: folder}``; :class:`ConfigError` when two domains would share a folder (ignoring case,
    as some file systems do)."""
    out, taken = {}, {}
    for d in sorted(domains):
        f = folder_name(d)
        if f.lower() in taken:
            raise ConfigError(f"domains: {taken[f.lower()]!r} and {d!r} would both be written to folder "
                              f"domains/{f} (characters outside [A-Za-z0-9._-] become _, case is ignored); "
                              "rename one with domains.rules")
        taken[f.lower()], out[d] = d, f
    return out


def writes_folders(cfg) -> bool:
    """Whether the run writes a folder per domain (streams, or a validation set)."""
    return cfg.domains.layout == "streams" or cfg.domains.validation.fraction > 0


def mixing_unit(cfg) -> str:
    """``domain`` when proportions name domains (``by`` not source), else ``source``."""
    return "domain" if cfg.domains.by != "source" and cfg.mixing.mode == "proportions" else "source"


def known_domains(cfg) -> list[str] | None:
    """The domains a run can have, when the config alone decides them (sources' names; rules only): then
    names can be checked before Spark starts. None when the data decides."""
    d = cfg.domains
    if d.by == "source":
        return sorted(s.name for s in cfg.sources)
    if d.rules_only:
        return sorted({r.domain for r in d.rules} | {d.default})
    return None


def check_names(names, known: list[str], what: str) -> None:
    """:class:`ConfigError` naming the keys of ``names`` that are not domains, and the domains."""
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ConfigError(f"{what}: unknown domains {unknown} (known: {known})")


@dataclass(frozen=True)
class Plan:
    """What the driver settles about the domains once packing has counted them."""

    names: list[str]  # every domain with documents, sorted
    folders: dict[str, str] | None  # domain -> folder under domains/ (None: the run writes no folders)
    local_index: dict[tuple[str, str], int]  # (source, domain) -> index among the source's domains
    unit: str  # the mixing unit: source / domain


def plan(cfg, pairs: dict) -> Plan:
    """The plan for the {(source, domain): Counts} packing found (the domains the config alone decides
    are listed even without documents); :class:`ConfigError` for folders that collide, ids that do not
    fit, or ``epochs`` naming domains there are not."""
    from jobs.dataset.mix import check_id_budget

    names = sorted({d for _, d in pairs} | set(known_domains(cfg) or []))
    local = {}
    for s in sorted({s for s, _ in pairs}):
        for i, d in enumerate(sorted(d for src, d in pairs if src == s)):
            local[(s, d)] = i
    check_id_budget(len(cfg.sources), max((i + 1 for i in local.values()), default=1), cfg.packing_groups,
                    max((c.sequences for c in pairs.values()), default=0))
    check_names(cfg.domains.epochs, names, "domains.epochs")
    return Plan(names, folders(names) if writes_folders(cfg) else None, local, mixing_unit(cfg))


def reference_weights(counts: dict[str, int], epochs: dict[str, float]) -> dict[str, float]:
    """``{domain: count x epochs (default 1)}`` normalised to sum to 1 (all 0 when nothing counts)."""
    scaled = {d: n * epochs.get(d, 1.0) for d, n in counts.items()}
    total = sum(scaled.values())
    return {d: (v / total if total else 0.0) for d, v in sorted(scaled.items())}
