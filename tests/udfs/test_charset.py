import pytest

from udfs.charset import UndecodableError, decode_html, decode_plain, meta_charset

JA = "日本語のテキストです。東京は日本の首都です。" * 5


def test_declared_charset_wins():
    text, codec = decode_html("héllo".encode(), "utf-8")
    assert (text, codec) == ("héllo", "utf-8")


def test_meta_charset_used_when_header_is_silent():
    page = b'<html><head><meta charset="shift_jis"></head><body>' + JA.encode("shift_jis") + b"</body></html>"
    assert meta_charset(page) == "shift_jis"
    text, codec = decode_html(page, None)
    assert JA in text and codec == "shift_jis"


def test_http_equiv_meta():
    page = (b'<meta http-equiv="Content-Type" content="text/html; charset=EUC-JP">'
            + JA.encode("euc_jp"))
    text, codec = decode_html(page, None)
    assert JA in text and codec == "euc_jp"


def test_wrong_declaration_falls_back_to_detection():
    # Declared UTF-8, really Windows-1252: strict UTF-8 fails, detection recovers the text.
    page = ("<p>" + "Café crème, naïve façade. " * 20 + "</p>").encode("cp1252")
    text, codec = decode_html(page, "utf-8")
    assert "Café crème" in text and codec != "utf-8"


def test_iso_8859_1_label_means_windows_1252():
    text, _ = decode_html(b"\x93quoted\x94", "iso-8859-1")
    assert text == "\u201cquoted\u201d"


def test_unknown_label_is_ignored():
    text, codec = decode_html(b"plain ascii", "x-no-such-charset")
    assert text == "plain ascii"


def test_bom_is_stripped():
    assert decode_html(b"\xef\xbb\xbf<p>x</p>", None)[0] == "<p>x</p>"


def test_bytes_no_codec_accepts_are_undecodable():
    # 0x81 0x8D 0x8F 0x90 0x9D are undefined in Windows-1252 and invalid as UTF-8 lead bytes.
    with pytest.raises(UndecodableError):
        decode_html(bytes([0x81, 0x8D, 0x8F, 0x90, 0x9D]) * 400, "utf-8")


def test_a_few_bad_bytes_in_a_long_page_are_tolerated():
    page = ("<p>" + "good text " * 500 + "</p>").encode() + b"\xff\xfe"
    text, _ = decode_html(page, "utf-8")
    assert "good text" in text


def test_wet_text_is_utf8():
    assert decode_plain("Grüße\n".encode()) == "Grüße\n"
