"""Keep tokens out of everything we print: credentials in URLs and the forge token's value."""

from __future__ import annotations

import functools
import os
import re
from typing import Any, TextIO

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
TOKEN_ENV = "GITHUB_TOKEN"


_HIDDEN: set[str] = set()  # secrets met at run time (registry passwords, tokens)


def hide(secret: str) -> str:
    """Remember ``secret`` so that ``mask`` removes it from anything printed; returns it."""
    if len(secret) >= 4:
        _HIDDEN.add(secret)
    return secret


def mask(text: str) -> str:
    """``text`` with credentials in URLs, the forge token and every secret passed to ``hide``
    replaced by ``***``, in every form they may take in a message (as set, trimmed, or escaped
    the way Python quotes it)."""
    if "://" in text:
        text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
    for secret in (os.environ.get(TOKEN_ENV) or "", *_HIDDEN):
        for form in _token_forms(secret):
            if form in text:
                text = text.replace(form, "***")
    return text


@functools.lru_cache(maxsize=4)
def _token_forms(token: str) -> tuple[str, ...]:
    """Longest first, so a longer form is masked before a shorter one inside it."""
    forms = {token, token.strip(), repr(token)[1:-1], repr(token.encode())[2:-1]}
    return tuple(sorted((f for f in forms if len(f) >= 4), key=len, reverse=True))


class MaskingStream:
    """A text stream that masks everything written through it: every output path of the command
    line (results on stdout, progress and errors on stderr) goes through the mask."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str | bytes) -> int:
        if isinstance(text, bytes):  # some writers hand bytes to a text stream (shell completion)
            self._stream.write(mask(text.decode(self._stream.encoding or "utf-8", errors="replace")))
        else:
            self._stream.write(mask(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, encoding, fileno, ...
        if name == "buffer":
            # No way around the mask: Click writes to a text stream's buffer when it has one.
            raise AttributeError(name)
        return getattr(self._stream, name)
