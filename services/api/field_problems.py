"""What is wrong with a field of a request, in the request's language (422 `invalid_request`).

Pydantic words its errors in English. English keeps them word for word; another language
gets the catalog's sentence for the error's type, with the limits Pydantic reports
(`ctx`). Types not listed here stay in English, rather than be said wrongly.
"""

from __future__ import annotations

import re
from contextlib import suppress
from typing import Any

from services.errors import N_
from services.i18n.catalogs import translate

BY_TYPE = {
    "missing": N_("this field is required"),
    "bool_type": N_("give true or false"),
    "bool_parsing": N_("give true or false"),
    "int_type": N_("give a whole number"),
    "int_parsing": N_("give a whole number"),
    "string_type": N_("give a string"),
    "list_type": N_("give a list"),
    "dict_type": N_("give an object"),
    "model_type": N_("give an object"),
    "json_invalid": N_("this is not valid JSON"),
    "string_too_short": N_("give at least {min_length} characters"),
    "string_too_long": N_("give at most {max_length} characters"),
    "too_short": N_("give at least {min_length} items"),
    "too_long": N_("give at most {max_length} items"),
    "greater_than_equal": N_("give a number of at least {ge}"),
    "less_than_equal": N_("give a number of at most {le}"),
    "greater_than": N_("give a number above {gt}"),
    "less_than": N_("give a number below {lt}"),
    "literal_error": N_("give one of {expected}"),
    "enum": N_("give one of {expected}"),
}


# A limit of one reads better as words of its own than as "at least 1 characters".
AT_LEAST_ONE = {"string_too_short": N_("must not be empty"),
                "too_short": N_("give at least one item")}


def in_words(error: dict[str, Any], locale: str | None) -> str:
    """One Pydantic error as `where: problem`."""
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
    problem = str(error.get("msg", "invalid"))
    kind, ctx = str(error.get("type")), dict(error.get("ctx") or {})
    template = BY_TYPE.get(kind)
    if ctx.get("min_length") == 1 and kind in AT_LEAST_ONE:
        template = AT_LEAST_ONE[kind]
    if locale and locale != "en" and template:
        values = {k: _listed(str(v)) for k, v in ctx.items()}
        with suppress(KeyError, IndexError):  # a limit Pydantic did not report: keep English
            problem = translate(locale, template).format(**values)
    return f"{where}: {problem}"


def _listed(value: str) -> str:
    """Pydantic's "'a', 'b' or 'c'" as "'a', 'b', 'c'": its English "or" has no place
    in another language's sentence."""
    return re.sub(r"(?<=') or (?=')", ", ", value)
