"""Freezes: "no changes to prod during the holiday", "emergency stop". A freeze is a file in the
repository (``freezes/<env>.yaml``), added and removed by commits, so it is reviewed, audited and
rolled out like any change: who froze is the commit's author, why and until when are in the file.

While an environment is frozen its promotions are refused (``--force -m REASON`` overrides, and the
commit records it); rollbacks stay allowed, they are the emergency path. A freeze past its ``until``
is reported and ignored.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, RefusedError, UsageError
from .gitrepo import GitRepo

FREEZES = "freezes"


@dataclass(frozen=True)
class Freeze:
    """A freeze record, with who wrote it (the author of the commit that last changed it)."""

    env: str
    reason: str
    until: datetime.datetime | None
    author: str
    since: str  # that commit's date

    def expired(self, now: datetime.datetime) -> bool:
        return self.until is not None and now >= self.until

    def describe(self) -> str:
        until = f" until {self.until.isoformat()}" if self.until else " until unfrozen"
        return f"{self.env} is frozen by {self.author} since {self.since[:16]}{until}: {self.reason}"


def path_of(env: str) -> str:
    return f"{FREEZES}/{env}.yaml"


def read_freeze(repo: GitRepo, env: str, rev: str = "HEAD") -> Freeze | None:
    """The freeze of ``env`` at ``rev``, or None; a malformed record is a ConfigError."""
    text = repo.show(rev, path_of(env))
    if text is None:
        return None
    reason, until = parse_record(text, path_of(env))
    log = repo.log("-1", rev, "--", path_of(env))
    author, since = (log[0].author, log[0].date) if log else ("?", "?")
    return Freeze(env, reason, until, author, since)


def parse_record(text: str, source: str) -> tuple[str, datetime.datetime | None]:
    """(reason, until) of a freeze record."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    from .yamlerrors import too_deep

    deep = too_deep(text)
    if deep:
        raise ConfigError(f"{source} {deep}: wealist freeze writes it, fix or remove it")
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError:
        raise ConfigError(f"{source} is not valid YAML: wealist freeze writes it, fix or remove it") from None
    if not isinstance(data, dict) or not isinstance(data.get("reason"), str) or not data["reason"].strip():
        raise ConfigError(f"{source} must hold reason: (and optionally until:)")
    until = data.get("until")
    return data["reason"].strip(), None if until is None else parse_time(str(until), source)


def parse_time(text: str, what: str) -> datetime.datetime:
    """An ISO 8601 time (a date alone means its midnight, UTC), timezone-aware."""
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not an ISO 8601 time (e.g. 2026-12-27T09:00:00Z)") from None
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def freeze(root: Path, env_name: str, reason: str, until: str | None, push: bool) -> str:
    """Commit a freeze of ``env_name`` (and push it); returns the commit."""
    from .config import load_config

    repo = GitRepo(root)
    env = load_config(repo.root).env(env_name).name
    if not reason.strip():
        raise UsageError("--reason must say why")
    when = parse_time(until, "--until") if until else None
    if when is not None and when <= datetime.datetime.now(datetime.UTC):
        raise UsageError(f"--until {until} is in the past")
    lines = [
        f"# Written by `wealist freeze`; `wealist unfreeze --env {env}` removes it.",
        f"reason: {_quoted(reason)}",
    ]
    if when is not None:
        lines.append(f"until: {when.isoformat()}")
    subject = f"freeze({env}): {reason.strip().splitlines()[0]}"
    return _commit(repo, path_of(env), "\n".join(lines) + "\n", subject, push)


def unfreeze(root: Path, env_name: str, push: bool) -> str:
    """Commit the removal of ``env_name``'s freeze (and push it); returns the commit."""
    from .config import load_config

    repo = GitRepo(root)
    env = load_config(repo.root).env(env_name).name
    if repo.show("HEAD", path_of(env)) is None:
        raise RefusedError(f"{env} is not frozen")
    return _commit(repo, path_of(env), None, f"unfreeze({env})", push)


def _quoted(text: str) -> str:
    return '"' + text.strip().replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _commit(repo: GitRepo, path: str, text: str | None, subject: str, push: bool) -> str:
    """Write (or remove) the record and commit exactly it, under the repository lock and the same
    journal as a promotion: a failure this process survives puts the file back at once, and a
    killed run is healed by the next one (no stray record is left behind either way)."""
    from . import transaction
    from .files import write_if_changed

    with transaction.RepoLock(repo):
        if repo.staged():
            raise RefusedError("staged changes exist: commit or unstage them first")
        target = repo.root / path
        before = repo.show("HEAD", path)
        if repo.modified(path) or (before is None and target.exists()):
            raise RefusedError(f"{path} has uncommitted changes: commit or discard them first")
        what = "unfreeze" if text is None else "freeze"  # for the message of a healed interruption
        journal = transaction.begin(repo, repo.head(), path, before, text, what)
        try:
            if text is None:
                target.unlink()
            else:
                target.parent.mkdir(exist_ok=True)
                write_if_changed(target, text)
                if before is None:
                    repo.add(path)  # `git commit -- PATH` commits only files git already knows
            commit = repo.commit(f"{subject}\n\nWealist-Freeze: {path}\n", [path])
        except BaseException:
            transaction.put_back_after_failure(repo, journal)
            raise
        transaction.finish(repo)
        if push:
            remote, branch = repo.push_target()
            repo.push(remote, "HEAD", branch)
        return commit
