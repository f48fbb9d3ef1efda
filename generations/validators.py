"""Validators for text that members type and others read: prompts now, comments later.

`VisibleTextValidator` refuses characters a reader cannot see but software acts on:
- control characters (Unicode Cc), ESC included: terminal escapes in logs and exports;
- format characters (Unicode Cf): bidi overrides and isolates (U+202A-U+202E,
  U+2066-U+2069) that reorder what is shown ("Trojan Source"), zero-width spaces and marks
  (U+200B, U+200E, U+200F, U+2060), the BOM (U+FEFF), tag characters (U+E0000-U+E007F) that
  smuggle hidden text to a model;
- the Unicode line and paragraph separators (U+2028, U+2029), line breaks that are not.

Allowed: ordinary line breaks (`\\n`, `\\r\\n`: browsers send textarea lines as `\\r\\n`)
and tabs. The zero-width non-joiner and joiner (U+200C, U+200D) are allowed between two
visible characters, where Persian, Indic scripts and emoji sequences need them; anywhere
else (at an end, doubled, next to a space) they only hide something and are refused.
"""

import unicodedata
from collections.abc import Iterator

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

ALLOWED_CONTROLS = {"\t", "\n"}
JOINERS = {"\u200c", "\u200d"}
REFUSED_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}


def _refused(category: str) -> bool:
    return category in REFUSED_CATEGORIES


def _visible(ch: str) -> bool:
    return not ch.isspace() and not _refused(unicodedata.category(ch))


def invisible_characters(text: str) -> Iterator[tuple[int, str]]:
    """(index, character) of every character `VisibleTextValidator` refuses."""
    for i, ch in enumerate(text):
        if ch in ALLOWED_CONTROLS or not _refused(unicodedata.category(ch)):
            continue
        if ch == "\r" and text[i + 1 : i + 2] == "\n":
            continue
        between_visible = 0 < i < len(text) - 1 and _visible(text[i - 1]) and _visible(text[i + 1])
        if ch in JOINERS and between_visible:
            continue
        yield i, ch


def describe(ch: str) -> str:
    """'U+202E RIGHT-TO-LEFT OVERRIDE', or 'U+001B' for a control without a name."""
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X} {name}" if name else f"U+{ord(ch):04X}"


@deconstructible
class VisibleTextValidator:
    """Refuse text holding an invisible control or format character, naming the first one
    and where it is (1-based, as a person counts), e.g. for `what="The prompt"`:
    "The prompt contains an invisible control character (U+202E RIGHT-TO-LEFT OVERRIDE)
    at character 12. Delete it and try again."
    """

    code = "invisible_character"

    def __init__(self, what: str = "This text") -> None:
        self.what = what

    def __call__(self, value: str) -> None:
        found = list(invisible_characters(value or ""))
        if not found:
            return
        index, ch = found[0]
        more = len(found) - 1
        message = (
            "%(what)s contains an invisible control character (%(character)s) at character "
            "%(position)d"
        )
        if more:
            message += " and %(more)d more like it"
        raise ValidationError(
            message + ". Delete it and try again.",
            code=self.code,
            params={
                "what": self.what,
                "character": describe(ch),
                "position": index + 1,
                "more": more,
            },
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VisibleTextValidator) and other.what == self.what
