"""Write WARC/1.0 files of HTTP responses (one gzip member per record, as Common Crawl does).

Used to build the bundled sample and benchmark corpora from real pages, and by tests to make files
with known contents. Record ids are UUID5 of (file name, index) so rebuilt files are byte-identical.
"""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

_NS = uuid.UUID("5b7d6c1e-3f0a-4c55-9a3c-6c2f6b1d0a11")


def _record(headers: list[tuple[str, str]], block: bytes) -> bytes:
    head = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    head += f"Content-Length: {len(block)}\r\n\r\n"
    return head.encode("utf-8") + block + b"\r\n\r\n"


def http_response(body: bytes, content_type: str = "text/html", status: str = "200 OK",
                  extra_headers: Iterable[tuple[str, str]] = ()) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in extra_headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def write_warc(path: str, pages: Iterable[tuple[str, bytes]] | Iterable[tuple[str, bytes, str]],
               date: datetime | None = None, compress: bool = True) -> int:
    """Write ``(url, body[, content_type])`` pages as response records after a warcinfo record.

    Returns the number of response records written.
    """
    date_s = (date or datetime(2024, 5, 18, tzinfo=UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    name = path.rsplit("/", 1)[-1]
    n = 0
    with open(path, "wb") as out:
        def emit(data: bytes) -> None:
            out.write(gzip.compress(data, compresslevel=6, mtime=0) if compress else data)

        info = b"software: lakesift warcwrite\r\nformat: WARC File Format 1.0\r\n"
        emit(_record([("WARC-Type", "warcinfo"), ("WARC-Date", date_s), ("WARC-Filename", name),
                      ("WARC-Record-ID", f"<urn:uuid:{uuid.uuid5(_NS, name)}>"),
                      ("Content-Type", "application/warc-fields")], info))
        for page in pages:
            url, body = page[0], page[1]
            ctype = page[2] if len(page) > 2 else "text/html"
            rid = uuid.uuid5(_NS, f"{name}#{n}")
            emit(_record([("WARC-Type", "response"), ("WARC-Date", date_s),
                          ("WARC-Record-ID", f"<urn:uuid:{rid}>"), ("WARC-Target-URI", url),
                          ("Content-Type", "application/http; msgtype=response")],
                         http_response(body, ctype)))
            n += 1
    return n
