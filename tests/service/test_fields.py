"""The one-line rule refuses exactly Unicode's control characters, and the OpenAPI
document states the same set."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest

from service.api.fields import SINGLE_LINE_PATTERN, _single_line


def refused(text: str) -> bool:
    try:
        _single_line(text)
    except ValueError:
        return True
    return False


def test_one_line_text_refuses_exactly_the_control_characters() -> None:
    control = {c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cc"}
    assert {c for c in range(sys.maxunicode + 1) if refused(f"a{chr(c)}b")} == control


@pytest.mark.parametrize("text", ["plain", "é ü 名前 🙂", "\u00a0non-breaking", ""])
def test_one_line_text_takes_printable_unicode(text: str) -> None:
    assert _single_line(text) == text


def test_the_documented_pattern_is_the_same_rule() -> None:
    documented = re.compile(SINGLE_LINE_PATTERN)
    for code in range(0x3000):
        assert (documented.match(f"a{chr(code)}b") is None) == refused(f"a{chr(code)}b"), code
