"""What went wrong with a webhook delivery, said as an admin would say it.

The delivery records keep the transport's own text ("ConnectError: [Errno 111] Connection
refused", "HTTP 503"): exact, and what the API returns. The console reads it to a person,
in their language (English message ids, said when the page renders); HTTP's reason phrases
stay as the standard names them.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from services.console.words import Words
from services.errors import N_

_KNOWN = (
    (re.compile(r"Errno 111|Connection refused", re.I),
     N_("Connection refused: nothing is listening at that address and port.")),
    (re.compile(r"Errno -2|Errno -3|Name or service not known|does not resolve|no address", re.I),
     N_("The host name does not resolve to an address.")),
    (re.compile(r"Timeout|timed out", re.I), N_("No answer in time: the endpoint took too long.")),
    (re.compile(r"SSL|TLS|certificate", re.I),
     N_("The secure connection failed: check the endpoint's TLS certificate.")),
    (re.compile(r"redirects are not followed", re.I),
     N_("The endpoint answered with a redirect; twofa does not follow redirects, so give the "
        "final URL.")),
    (re.compile(r"is a (loopback|private|link-local|reserved|multicast)", re.I),
     N_("The endpoint's address is on a private network, which webhooks may not reach.")),
)
_HTTP = re.compile(r"^HTTP (\d{3})")


def problem(error: str | None, status: int | None) -> Words | str:
    """One sentence for the last attempt; empty when it succeeded."""
    if status is not None and 200 <= status < 300:
        return ""
    for pattern, words in _KNOWN:
        if error and pattern.search(error):
            return Words(words, {})
    code = status
    if code is None and error and (match := _HTTP.match(error)):
        code = int(match.group(1))
    if code is not None:
        try:
            phrase: Words | str = HTTPStatus(code).phrase
        except ValueError:
            phrase = Words(N_("an unexpected status"), {})
        return Words(N_("The endpoint answered {code} ({phrase})."),
                     {"code": code, "phrase": phrase})
    return Words(N_("The delivery failed: {error}"),
                 {"error": error or Words(N_("no answer"), {})})
