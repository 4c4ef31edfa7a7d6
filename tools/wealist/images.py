"""Image references as the overlays hold them: a tag, optionally pinned to a digest."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UsageError

# The OCI distribution spec's tag grammar; a digest is sha256 with 64 lowercase hex digits.
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True, order=True)
class ImageRef:
    """A tag, optionally pinned to a digest."""

    tag: str
    digest: str | None = None

    def __str__(self) -> str:
        return f"{self.tag}@{self.digest}" if self.digest else self.tag

    def short(self) -> str:
        """For subjects and tables: the tag, with a shortened digest when pinned."""
        return f"{self.tag}@{self.digest[:19]}…" if self.digest else self.tag


def show(ref: ImageRef | None) -> str:
    """For tables and subjects: the short form, or "(unset)" for an entry without a tag."""
    return ref.short() if ref else "(unset)"


def parse_ref(value: str) -> ImageRef:
    """Parse ``TAG`` or ``TAG@sha256:<64 hex>``; a malformed value is a usage error (exit 2)."""
    tag, sep, digest = value.partition("@")
    if not TAG_RE.fullmatch(tag):
        shown = value if len(value) <= 40 else value[:37] + "..."
        raise UsageError(
            f"malformed tag {shown!r}: a tag is 1-128 characters of [A-Za-z0-9_.-], not starting with . or -"
        )
    if sep and not DIGEST_RE.fullmatch(digest):
        raise UsageError(f"malformed digest {digest!r}: expected sha256: and 64 lowercase hex digits")
    return ImageRef(tag=tag, digest=digest or None)


def malformed(ref: ImageRef) -> str | None:
    """Why ``ref`` breaks the tag and digest grammar (the one --tag enforces), or None."""
    if not TAG_RE.fullmatch(ref.tag):
        return f"tag {ref.tag[:40]!r} is not 1-128 characters of [A-Za-z0-9_.-] starting with [A-Za-z0-9_]"
    if ref.digest is not None and not DIGEST_RE.fullmatch(ref.digest):
        return f"digest {ref.digest[:80]!r} is not sha256: and 64 lowercase hex digits"
    return None


def join_reference(name: str, ref: ImageRef | None) -> str:
    """``name:tag[@digest]`` as a pod spec names the image (``split_reference`` reads it back)."""
    return f"{name}:{ref}" if ref else name


def split_reference(reference: str) -> tuple[str, ImageRef | None]:
    """``registry:5000/name:tag@digest`` -> (name, ref); a reference without a tag -> (name, None)."""
    name, _, digest = reference.partition("@")
    head, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:  # no tag; the colon belonged to a registry port
        return name, None
    return head, ImageRef(tag=tag, digest=digest or None)
