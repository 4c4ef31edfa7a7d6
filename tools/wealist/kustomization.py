"""The one YAML editor: reads and changes the ``images:`` of an overlay's kustomization.yaml.

Edits are spliced into the original text at the positions the round-trip parser reports, so every
byte that is not a changed scalar (comments, key order, quoting, blank lines, indentation) stays as
it was. A round-trip dump would re-indent and re-wrap; splicing cannot.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .images import ImageRef
from .yamlerrors import describe_yaml_error, too_deep


@dataclass(frozen=True)
class ImageEntry:
    """One ``images:`` entry of an overlay."""

    name: str
    new_name: str | None
    ref: ImageRef | None  # None when the entry sets no newTag

    @property
    def rendered_name(self) -> str:
        return self.new_name or self.name


# A document whose aliases expand past this many nodes is refused: comparing the overlay before
# and after an edit expands aliases, and a "billion laughs" would hold the lock for hours.
MAX_EXPANDED_NODES = 100_000


def _parse_view(text: str) -> str:
    """``text`` as the parser sees it: a tab before a comment (``v1\t# note``, valid for Go's YAML
    and kustomize) becomes a space, which ruamel accepts. Same length, so every position the parser
    reports is a position in ``text``, and the splice edits the original bytes."""
    return text.replace("\t#", " #")


@functools.lru_cache(maxsize=8)
def _load_rt(text: str, source: str) -> Any:
    """The round-trip parse (with positions), shared by reading and editing the same text.
    Callers only read the result."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    view = _parse_view(text)
    deep = too_deep(view)
    if deep:
        raise ConfigError(f"{source} {deep}")
    try:
        if "&" in view:
            _check_expansion(YAML(typ="rt").compose(view), source)
        return YAML(typ="rt").load(view)
    except YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {describe_yaml_error(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{source} nests too deeply to read") from None


def _check_expansion(root: Any, source: str) -> None:
    """Refuse a document whose aliases expand to more than MAX_EXPANDED_NODES nodes (counted on
    the composed graph, where an alias is the anchored node itself, so counting never expands)."""
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a recursive alias counts once instead of looping
        children = node.value if isinstance(node.value, list) else []
        total = 1
        for child in children:
            for part in child if isinstance(child, tuple) else (child,):
                total = min(total + size(part), MAX_EXPANDED_NODES + 1)
        sizes[id(node)] = total
        return total

    if root is not None and size(root) > MAX_EXPANDED_NODES:
        raise ConfigError(
            f"{source}: its YAML aliases expand to more than {MAX_EXPANDED_NODES} nodes; refusing to "
            "read it (write the values out)"
        )


def _entries(doc: Any, source: str) -> list[Any]:
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{source} is not a kustomization (not a mapping)")
    images = doc.get("images") or []
    if not isinstance(images, list) or not all(isinstance(e, Mapping) and "name" in e for e in images):
        raise ConfigError(f"{source}: images: must be a list of mappings with a name")
    return images


def read_images(text: str, source: str = "kustomization.yaml") -> dict[str, ImageEntry]:
    """The ``images:`` entries by image name."""
    result = {}
    for entry in _entries(_load_rt(text, source), source):
        tag = entry.get("newTag")
        digest = entry.get("digest")
        ref = ImageRef(tag=str(tag), digest=str(digest) if digest else None) if tag is not None else None
        new_name = entry.get("newName")
        result[str(entry["name"])] = ImageEntry(str(entry["name"]), str(new_name) if new_name else None, ref)
    return result


@dataclass(frozen=True)
class _Edit:
    start: int
    end: int
    text: str


def set_images(text: str, changes: Mapping[str, ImageRef], source: str = "kustomization.yaml") -> str:
    """Return ``text`` with ``newTag``/``digest`` of the named images set to ``changes``.

    A digest line is added when the new reference pins one and removed when it does not, so a tag
    promotion never keeps serving an old digest.
    """
    doc = _load_rt(text, source)
    entries = {str(e["name"]): e for e in _entries(doc, source)}
    line_starts = _line_starts(text)
    edits: list[_Edit] = []
    for image, ref in changes.items():
        entry = entries.get(image)
        if entry is None:
            raise ConfigError(f"{source} has no images: entry for {image}; add one (name: {image})")
        if entry.fa.flow_style():
            raise ConfigError(
                f"{source}: the images: entry for {image} is in flow style; write it in block style"
            )
        edits += _scalar_edits(text, line_starts, entry, "newTag", ref.tag, after="name", source=source)
        if ref.digest:
            anchor = "newTag" if "newTag" in entry else "name"
            edits += _scalar_edits(
                text, line_starts, entry, "digest", ref.digest, after=anchor, source=source
            )
        elif "digest" in entry:
            edits.append(_removal(text, line_starts, entry, "digest", source))

    new_text = text
    # Back to front, so earlier offsets stay valid; insertions at one offset keep their order.
    for _, edit in sorted(enumerate(edits), key=lambda ie: (ie[1].start, ie[0]), reverse=True):
        new_text = new_text[: edit.start] + edit.text + new_text[edit.end :]

    _check_splice(text, new_text, changes, source)
    return new_text


def _removal(text: str, line_starts: list[int], entry: Any, key: str, source: str) -> _Edit:
    """Remove ``key: value`` from a block entry. When it is the entry's first key (``- digest: …``,
    as `kustomize edit set image` writes it), the ``- `` stays and the next key moves up to it."""
    line, col = entry.lc.key(key)
    start, next_start = line_starts[line], line_starts[line + 1] if line + 1 < len(line_starts) else len(text)
    if not text[start : start + col].rstrip().endswith("-"):
        return _Edit(start, next_start, "")
    following = text[next_start : next_start + col + 1]
    if len(following) != col + 1 or following[:col].strip() or following[col] in " #\r\n":
        raise ConfigError(
            f"{source}: the images: entry for {entry['name']} starts with {key}: and is not followed "
            "by its next key; put name: first"
        )
    return _Edit(start + col, next_start + col, "")


def _check_splice(text: str, new_text: str, changes: Mapping[str, ImageRef], source: str) -> None:
    """The splice must have changed exactly what was asked and nothing else. The original's parse is
    the cached round-trip one; the result is read back with the lighter plain loader."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    before = _load_rt(text, source)
    try:
        after = YAML(typ="safe").load(_parse_view(new_text))
    except YAMLError as exc:
        raise ConfigError(
            f"{source}: the edit did not come out as valid YAML ({describe_yaml_error(exc)}); edit it by hand"
        ) from None
    expected = []
    for entry in before["images"]:
        ref = changes.get(entry["name"])
        if ref is not None:
            entry = {k: v for k, v in entry.items() if k not in ("newTag", "digest")} | {"newTag": ref.tag}
            if ref.digest:
                entry["digest"] = ref.digest
        expected.append(entry)
    others_before = {k: v for k, v in before.items() if k != "images"}
    others_after = {k: v for k, v in after.items() if k != "images"}
    if others_after != others_before or after["images"] != expected:
        raise ConfigError(
            f"{source}: the edit did not come out as intended (unusual formatting?); edit it by hand"
        )


def _line_starts(text: str) -> list[int]:
    starts = [0]
    for i, char in enumerate(text):
        if char == "\n":
            starts.append(i + 1)
    if starts[-1] != len(text):
        starts.append(len(text))
    return starts


def _scalar_edits(
    text: str, line_starts: list[int], entry: Any, key: str, value: str, after: str, source: str
) -> list[_Edit]:
    if key in entry and entry[key] is None:  # `newTag:` with no value: write it after the colon
        line, col = entry.lc.key(key)
        colon = line_starts[line] + col + len(key)
        if text[colon : colon + 1] != ":":
            raise ConfigError(
                f"the images: entry for {entry['name']} spells {key} unusually; edit it by hand"
            )
        return [_Edit(colon + 1, colon + 1, f" {_plain(value)}")]
    if key in entry:
        line, col = entry.lc.value(key)
        start = line_starts[line] + col
        if text[start : start + 1] in ("&", "*"):
            raise ConfigError(
                f"{source}: the images: entry for {entry['name']} gives {key} through a YAML anchor or "
                "alias; write the value itself"
            )
        end = _scalar_end(text, start)
        old = text[start:end]
        quote = old[0] if old[:1] in ("'", '"') else ""
        return [_Edit(start, end, f"{quote}{value}{quote}" if quote else _plain(value))]
    # Insert "key: value" on its own line below `after`, at the indentation of the entry's keys.
    line, col = entry.lc.key(after)
    pos = line_starts[line + 1] if line + 1 < len(line_starts) else len(text)
    newline = "\r\n" if "\r\n" in text else "\n"  # the file's own line ending
    prefix = "" if text[:pos].endswith("\n") else newline
    return [_Edit(pos, pos, f"{prefix}{' ' * col}{key}: {_plain(value)}{newline}")]


def _scalar_end(text: str, start: int) -> int:
    line_end = text.find("\n", start)
    line_end = len(text) if line_end == -1 else line_end
    if text[start] in ("'", '"'):
        close = text.find(text[start], start + 1)
        return close + 1 if 0 < close <= line_end else line_end
    comment = _parse_view(text[start:line_end]).find(" #")
    end = start + comment if comment != -1 else line_end
    return len(text[start:end].rstrip()) + start


# Plain scalars that YAML 1.1 or 1.2 would read as a number, boolean or null (kustomize's Go YAML
# and ruamel disagree on some, so both sets are quoted). Tags never contain quotes or backslashes.
_NOT_A_STRING = re.compile(
    r"[-+]?(?:\d[\d_]*)?(?:\.[\d_]*)?(?:[eE][-+]?\d+)?|0[xXoObB][0-9a-fA-F_]+|[-+]?\.(?:inf|Inf|INF|nan|NaN|NAN)"
    r"|(?i:y|n|yes|no|on|off|true|false|null|~)|\d+(?::[0-5]?\d)+(?:\.\d*)?"
    # YAML 1.1 timestamps: a date (read back as a date, not a tag), with or without a time
    r"|\d{4}-\d{1,2}-\d{1,2}(?:(?:[Tt]|\s+)\d{1,2}:\d{2}:\d{2}(?:\.\d*)?(?:\s*(?:Z|[-+]\d{1,2}(?::\d{2})?))?)?"
)


def _plain(value: str) -> str:
    """``value`` as YAML, quoted only where a plain scalar would not read back as this string."""
    # Go's YAML (kustomize) drops underscores before reading a number: 1e3_ is 1000 there.
    ambiguous = _NOT_A_STRING.fullmatch(value) or _NOT_A_STRING.fullmatch(value.replace("_", ""))
    return f'"{value}"' if ambiguous else value
