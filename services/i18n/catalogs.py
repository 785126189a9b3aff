"""The gettext catalogs of services/locale/<lang>/LC_MESSAGES/messages.mo, loaded once each.

The `.po` files are the source translators edit; the `.mo` files are compiled from them
(`pybabel compile -d services/locale`) and committed, so every install has them, an editable
checkout included (tests/test_i18n.py checks they match).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.support import NullTranslations, Translations

from services.i18n.locales import effective

DIRECTORY = Path(__file__).resolve().parents[1] / "locale"
DOMAIN = "messages"


@lru_cache(maxsize=8)
def translations(locale: str | None) -> NullTranslations:
    """The catalog of `locale` (English: none, the message ids are English)."""
    language = effective(locale)
    if language == "en":
        return NullTranslations()
    return Translations.load(str(DIRECTORY), [language], DOMAIN)


def translate(locale: str | None, message: str, /, **params: Any) -> str:
    """`message` in `locale`, with its `{name}` placeholders filled in."""
    translated = translations(locale).gettext(message)
    return translated.format(**params) if params else translated
