import gzip
import zlib

import brotli
import pytest

from udfs.http import ContentEncodingError, dechunk, decode_content


def test_dechunk_valid_body_with_extension():
    assert dechunk(b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n") == b"hello world"


def test_dechunk_rejects_a_body_that_is_not_chunked():
    assert dechunk(b"<html><body>plain</body></html>") is None


def test_dechunk_keeps_a_chunk_cut_short():
    assert dechunk(b"a\r\n12345") == b"12345"


@pytest.mark.parametrize("enc,data", [
    ("gzip", gzip.compress(b"<p>x</p>")),
    ("deflate", zlib.compress(b"<p>x</p>")),
    ("br", brotli.compress(b"<p>x</p>")),
    ("identity", b"<p>x</p>"),
    (None, b"<p>x</p>"),
])
def test_decode_content(enc, data):
    assert decode_content(data, enc) == b"<p>x</p>"


def test_gzip_header_on_already_decoded_body_keeps_bytes():
    # Common in archives: the header says gzip, the stored body is already plain.
    assert decode_content(b"<html>ok</html>", "gzip") == b"<html>ok</html>"


def test_broken_gzip_raises():
    with pytest.raises(ContentEncodingError):
        decode_content(b"\x1f\x8b\x08\x00garbage-not-deflate", "gzip")
