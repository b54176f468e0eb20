"""Line modifiers: rewrite a page line by line (newline runs, upper-case / digit lines, social
counters, short lines, banned substrings). A page whose text becomes empty is dropped."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from lakesift.config import StrictModel
from udfs import kernels as K
from udfs.steps.base import Doc, Step, _modified, register


def _drop_lines_by_char_share(doc: Doc, counted: Literal["upper", "digit"], max_share: float) -> str | None:
    """Remove non-empty lines in which more than ``max_share`` of the characters are counted ones
    (``str.isupper`` / ``str.isdigit``)."""
    if K.rules is not None:
        return _modified(doc, K.rules.drop_lines_by_char_share(doc.text, counted, max_share))
    is_counted = str.isupper if counted == "upper" else str.isdigit
    kept = [ln for ln in doc.text.split("\n") if not ln or sum(map(is_counted, ln)) / len(ln) <= max_share]
    return _modified(doc, "\n".join(kept).strip())


@register
class NewlineRemoval(Step):
    """Collapse runs of more than ``max_consecutive`` newlines (DCLM-Baseline: 2)."""

    name, kind = "newline_removal_modifier", "modifier"

    class Params(StrictModel):
        max_consecutive: int = Field(2, ge=1)

    def __init__(self, params):
        super().__init__(params)
        self.rx = re.compile("\n{" + str(params.max_consecutive + 1) + ",}")

    def apply(self, doc):
        if "\n" * (self.p.max_consecutive + 1) not in doc.text:  # a substring test is ~10x faster
            return _modified(doc, doc.text)
        return _modified(doc, self.rx.sub("\n" * self.p.max_consecutive, doc.text))


def _char_share_modifier(name: str, counted: Literal["upper", "digit"], default: float, doc: str) -> type[Step]:
    """A registered modifier removing lines whose share of ``counted`` characters is above
    ``max_ratio`` (default ``default``); RefinedWeb's upper-case and digit rules differ only in these."""

    class Params(StrictModel):
        max_ratio: float = Field(default, ge=0, le=1)

    def apply(self, d):
        return _drop_lines_by_char_share(d, counted, self.p.max_ratio)

    cls_name = "".join(w.title() for w in name.split("_")[:2]) + "Line"
    cls = type(cls_name, (Step,), {"__doc__": doc, "__module__": __name__, "__qualname__": cls_name,
                                   "name": name, "kind": "modifier", "Params": Params, "apply": apply})
    return register(cls)


UppercaseRatioLine = _char_share_modifier(
    "uppercase_ratio_line_modifier", "upper", 0.5,
    "Remove lines whose share of uppercase characters is above ``max_ratio`` (RefinedWeb: 0.5).")
NumericRatioLine = _char_share_modifier(
    "numeric_ratio_line_modifier", "digit", 1.0,
    "Remove lines whose share of digits is above ``max_ratio`` (DCLM: 0.999999, i.e. all-digit lines).")


_COUNTER_WORDS = ("likes", "shares", "comments", "retweets", "reposts", "quotes", "bookmarks", "upvotes",
                  "downvotes", "downloads", "views", "followers")
_COUNTER = re.compile(rf"^\W*\d(?:,|\.|\d)*(?:K|k|M|m|B|b)?\s+(?:{'|'.join(_COUNTER_WORDS)})\W*$")


@register
class CounterLine(Step):
    """Remove social-counter lines such as ``1.2K likes`` or ``35 comments`` (RefinedWeb)."""

    name, kind = "counter_line_modifier", "modifier"

    def apply(self, doc):
        if not any(w in doc.lower for w in _COUNTER_WORDS):  # each match holds one of the words
            return _modified(doc, doc.text.strip())
        kept = [ln for ln in doc.text.split("\n") if not _COUNTER.search(ln.lower())]
        return _modified(doc, "\n".join(kept).strip())


