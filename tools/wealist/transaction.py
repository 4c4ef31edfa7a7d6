"""Safe to interrupt: one promotion at a time per clone, and a journal that heals a killed run.

The lock is an ``flock`` on ``.git/wealist/lock``: the kernel drops it when its holder dies, so a
killed run can never leave a lock that blocks the next one. The journal records, before the work
tree is touched, what the overlay held and which commit HEAD was; the next run (under the lock, so
the writer is certainly gone) either confirms the commit landed or puts the file back.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from .errors import RefusedError
from .files import write_if_changed
from .gitrepo import GitRepo

LOCK_WAIT_SECONDS = 60.0
SCRATCH = "tmp"  # .git/wealist/tmp: worktrees of interrupted pull-request deliveries are cleared


@dataclass(frozen=True)
class Journal:
    head: str  # HEAD before the promotion commit
    path: str  # the overlay file, relative to the root
    original: str  # its content at HEAD
    started: float


class RepoLock:
    """Serialise mutating runs in one clone; waits up to ``timeout`` seconds for another run."""

    def __init__(self, repo: GitRepo, timeout: float = LOCK_WAIT_SECONDS) -> None:
        self._repo = repo
        self._timeout = timeout
        self._fd: int | None = None
        self.recovered: str | None = None

    def __enter__(self) -> RepoLock:
        self._repo.state_dir().mkdir(exist_ok=True)
        path = self._repo.state_dir() / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    os.close(fd)
                    raise RefusedError(
                        f"another wealist run (pid {holder}) is changing this clone; "
                        f"waited {self._timeout:.0f}s, try again when it is done"
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        self.recovered = recover(self._repo)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _journal_path(repo: GitRepo) -> Path:
    return repo.state_dir() / "journal.json"


def scratch_dir(repo: GitRepo) -> Path:
    """Where scratch trees live; emptied by every run that takes the lock."""
    path = repo.state_dir() / SCRATCH
    path.mkdir(parents=True, exist_ok=True)
    return path


def begin(repo: GitRepo, head: str, path: str, original: str) -> None:
    """Record, before the work tree changes, what to restore if the run dies."""
    repo.state_dir().mkdir(exist_ok=True)
    text = json.dumps(asdict(Journal(head, path, original, time.time())))
    write_if_changed(_journal_path(repo), text)


def finish(repo: GitRepo) -> None:
    """The commit is complete: nothing to heal."""
    _journal_path(repo).unlink(missing_ok=True)


def recover(repo: GitRepo) -> str | None:
    """Heal what a killed run left; returns a sentence for the user when there was something."""
    shutil.rmtree(repo.state_dir() / SCRATCH, ignore_errors=True)
    if (repo.git_dir / "worktrees").is_dir():  # a pull-request delivery was interrupted
        repo.prune_worktrees()
    journal_file = _journal_path(repo)
    try:
        journal = Journal(**json.loads(journal_file.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        # The journal is written by rename, so a torn one means a foreign file: ignore it.
        journal_file.unlink()
        return None

    target = repo.root / journal.path
    for leftover in target.parent.glob(f".{target.name}.*.tmp"):
        leftover.unlink(missing_ok=True)
    _clear_git_locks(repo, journal.started)
    if repo.head() != journal.head:
        # The commit landed (git moves the branch only once the commit is complete). Make the index
        # agree with it in case the run died before git wrote the index back.
        repo.unstage(journal.path)
        message = "an interrupted promotion had completed its commit; cleaned up after it"
    else:
        write_if_changed(target, journal.original)
        repo.unstage(journal.path)
        message = f"an interrupted promotion was rolled back; {journal.path} is as it was"
    finish(repo)
    return message


def _clear_git_locks(repo: GitRepo, since: float) -> None:
    """Remove the lock files the interrupted run's `git commit` left behind: the index, HEAD, the
    branch, and the temporary index that `git commit -- <path>` builds (next-index-<pid>.lock).

    A git child can outlive its killed parent for a moment, so wait for it briefly; a lock older
    than the journal belongs to somebody else and is left alone.
    """
    branch = repo.branch()
    candidates = [
        repo.git_dir / "index.lock",
        repo.git_dir / "HEAD.lock",
        *repo.git_dir.glob("next-index-*.lock"),
    ]
    if branch:
        candidates.append(repo.git_dir / "refs" / "heads" / f"{branch}.lock")
    deadline = time.monotonic() + 2.0
    while any(lock.exists() for lock in candidates) and time.monotonic() < deadline:
        time.sleep(0.05)
    for lock in candidates:
        try:
            if lock.stat().st_mtime >= since - 1:
                lock.unlink()
        except FileNotFoundError:
            pass
