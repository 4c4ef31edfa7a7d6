"""YAML problems as one line for the user, and the guard that keeps a parser away from what it
cannot survive."""

from __future__ import annotations

import re

# Kustomizations and promotion.yaml nest a handful of levels; nothing real comes near this.
MAX_DEPTH = 200
_FLOW = re.compile(r"[][{}]")
# A line's indentation and the compact collection markers that follow it (`- - - x`, `? a`).
_BLOCK = re.compile(r"^([ \t]*)((?:[-?:][ \t]+)*)", re.MULTILINE)


def describe_yaml_error(exc: Exception) -> str:
    """A YAML parser error on one line: what and where (ruamel's own text spans several)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def too_deep(text: str) -> str | None:
    """Why ``text`` may nest more than MAX_DEPTH collections (judged on the text, an upper bound),
    or None. Checked before a parser sees a file of the repository: ruamel's pure-Python parser
    takes seconds to give up on ~1,000 levels, and its C one (libyaml's composer) overflows the C
    stack and kills the process on ~100,000, before any error could be reported."""
    depth = 0
    for match in _FLOW.finditer(text):
        # A closer never counts below zero, so brackets quoted in a string cannot hide real nesting.
        depth = depth + 1 if match.group() in "[{" else max(0, depth - 1)
        if depth > MAX_DEPTH:
            return f"nests too deeply to read (more than {MAX_DEPTH} levels of [ ] or {{ }})"
    for match in _BLOCK.finditer(text):
        if len(match.group(1)) + sum(c in "-?:" for c in match.group(2)) > MAX_DEPTH:
            return f"nests too deeply to read (a line indented past {MAX_DEPTH} levels)"
    return None