@register
class LineLength(Step):
    """Remove non-empty lines with fewer than ``min_length`` or more than ``max_length`` words (the
    units' ``words``: whitespace words by default; RefinedWeb "short lines"; DCLM-Baseline: min 2)."""

    name, kind = "line_length_modifier", "modifier"

    class Params(StrictModel):
        min_length: int = Field(0, ge=0)
        max_length: float = float("inf")

    def apply(self, doc):
        lo, hi, words = self.p.min_length, self.p.max_length, doc.units.words
        kept = [ln for ln in doc.text.split("\n") if not ln or lo <= len(words(ln)) <= hi]
        return _modified(doc, "\n".join(kept))


_REGEX_META = frozenset(".^$*+?{}[]\\|()")


def _required_literal(pattern: str) -> str | None:
    """A literal string every match of ``pattern`` contains: its prefix before the first regex
    metacharacter (without the character a ``*`` / ``?`` / ``{`` makes optional); None when there is
    none or the pattern has an alternation."""
    if "|" in pattern:
        return None
    i = 0
    while i < len(pattern) and pattern[i] not in _REGEX_META:
        i += 1
    lit = pattern[:i]
    if i < len(pattern) and pattern[i] in "*?{":
        lit = lit[:-1]
    return lit or None


@register
class SubstringLine(Step):
    """Remove a banned substring from lines (or whole lines) of at most ``max_length`` words.

    DCLM-Baseline uses it for "items in cart" (anywhere), "Read more..." (suffix) and "Sign-in"
    (prefix), removing only the substring, and the line when nothing else is left.
    The banlist entries are regular expressions, as in DCLM ("Read more..." matches any 3 chars).
    """

    name, kind = "substring_line_modifier", "modifier"

    class Params(StrictModel):
        banlist: str | list[str]
        case_sensitive: bool = False
        location: Literal["prefix", "suffix", "any"] = "any"
        max_length: int | None = None
        remove_substring_only: bool = False

    def __init__(self, params):
        super().__init__(params)
        bans = [params.banlist] if isinstance(params.banlist, str) else list(params.banlist)
        if not params.case_sensitive:
            bans = [b.lower() for b in bans]
        pat = f"(?:{'|'.join(bans)})"
        pat = {"prefix": rf"^{pat}\s?", "suffix": rf"\s?{pat}$", "any": rf"\s?{pat}"}[params.location]
        self.rx = re.compile(pat) if params.case_sensitive else re.compile(pat, re.I)
        # Every match of rx holds a match of the bare banlist, and of each entry's literal prefix: a page
        # without one keeps its lines but the whitespace-only ones removal drops, which most pages do not
        # have. One substring test per page instead of a split and a substitution per line.
        self.hint = re.compile(f"(?:{'|'.join(bans)})", 0 if params.case_sensitive else re.I)
        lits = [_required_literal(b) for b in bans]
        usable = None not in lits and (params.case_sensitive or all(lit.isascii() for lit in lits))
        self.literals = tuple(lits) if usable else None

    def _may_match(self, doc: Doc) -> bool:
        if self.literals is not None:
            if self.p.case_sensitive:
                return any(lit in doc.text for lit in self.literals)
            folded = doc.folded
            if folded is not None:
                return any(lit in folded for lit in self.literals)
        return self.hint.search(doc.text) is not None

    def apply(self, doc):
        if not self._may_match(doc) and not (self.p.remove_substring_only and doc.has_blank_line):
            return _modified(doc, doc.text.strip())
        out, words = [], doc.units.words
        for ln in doc.text.split("\n"):
            if self.p.max_length is None or len(words(ln)) <= self.p.max_length:
                if self.p.remove_substring_only:
                    new = self.rx.sub("", ln)
                    if ln and (not new or new.isspace()):
                        continue
                    ln = new
                elif self.rx.search(ln):
                    continue
            out.append(ln)
        return _modified(doc, "\n".join(out).strip())
