"""Undo HTTP transfer and content encodings of an archived response body.

Archives disagree on what they store: Common Crawl stores decoded bodies (and renames the original
headers to ``X-Crawler-*``), wget and Heritrix store the bytes as sent, sometimes still chunked or
gzipped, and some tools de-chunk the body but keep the ``Transfer-Encoding: chunked`` header. So each
decoding step is tried and, where the body does not look encoded after all, the bytes are kept.
"""

from __future__ import annotations

import zlib

import brotli


class ContentEncodingError(ValueError):
    """The body claims a content encoding that does not decode."""


def dechunk(data: bytes) -> bytes | None:
    """Decode an HTTP/1.1 chunked body; ``None`` when ``data`` is not validly chunked."""
    out = bytearray()
    pos = 0
    n = len(data)
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_field = data[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            return None
        if size == 0:
            return bytes(out)
        start = eol + 2
        end = start + size
        if end > n:
            # A chunk cut short by the crawler's size limit: keep what is there.
            out += data[start:]
            return bytes(out)
        out += data[start:end]
        pos = end + 2 if data[end:end + 2] == b"\r\n" else end


def decode_content(body: bytes, content_encoding: str | None) -> bytes:
    """Decompress a ``gzip`` / ``deflate`` / ``br`` body; identity otherwise.

    A body that claims gzip but does not start with the gzip magic is returned unchanged (the archive
    already stored it decoded). One that starts like gzip but does not decode raises.
    """
    enc = (content_encoding or "").strip().lower()
    if enc in ("", "identity", "none"):
        return body
    if enc in ("gzip", "x-gzip"):
        if not body.startswith(b"\x1f\x8b"):
            return body
        try:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            return d.decompress(body) + d.flush()
        except zlib.error as exc:
            raise ContentEncodingError(f"gzip body does not decode: {exc}") from exc
    if enc == "deflate":
        for wbits in (zlib.MAX_WBITS, -zlib.MAX_WBITS):
            try:
                return zlib.decompress(body, wbits)
            except zlib.error:
                continue
        return body
    if enc == "br":
        try:
            return brotli.decompress(body)
        except brotli.error:
            return body
    return body
