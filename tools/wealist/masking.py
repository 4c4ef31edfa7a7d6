"""Keep tokens out of everything we print: credentials in URLs and the forge token's value."""

from __future__ import annotations

import os
import re

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
TOKEN_ENV = "GITHUB_TOKEN"


def mask(text: str) -> str:
    """``text`` with credentials in URLs and the forge token's value replaced by ``***``."""
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
    token = os.environ.get(TOKEN_ENV)
    if token and len(token) >= 4:
        text = text.replace(token, "***")
    return text
