"""Safe to interrupt: one promotion at a time per clone, and a journal that heals a killed run.

The lock is an ``flock`` on ``.git/wealist/lock``: the kernel drops it when its holder dies, so a
killed run can never leave a lock that blocks the next one. The journal records, before the work
tree is touched, what the overlay held, what the run writes into it and which commit HEAD was.
A run that fails but survives (a hook refused the commit, Ctrl-C) puts the file back itself; the
next run (under the lock, so the writer is certainly gone) heals what a killed one left.

Putting back never overwrites somebody's work: the file is restored only while it still holds the
run's own new text. Anything else means the user edited it since, and recovery refuses and explains.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from .errors import GitError, RefusedError
from .files import write_if_changed
from .gitrepo import GitRepo

LOCK_WAIT_SECONDS = 60.0
SCRATCH = "tmp"  # .git/wealist/tmp: worktrees of interrupted pull-request deliveries are cleared


@dataclass(frozen=True)
class Journal:
    head: str  # HEAD before the run's commit
    path: str  # the one file it changes (an overlay, a freeze record), relative to the root
    original: str | None  # its content at HEAD; None: it does not exist there (a new freeze)
    new: str | None  # what the run writes into it; None: the run removes it (an unfreeze)
    started: float
    what: str = "promotion"  # for the user: what was interrupted


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
        try:
            self.recovered = recover(self._repo)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM (they are delivered when the block ends) while the work tree is put
    back, so an interrupt cannot leave it half restored."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _journal_path(repo: GitRepo) -> Path:
    return repo.state_dir() / "journal.json"


def scratch_dir(repo: GitRepo) -> Path:
    """Where scratch trees live; emptied by every run that takes the lock."""
    path = repo.state_dir() / SCRATCH
    path.mkdir(parents=True, exist_ok=True)
    return path


def begin(
    repo: GitRepo, head: str, path: str, original: str | None, new: str | None, what: str = "promotion"
) -> Journal:
    """Record, before the work tree changes, what to restore if the run dies."""
    repo.state_dir().mkdir(exist_ok=True)
    journal = Journal(head, path, original, new, time.time(), what)
    write_if_changed(_journal_path(repo), json.dumps(asdict(journal)))
    return journal


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
    message = put_back(repo, journal)
    finish(repo)
    return message


def put_back(repo: GitRepo, journal: Journal) -> str:
    """Undo what the run did to the work tree and index, touching nothing it did not write.

    Raises RefusedError (keeping the journal) when the file holds neither the original nor the
    run's text: those are the user's edits."""
    target = repo.root / journal.path
    what = journal.what
    if repo.head() != journal.head:
        # git moves the branch only once a commit is complete: either the run's commit landed, or
        # the user committed since. In both cases the work tree is theirs now.
        if repo.show("HEAD", journal.path) == journal.new:
            _unstage_own(repo, journal)
            return f"an interrupted {what} had completed its commit; cleaned up after it"
        return f"an interrupted {what}'s journal was older than HEAD; {journal.path} was left alone"
    try:
        current: str | None = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = None
    except UnicodeDecodeError:
        current = ""  # certainly not what either side wrote
    if current not in (journal.new, journal.original):
        raise RefusedError(
            f"{journal.path} was changed after an interrupted {what} wrote it, so wealist left it "
            f"alone: look at it (git diff -- {journal.path}), then commit or discard it and run again"
        )
    if journal.original is None:
        target.unlink(missing_ok=True)
    else:
        write_if_changed(target, journal.original)
    _unstage_own(repo, journal)
    return f"an interrupted {what} was rolled back; {journal.path} is as it was"


def _unstage_own(repo: GitRepo, journal: Journal) -> None:
    """Make the index entry match HEAD again when it holds what the run left there: its own text
    (staged before git died), or the original one (a `git commit` killed after moving the branch
    but before replacing the index). Anything else staged there is the user's."""
    staged = repo.index_blob(journal.path)
    ours = {repo.blob_id(text, journal.path) for text in (journal.new, journal.original) if text is not None}
    if staged in ours and staged != repo.blob_at("HEAD", journal.path):
        repo.unstage(journal.path)


def put_back_after_failure(repo: GitRepo, journal: Journal) -> None:
    """Restore the file after a failure this process survived; if even that is impossible, the
    journal stays and the next run finishes the job (the first failure is what the user must read)."""
    # Ctrl-C reaches git and this process at once: hold further interrupts until the file is back.
    with signals_held():
        repo.restart_readers()  # the interrupt may have killed git's reader process too
        try:
            put_back(repo, journal)
        except (GitError, RefusedError, OSError):
            return
        finish(repo)


def _clear_git_locks(repo: GitRepo, since: float) -> None:
    """Remove the lock files the interrupted run's `git commit` left behind: the index, HEAD, the
    branch, and the temporary index that `git commit -- <path>` builds (next-index-<pid>.lock).

    A lock is removed only when no git process is running in this clone: git records no owner in
    its lock files, and a live one's lock (a concurrent `git add`) must never be taken away. A git
    child can outlive its killed parent for a moment, so wait for it briefly; a lock older than the
    journal belongs to somebody else and is left alone.
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
    stale = [lock for lock in candidates if _mtime(lock) >= since - 1]
    if not stale:
        return
    running = git_processes(repo)
    if running:
        pid, command = running[0]
        raise RefusedError(
            f"{stale[0].name} exists and a git process is running in this clone (pid {pid}: "
            f"{command}): wait for it to finish, then run again"
        )
    for lock in stale:
        lock.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("-inf")


def git_processes(repo: GitRepo) -> list[tuple[int, str]]:
    """Live git processes working in this clone, other than our own children (the wrapper keeps a
    `git cat-file` open). Read from /proc; where there is none, assume one may run (never guess
    that a lock is free)."""
    proc = Path("/proc")
    if not (proc / "self").exists():
        return [(0, "unknown: this system has no /proc to check")]
    me = os.getpid()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if not argv or Path(argv[0].decode(errors="replace")).name != "git":
                continue
            if _parent(entry) == me:
                continue
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if cwd == repo.root or repo.root in cwd.parents or cwd == repo.git_dir:
            found.append((int(entry.name), " ".join(a.decode(errors="replace") for a in argv if a)))
    return found


def _parent(entry: Path) -> int:
    # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after its ")".
    return int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
