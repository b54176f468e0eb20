"""RefinedWeb's URL filters and URL removal (Penedo et al. 2023, G.1 and G.2), and the word count the
line modifiers are measured against (``word_counter_enricher`` before them, ``word_removal_ratio_filter``
after)."""

from __future__ import annotations

import re

from pydantic import Field

from lakesift.config import StrictModel
from udfs import text as T
from udfs.steps.base import Step, _modified, _read_list, register


@register
class UrlSubstring(Step):
    """Drop pages whose URL contains banned words or belongs to a banned domain (RefinedWeb).

    * ``exact_domain_match``: the URL's host (after removing ``ignore_chars``, e.g. "www") is in the list;
    * otherwise the lower-cased URL (with ``ignore_chars`` removed) contains at least
      ``num_banned_substrs`` distinct banned words, as substrings or, with ``match_substrings: false``,
      as whole words (``\\b`` boundaries).
    """

    name, kind = "url_substring_filter", "filter"

    class Params(StrictModel):
        banlist: list[str] | None = None
        banlist_from_fname: str | None = None
        ignore_chars: list[str] = []
        num_banned_substrs: int = Field(1, ge=1)
        exact_domain_match: bool = False
        match_substrings: bool = True
        case_sensitive: bool = False

    def __init__(self, params):
        super().__init__(params)
        words = list(params.banlist or []) + (_read_list(params.banlist_from_fname) if params.banlist_from_fname else [])
        if not params.case_sensitive:
            words = [w.lower() for w in words]
        self.domains = frozenset(words)
        self.rx = None
        if not params.exact_domain_match and words:
            alt = T.trie_regex(sorted(set(words)))
            pat = f"(?:{alt})" if params.match_substrings else rf"\b(?:{alt})\b"
            self.rx = re.compile(pat, 0 if params.case_sensitive else re.I)

    def apply(self, doc):
        from urllib.parse import urlsplit

        url = doc.url
        if self.p.exact_domain_match:
            try:
                url = urlsplit(url).netloc
            except ValueError:
                url = ""
        if not self.p.case_sensitive:
            url = url.lower()
        for ch in self.p.ignore_chars:
            url = url.replace(ch, "")
        if self.p.exact_domain_match:
            return "banned_domain" if url in self.domains else None
        if self.rx is None:
            return None
        found = set(self.rx.findall(url))
        return f"banned_url_words>={self.p.num_banned_substrs}" if len(found) >= self.p.num_banned_substrs else None


@register
class UrlRemoval(Step):
    """Remove URLs and IPv4 addresses from the text.

    Fidelity note: DCLM applies its URL pattern only when ``tlds_regex.match(text)`` succeeds, i.e.
    when the page *starts* with a TLD string (``re.match`` anchors at the start), so on most pages only
    IPv4 addresses are removed. ``dclm_compat: true`` (the default, for reproduction) keeps that
    behaviour; ``false`` removes URLs wherever they are, as the paper describes.
    """

    name, kind = "url_removal_modifier", "modifier"

    class Params(StrictModel):
        tlds_from_fname: str = "banlists/iana_tlds.txt"
        dclm_compat: bool = True

    def __init__(self, params):
        super().__init__(params)
        tlds = sorted({t.lower() for t in _read_list(params.tlds_from_fname)})
        alt = T.trie_regex(tlds)
        # tokens holding "." + the first character of some TLD: the only places a URL match can be
        firsts = "".join(re.escape(c) for c in sorted({t[0] for t in tlds if t}))
        self.url_hint = re.compile(rf"\.[{firsts}]")
        # DCLM builds this with retrie's Blacklist, whose default flags ignore case.
        self.tlds = re.compile(f"(?:{alt})", re.I)
        self.url = re.compile(
            rf"\s{{0,10}}(?:((https?|ftp)://))?[-a-zA-Z0-9@:%._\+~#=]{{1,256}}\.(?:{alt})\b"
            r"([-a-zA-Z0-9()@:%_\+.~#?&//=]*)")
        self.ipv4 = re.compile(
            r"\s{0,10}\b((https?|ftp)://)?(?:[0-2]?[0-9]{1,2}\.){3}[0-2]?[0-9]{1,2}[-a-zA-Z0-9()@:%_\+.~#?&//=]*")

    def apply(self, doc):
        text = doc.text
        if not self.p.dclm_compat or self.tlds.match(text):
            text = _sub_in_tokens(self.url, self.url_hint, text)
        # An IPv4 match contains .d{1,3}.d: only tokens with one can hold a match (a search for a
        # literal "." first is ~15x faster than the full pattern at every position).
        text = _sub_in_tokens(self.ipv4, _IPV4_HINT, text)
        return _modified(doc, text)


_IPV4_HINT = re.compile(r"\.\d{1,3}\.\d")
_TOKEN_REST = re.compile(r"\S*")


def _sub_in_tokens(pattern: re.Pattern, hint: re.Pattern, text: str) -> str:
    """``pattern.sub("", text)`` for a pattern of the shape ``\\s{0,10}<no whitespace>``, run only on
    the whitespace-delimited tokens holding a match of ``hint`` (each with the up to 10 whitespace
    characters before it), instead of trying the pattern at every position of the page.

    Same result as the plain ``sub`` when every match of ``pattern`` contains a match of ``hint`` (for
    URLs: "." and the first letter of a TLD): a match is at most 10 whitespace characters followed by
    non-whitespace characters, so it lies inside one such window, and windows never overlap (tokens are
    separated by whitespace that no match crosses); tokens without a hint cannot hold a match.
    ``\\b`` at a window's end sees whitespace or the end of the text, as in the whole page."""
    out: list[str] = []
    last = 0
    for m in hint.finditer(text):
        if m.start() < last:
            continue  # a second hint in a token already done
        start = m.start()
        while start > last and not text[start - 1].isspace():
            start -= 1
        end = _TOKEN_REST.match(text, m.end()).end()
        ws = start
        while ws > last and start - ws < 10 and text[ws - 1].isspace():
            ws -= 1
        out.append(text[last:ws])
        out.append(pattern.sub("", text[ws:end]))
        last = end
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)



@register
class WordCounter(Step):
    """Store the page's fastText word count (alphanumeric-initial tokens) under ``key``, for
    ``word_removal_ratio_filter`` after the line modifiers."""

    name, kind = "word_counter_enricher", "enricher"

    class Params(StrictModel):
        key: str = "previous_word_count"
        ignore_punctuation: bool = True

    def apply(self, doc):
        doc.meta[self.p.key] = doc.ft_word_count(self.p.ignore_punctuation)
        return None


@register
class WordRemovalRatio(Step):
    """Drop pages that lost more than ``max_removed_ratio`` of their words to the line modifiers since
    ``word_counter_enricher`` ran (RefinedWeb / DCLM: 5%)."""

    name, kind = "word_removal_ratio_filter", "filter"

    class Params(StrictModel):
        prev_word_count_key: str = "previous_word_count"
        max_removed_ratio: float = Field(0.05, ge=0, le=1)
        ignore_punctuation: bool = True

    def apply(self, doc):
        before = doc.meta.get(self.p.prev_word_count_key)
        if before is None:
            raise KeyError(f"{self.name}: no '{self.p.prev_word_count_key}': add word_counter_enricher before it")
        if before == 0:
            return "no_words"
        after = doc.ft_word_count(self.p.ignore_punctuation)
        removed = (before - after) / before
        return f"words_removed>{self.p.max_removed_ratio:g}" if removed > self.p.max_removed_ratio else None
