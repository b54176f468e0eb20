"""Masking of personal information: e-mail addresses, mainland China resident ID numbers and Chinese
phone numbers (mobile and landline)."""

from __future__ import annotations

import re
from datetime import date

from pydantic import Field

from lakesift.config import StrictModel
from udfs.steps.base import Step, _modified, register

# Only ASCII letters and digits count as "the same token": a Chinese character, punctuation or a space
# next to a number ends it (Chinese text writes 电话13812345678 with no space).
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])"
    r"[A-Za-z0-9](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9_%+\-])?"  # local part, no leading / trailing dot
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
    r"(?![A-Za-z0-9\-])")

# GB 11643-1999: 6-digit region code (first digit 1-8), birth date YYYYMMDD, 3-digit sequence number and
# a check character (ISO 7064 MOD 11-2); the date and the check are verified in code.
_ID = re.compile(r"(?<![A-Za-z0-9])[1-8][0-9]{5}((?:19|20)[0-9]{2})(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])"
                 r"[0-9]{3}[0-9Xx](?![A-Za-z0-9])")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"  # the check character for (sum of digit * weight) mod 11 = 0, 1, 2 ...

# Mainland mobile numbers: 1[3-9] and 9 more digits, optionally grouped 3-4-4 with one kind of
# separator (a space or a hyphen, the same twice), optionally after +86 / 0086 / 86 (and a separator);
# landlines: a 3- or 4-digit area code starting with 0, then 7 or 8 digits, written 010-12345678 or
# (010)12345678 / （010）12345678.
_PHONE = re.compile(
    r"(?<![A-Za-z0-9+])(?:(?:\+86|0086|86)[ \-]?)?1[3-9][0-9](?P<sep>[ \-]?)[0-9]{4}(?P=sep)[0-9]{4}(?![A-Za-z0-9])"
    r"|(?<![A-Za-z0-9])0[0-9]{2,3}-[0-9]{7,8}(?![A-Za-z0-9])"
    r"|[(（]0[0-9]{2,3}[)）] ?[0-9]{7,8}(?![A-Za-z0-9])")


def id_number_valid(number: str, today: date | None = None) -> bool:
    """Whether an 18-character resident ID number has a real birth date between 1900-01-01 and
    ``today`` and the right GB 11643-1999 check character (ISO 7064 MOD 11-2)."""
    if len(number) != 18 or not number[:17].isdigit() or not number[:17].isascii():
        return False
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    if not date(1900, 1, 1) <= born <= (today or date.today()):
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return number[17].upper() == _ID_CHECK[total % 11]


@register
class PiiMask(Step):
    """Replace personal information in the text by placeholder tokens, in this order:

    1. e-mail addresses (``name@host.tld``) -> ``email_token`` (``<EMAIL>``);
    2. mainland China resident ID numbers (GB 11643-1999: 18 characters, a region code starting 1-8, a
       birth date YYYYMMDD that exists and lies between 1900-01-01 and today, 3 digits and a check
       character 0-9 or X/x) -> ``id_token`` (``<ID>``), only where the ISO 7064 MOD 11-2 check
       character (weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2) is right;
    3. phone numbers -> ``phone_token`` (``<PHONE>``): mainland mobiles ``1[3-9]`` + 9 digits, optionally
       after ``+86`` / ``0086`` / ``86``, optionally grouped 3-4-4 by spaces or hyphens; landlines
       ``0XX(X)-XXXXXXX(X)`` with the hyphen, or with the area code in parentheses ``(010)12345678``.

    A number is masked only as a whole token: no ASCII letter or digit just before or after it (a longer
    digit run, an order number such as ``SN13812345678``). The rule set follows xubuvd/LLMs
    codes_datasets/DataCleaning ``clean_private`` (e-mail, ID card with a date check, +86 mobile,
    landline), with the GB 11643-1999 check digit added so that other 18-digit numbers are not masked.
    Each kind can be turned off (``email``, ``phone``, ``id_number``). With ``key_prefix`` set, the
    numbers of masked items go to ``<prefix>email``, ``<prefix>phone`` and ``<prefix>id`` (int
    columns; only for the kinds turned on). The page is kept (a modifier): it is dropped only if its
    text becomes empty.
    """

    name, kind = "pii_mask_modifier", "modifier"

    class Params(StrictModel):
        email: bool = True
        phone: bool = True
        id_number: bool = True
        email_token: str = Field("<EMAIL>", max_length=100)
        phone_token: str = Field("<PHONE>", max_length=100)
        id_token: str = Field("<ID>", max_length=100)
        key_prefix: str | None = Field("pii_", min_length=1)

    def _keys(self) -> dict[str, str]:
        p = self.p
        kinds = {"email": p.email, "id": p.id_number, "phone": p.phone}
        return {k: f"{p.key_prefix}{k}" for k, on in kinds.items() if on} if p.key_prefix else {}

    def columns(self):
        return {col: "int" for col in self._keys().values()}

    def apply(self, doc):
        p = self.p
        text = doc.text
        counts = {"email": 0, "id": 0, "phone": 0}
        if p.email and "@" in text:
            text, counts["email"] = _EMAIL.subn(p.email_token, text)
        if p.id_number:
            today = date.today()
            n = 0

            def mask_id(m: re.Match) -> str:
                nonlocal n
                if id_number_valid(m.group(0), today):
                    n += 1
                    return p.id_token
                return m.group(0)

            text = _ID.sub(mask_id, text)
            counts["id"] = n
        if p.phone:
            text, counts["phone"] = _PHONE.subn(p.phone_token, text)
        for kind, col in self._keys().items():
            doc.meta[col] = counts[kind]
        return _modified(doc, text)
