"""Bytes of an HTML page to text: the declared charset first, then ``<meta>``, then detection.

Order and rules:
1. the charset of the HTTP ``Content-Type`` header, if it names a codec Python knows;
2. a ``<meta charset>`` / ``http-equiv`` declaration in the first 4 KiB (the HTML5 prescan window
   is 1024 bytes; real pages put the tag later, so we look further);
3. resiliparse's ``detect_encoding`` (uchardet-style detection on the bytes).
Labels are mapped the way browsers do (``iso-8859-1`` means ``windows-1252`` in HTML5). The first
candidate that decodes strictly wins. If none does, the best candidate decodes with replacement
characters, and the page counts as undecodable when more than 1% of its characters are replaced
(a page that is mostly mojibake is not text worth training on).
"""

from __future__ import annotations

import codecs
import re

from resiliparse.parse.encoding import detect_encoding, map_encoding_to_html5

META_SCAN_BYTES = 4096
MAX_REPLACED_FRACTION = 0.01
_META_RE = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]{2,40})""", re.I)


class UndecodableError(ValueError):
    """The bytes do not decode as text in any plausible encoding."""


def _python_codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    html5 = map_encoding_to_html5(label, fallback_utf8=False)
    for cand in (html5, label):
        if not cand:
            continue
        try:
            return codecs.lookup(cand).name
        except LookupError:
            continue
    return None


def meta_charset(data: bytes) -> str | None:
    m = _META_RE.search(data[:META_SCAN_BYTES])
    return m.group(1).decode("ascii", "ignore") if m else None


def decode_html(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """Return ``(text, codec_name)`` or raise :class:`UndecodableError`."""
    candidates: list[str] = []
    for label in (declared, meta_charset(data)):
        codec = _python_codec(label)
        if codec and codec not in candidates:
            candidates.append(codec)
    detected = _python_codec(detect_encoding(data))
    if detected and detected not in candidates:
        candidates.append(detected)
    if "utf-8" not in candidates:
        candidates.append("utf-8")
    for codec in candidates:
        try:
            text = data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
        return text.removeprefix("\ufeff"), codec
    codec = candidates[0]
    text = data.decode(codec, errors="replace").removeprefix("\ufeff")
    replaced = text.count("\ufffd")
    if replaced > max(8, MAX_REPLACED_FRACTION * len(text)):
        raise UndecodableError(f"{replaced} of {len(text)} characters undecodable as {codec}")
    return text, codec


def decode_plain(data: bytes) -> str:
    """Text records (WET ``conversion``) are UTF-8 by specification; tolerate stray bytes."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        text, _ = decode_html(data, "utf-8")
        return text
