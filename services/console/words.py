"""A sentence kept as its English message id and values until a page knows its reader's
language (its own module so that web and invalid_words both use it without a cycle)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.i18n.catalogs import translate


@dataclass(frozen=True)
class Words:
    """An English message id and its values, said in the page's language when it renders
    (a value that is Words itself is said in it too)."""

    message: str
    params: dict[str, Any]

    def said(self, locale: str) -> str:
        return translate(locale, self.message, **{
            k: v.said(locale) if isinstance(v, Words) else v for k, v in self.params.items()})

    def __str__(self) -> str:
        return self.said("en")
