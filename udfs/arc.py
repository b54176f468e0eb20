"""Read legacy ARC files (Internet Archive, 1996-2008) as WARC response records.

ARC v1 (and v2) files start with a ``filedesc://`` record, then repeat: a header line
``URL IP-address Archive-date Content-type Archive-length`` (v2 adds five fields before the length),
``Archive-length`` bytes of HTTP response, and a newline. ``.arc.gz`` files gzip each record as its
own member, which Python's gzip reader reads as one stream.

Each ARC record is re-framed as a WARC/1.0 ``response`` record and parsed by FastWARC, so that the
rest of the ingest path (HTTP parsing, truncation check, decoding) is the same for ARC and WARC.
URLs containing spaces (seen in real ARCs) are handled by reading the fixed fields from the right.
"""

from __future__ import annotations

import gzip
import io
import uuid
import zlib
from collections.abc import Iterator
from typing import BinaryIO

_NS = uuid.UUID("0b8e7a52-6f1e-4f7a-9d0a-1c3b5e7f9a20")


class ArcFormatError(ValueError):
    """The bytes do not follow the ARC format."""


def is_arc(stream: BinaryIO) -> bool:
    """Peek at the start of a seekable stream (gzipped or not): does it begin ``filedesc://``?"""
    head = stream.read(512)
    stream.seek(0)
    if head[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head)
        except zlib.error:
            return False
    return head.startswith(b"filedesc://")


def _warc_date(arc_date: bytes) -> str | None:
    d = arc_date.decode("ascii", "replace")
    if len(d) < 14 or not d[:14].isdigit():
        return None  # a malformed date (e.g. 18 digits) is left out rather than guessed
    return f"{d[0:4]}-{d[4:6]}-{d[6:8]}T{d[8:10]}:{d[10:12]}:{d[12:14]}Z"


def _length(field: bytes, what: str) -> int:
    """A non-negative byte count from an ARC header field, or :class:`ArcFormatError`."""
    try:
        n = int(field)
    except ValueError:
        n = -1
    if n < 0:
        raise ArcFormatError(f"bad {what} {field.decode('ascii', 'replace')}")
    return n


def iter_arc_records(stream: BinaryIO, name: str = "") -> Iterator:
    """Yield FastWARC ``WarcRecord`` objects, one per ARC record after the ``filedesc`` one.

    Raises :class:`ArcFormatError` on a malformed header line (after yielding the good records).
    """
    from fastwarc.warc import ArchiveIterator

    head = stream.read(2)
    stream.seek(0)
    f = gzip.GzipFile(fileobj=stream) if head == b"\x1f\x8b" else stream
    first = f.readline()
    if not first.startswith(b"filedesc://"):
        raise ArcFormatError("not an ARC file: no filedesc:// record")
    desc = f.read(_length(first.split()[-1], "filedesc length"))
    version = desc.split(b" ", 1)[0] if desc else b"1"
    n_fixed = 9 if version == b"2" else 4  # fields after the URL, the length included
    index = 0
    while True:
        line = f.readline()
        if not line:
            return
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        parts = line.split(b" ")
        if len(parts) < n_fixed + 1:
            raise ArcFormatError(f"bad ARC header line {line[:120]!r}")
        length = _length(parts[-1], f"ARC record length in {line[:120]!r}:")
        url = b" ".join(parts[:-n_fixed]).decode("utf-8", "replace")
        date = _warc_date(parts[-n_fixed + 1])
        content = f.read(length)  # may come back short: the truncation check downstream sees it
        headers = [
            "WARC/1.0", "WARC-Type: response", f"WARC-Target-URI: {url}",
            f"WARC-Record-ID: <urn:uuid:{uuid.uuid5(_NS, f'{name}#{index}')}>",
            "Content-Type: application/http; msgtype=response", f"Content-Length: {length}",
        ]
        if date:
            headers.insert(3, f"WARC-Date: {date}")
        block = ("\r\n".join(headers) + "\r\n\r\n").encode("utf-8") + content
        index += 1
        yield next(iter(ArchiveIterator(io.BytesIO(block), parse_http=False)))
