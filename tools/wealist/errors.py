"""The tool's exceptions: one base, one exit code per kind of failure.

Plain exceptions, so the core does not depend on the command line: the CLI prints each as one
``Error: <message>`` line on stderr and exits with its ``exit_code``.
"""

from __future__ import annotations


class WealistError(Exception):
    """The operation failed or was refused (exit 1)."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def format_message(self) -> str:
        from .masking import mask

        # One line, whatever a wrapped tool said: scripts and people read the first line.
        return mask(" ".join(self.message.split("\n")))


class UsageError(WealistError):
    """Bad usage: unknown environment or component, malformed tag, conflicting options (exit 2)."""

    exit_code = 2


class ConfigError(WealistError):
    """promotion.yaml or an overlay is missing or malformed."""


class RefusedError(WealistError):
    """The repository is not in a state where the operation is safe (dirty, order guard, ...)."""


class RenderError(WealistError):
    """kustomize failed, or is not installed."""


class GitError(WealistError):
    """A git command failed."""


class PushRejected(GitError):
    """The remote branch moved since it was fetched (a compare-and-swap lost); a refusal by the
    server itself is a plain GitError carrying its reason."""


class ForgeError(WealistError):
    """The git forge's API refused or did not answer."""


class ValidationFailed(WealistError):
    """wealist validate found problems (the report has been printed)."""


class RehearsalFailed(WealistError):
    """wealist rehearse found an environment that would not start (the report has been printed)."""
