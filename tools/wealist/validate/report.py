"""The report: every finding of one run, for people and for CI (always valid JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One problem: which check, which object, what is wrong, in which environment."""

    check: str
    subject: str
    message: str
    env: str | None = None

    def __str__(self) -> str:
        where = f"[{self.env}] " if self.env else ""
        return f"{where}{self.check}: {self.subject}: {self.message}"


@dataclass
class Report:
    """Every finding of a run, the objects checked, what was skipped."""

    findings: list[Finding] = field(default_factory=list)
    objects: dict[str, int] = field(default_factory=dict)  # env -> rendered objects checked
    argocd_documents: int = 0
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, check: str, subject: str, message: str, env: str | None = None) -> None:
        self.findings.append(Finding(check, subject, message, env))

    def extend(self, other: Report) -> None:
        """Add ``other``'s findings and skips after this report's own."""
        self.findings += other.findings
        self.skipped += other.skipped

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "objects": self.objects,
            "argocd_documents": self.argocd_documents,
            "skipped": self.skipped,
            "findings": [
                {"env": f.env, "check": f.check, "subject": f.subject, "message": f.message}
                for f in self.findings
            ],
        }
