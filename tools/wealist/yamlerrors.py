"""YAML parser errors as one line for the user."""

from __future__ import annotations


def describe_yaml_error(exc: Exception) -> str:
    """A YAML parser error on one line: what and where (ruamel's own text spans several)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"
