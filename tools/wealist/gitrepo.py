"""The one git wrapper: a thin class over GitPython that speaks in our errors.

Everything runs the real git binary, so the user's configuration, hooks, signing and identity apply
exactly as they do on the command line. Commands go through GitPython; reads do not need it (see
GitRepo), so the commands that only read never pay for its import.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import tarfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, GitError, PushRejected, RefusedError

if TYPE_CHECKING:
    from git import Repo

_FULL_SHA = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class LogEntry:
    """One commit as ``git log`` describes it, trailers parsed."""

    sha: str
    author: str
    date: str  # ISO 8601, author date
    subject: str
    trailers: tuple[tuple[str, str], ...]
    paths: tuple[str, ...] = ()  # the files it changed, when asked for


class GitRepo:
    """The repository the tool works on; every git operation is a method here.

    Commands run through GitPython, which turns their failures into our errors. GitPython costs
    about 55 ms to import here (two `git version` runs included), so it is loaded on first use, and
    reads do not need it: the repository is found without git, objects come from one persistent
    `git cat-file --batch` of our own, and the bulk reads (log, archive, tree diffs) run git
    directly. A promotion therefore reads and starts its render before GitPython loads (it loads
    while kustomize runs), and a read-only command such as history never loads it."""

    def __init__(self, path: Path) -> None:
        found = find_work_tree(path)
        if found is None:
            raise RefusedError(f"{path} is not inside a git repository")
        self.root, self.git_dir = found
        # Reads never take git's optional locks (`git status` refreshes the index under index.lock
        # otherwise): a run killed while it only reads leaves no lock that no journal accounts for.
        self._env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
        self._gitpython: Repo | None = None
        self._objects = _ObjectReader(self.root, self._env)

    @property
    def _repo(self) -> Repo:
        if self._gitpython is None:
            from git import Repo

            self._gitpython = Repo(self.root)
            self._gitpython.git.update_environment(GIT_OPTIONAL_LOCKS="0")
        return self._gitpython

    def _run(self, *args: str, strip: bool = True) -> str:
        """Run ``git ARGS`` in the work tree; a failure becomes GitError with git's own message."""
        from git import GitCommandError

        try:
            out = self._repo.git.execute(["git", *args], strip_newline_in_stdout=strip)
        except GitCommandError as exc:
            raise GitError(f"git {args[0]} failed: {_git_message(exc)}") from exc
        return str(out)

    def _read(self, *args: str, stdin: bytes = b"") -> bytes:
        """A read-only git command run directly (no GitPython): its stdout, or GitError."""
        proc = subprocess.run(
            ["git", *args], cwd=self.root, input=stdin, capture_output=True, check=False, env=self._env
        )
        if proc.returncode != 0:
            raise GitError(f"git {args[0]} failed: {_git_message(proc)}")
        return proc.stdout

    # -- reading -------------------------------------------------------------------------------

    def restart_readers(self) -> None:
        """Drop the persistent `git cat-file` processes (new ones start on the next read): after a
        Ctrl-C, which the terminal sends to them too, they are gone and reads would hit a dead pipe."""
        self._objects.close()
        if self._gitpython is not None:
            self._gitpython.git.clear_cache()

    def head(self) -> str:
        found = self._objects.read("HEAD")
        if found is None or found[1] != "commit":
            raise RefusedError(f"{self.root} has no commits yet")
        return found[0]

    def rev(self, rev: str) -> str:
        """The commit ``rev`` names (any revision git understands); GitError naming it otherwise."""
        try:
            return self._run("rev-parse", "--verify", "-q", f"{rev}^{{commit}}")
        except GitError:
            raise GitError(f"{rev!r} names no commit here") from None

    def tree(self, rev: str) -> str:
        found = self._objects.read(f"{rev}^{{tree}}")
        if found is None:
            raise GitError(f"{rev!r} names no commit here")
        return found[0]

    def branch(self) -> str | None:
        """The checked-out branch, or None on a detached HEAD."""
        try:
            return self._repo.active_branch.name
        except (TypeError, ValueError):
            return None

    def show(self, rev: str, path: str) -> str | None:
        """The content of ``path`` at ``rev``, or None when it does not exist there: one round trip
        to the persistent `git cat-file --batch`, which resolves ``rev:path`` itself."""
        found = self._objects.read(f"{rev}:{path}")
        return _text(found[2], rev, path) if found is not None and found[1] == "blob" else None

    def show_many(self, specs: list[tuple[str, str]]) -> list[str | None]:
        """``show`` for many (rev, path) pairs in one `git cat-file --batch` run: a long history is
        read in one pass instead of one round trip per file."""
        if not specs:
            return []
        request = "".join(f"{rev}:{path}\n" for rev, path in specs).encode()
        out, position = self._read("cat-file", "--batch", stdin=request), 0
        results: list[str | None] = []
        for spec in specs:
            end = out.index(b"\n", position) + 1
            header = _batch_header(out[position:end])
            position = end
            if header is None:
                results.append(None)
                continue
            data = out[position : position + header[2]]
            position += header[2] + 1
            results.append(_text(data, *spec) if header[1] == "blob" else None)
        return results

    def parents(self, rev: str) -> list[str]:
        found = self._objects.read(f"{rev}^{{commit}}")
        if found is None:
            raise GitError(f"{rev!r} names no commit here")
        headers = found[2].split(b"\n\n", 1)[0].decode()
        return [line.split()[1] for line in headers.splitlines() if line.startswith("parent ")]

    def blob_at(self, rev: str, path: str) -> str | None:
        """The blob id of ``path`` in ``rev``'s tree, or None."""
        found = self._objects.read(f"{rev}:{path}")
        return found[0] if found is not None else None

    def staged(self) -> list[str]:
        return (
            self._run("diff", "--cached", "--name-only", "-z").split("\0")[:-1] if self._has_staged() else []
        )

    def _has_staged(self) -> bool:
        from git import GitCommandError

        try:
            self._repo.git.execute(["git", "diff", "--cached", "--quiet"])
        except GitCommandError as exc:
            if exc.status == 1:
                return True
            raise GitError(f"git diff failed: {_git_message(exc)}") from exc
        return False

    def modified(self, path: str) -> bool:
        """Whether ``path`` differs from HEAD in the index or the work tree."""
        return bool(self._run("status", "--porcelain", "--untracked-files=no", "--", path))

    def index_blob(self, path: str) -> str | None:
        """The blob id staged for ``path``, or None when the index has no entry for it."""
        out = self._run("ls-files", "-s", "--", path)
        return out.split()[1] if out else None

    def blob_id(self, text: str, path: str) -> str:
        """The blob id git would store for ``text`` written at ``path`` (its filters applied)."""
        out = self._read("hash-object", "--stdin", f"--path={path}", stdin=text.encode("utf-8"))
        return out.decode().strip()

    def index_flags(self, path: str) -> str:
        """``git ls-files -v`` tag of ``path``: S for skip-worktree (sparse checkout), a lower-case
        letter for assume-unchanged; empty when untracked."""
        out = self._run("ls-files", "-v", "--", path)
        return out[:1]

    def operation_in_progress(self) -> str | None:
        """The unfinished operation this checkout is in the middle of (a commit here would be
        swept away by its --abort), or None."""
        markers = {
            "rebase-merge": "a rebase",
            "rebase-apply": "a rebase or git am",
            "MERGE_HEAD": "a merge",
            "CHERRY_PICK_HEAD": "a cherry-pick",
            "REVERT_HEAD": "a revert",
            "BISECT_LOG": "a bisect",
        }
        for marker, name in markers.items():
            if (self.git_dir / marker).exists():
                return name
        return None

    def hooks(self, *names: str) -> list[str]:
        """Which of the hooks ``names`` git would run here (core.hooksPath honoured), as paths."""
        hooks_dir = Path(self._run("rev-parse", "--git-path", "hooks"))
        if not hooks_dir.is_absolute():
            hooks_dir = self.root / hooks_dir
        return [
            str(hooks_dir / name)
            for name in names
            if (hooks_dir / name).is_file() and os.access(hooks_dir / name, os.X_OK)
        ]

    def identity(self) -> str:
        try:
            return self._run("var", "GIT_COMMITTER_IDENT")
        except GitError:
            raise RefusedError(
                "no git identity: set it with git config user.name and git config user.email"
            ) from None

    def archive(self, rev: str, dest: Path, paths: list[str] | None = None) -> None:
        """Materialise the tree of ``rev`` (or only ``paths`` of it) in ``dest``: no .git, nothing
        from the work tree."""
        data = self._read("archive", "--format=tar", rev, *(["--", *paths] if paths else []))
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(dest, filter=_as_git_stores)

    def log(self, *args: str, with_paths: bool = False) -> list[LogEntry]:
        """Commits as LogEntry (``args`` select them, e.g. a grep or a range); ``with_paths`` also
        lists the files each commit changed (of those ``args`` limit to)."""
        # The separator comes first: with --name-only, git prints a commit's files after its record.
        fmt = "%x1e%H%x1f%an%x1f%aI%x1f%s%x1f%(trailers:only,unfold)%x1f"
        extra = ["--name-only"] if with_paths else []
        out = self._read("log", f"--format={fmt}", *extra, *args).decode("utf-8", errors="replace")
        entries = []
        for record in out.split("\x1e")[1:]:
            fields = record.split("\x1f")
            if len(fields) != 6:
                continue
            sha, author, date, subject, raw, names = fields
            trailers = tuple(
                (key.strip(), value.strip())
                for key, _, value in (line.partition(":") for line in raw.splitlines() if ":" in line)
            )
            paths = tuple(line for line in names.splitlines() if line)
            entries.append(LogEntry(sha, author, date, subject, trailers, paths))
        return entries

    def commits_touching(self, revision_range: str, paths: list[str]) -> list[str]:
        """Commits in ``revision_range`` (e.g. ``HEAD`` or ``A..B``) that change any of ``paths``."""
        return self._run("log", "--format=%H", revision_range, "--", *paths).split()

    def changed_paths(self, base: str, head: str = "HEAD") -> list[str]:
        """Files that differ between the merge base of ``base`` and ``head``, and ``head``."""
        return self._run("diff", "--name-only", f"{base}...{head}").splitlines()

    def tree_changes(self, old: str, new: str) -> list[tuple[str, str]] | None:
        """(status, path) of every file that differs between two trees; None if ``old`` is gone."""
        try:
            out = self._read("diff-tree", "-r", "-z", "--no-renames", "--name-status", old, new).decode()
        except GitError:
            return None
        fields = out.split("\0")
        return [(status, path) for status, path in zip(fields[0::2], fields[1::2], strict=False) if path]

    def remote_heads(self, remote: str, pattern: str) -> dict[str, str]:
        """Branch name -> commit on ``remote``, for branches matching ``pattern``."""
        heads = {}
        for line in self._run("ls-remote", "--heads", remote, pattern).splitlines():
            sha, _, ref = line.partition("\t")
            heads[ref.removeprefix("refs/heads/")] = sha
        return heads

    def local_branch(self, name: str) -> str | None:
        """The commit of local branch ``name``, or None."""
        return self._run("for-each-ref", "--format=%(objectname)", f"refs/heads/{name}") or None

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether ``descendant`` contains ``ancestor``; False when either is unknown here."""
        from git import GitCommandError

        if not (self.has_commit(ancestor) and self.has_commit(descendant)):
            return False
        try:
            self._repo.git.execute(["git", "merge-base", "--is-ancestor", ancestor, descendant])
        except GitCommandError as exc:
            if exc.status == 1:
                return False
            raise GitError(f"git merge-base failed: {_git_message(exc)}") from exc
        return True

    def has_commit(self, sha: str) -> bool:
        return self._objects.read(f"{sha}^{{commit}}") is not None

    def upstream(self) -> tuple[str, str] | None:
        """(remote, branch) the current branch tracks, or None."""
        try:
            ref = self._run("rev-parse", "--symbolic-full-name", "@{upstream}")
        except GitError:
            return None
        # refs/remotes/<remote>/<branch>: the remote's name cannot hold a slash in our setups
        parts = ref.split("/", 3)
        return (parts[2], parts[3]) if len(parts) == 4 and parts[1] == "remotes" else None

    def push_target(self) -> tuple[str, str]:
        """(remote, branch) that publishing from here goes to: the current branch's upstream."""
        branch = self.branch()
        if branch is None:
            raise RefusedError("HEAD is detached: check out the branch that environments are promoted on")
        upstream = self.upstream()
        if upstream is None:
            raise RefusedError(
                f"branch {branch} tracks no remote branch: set one with git branch -u origin/{branch}"
            )
        return upstream

    def count(self, revision_range: str) -> int:
        return int(self._run("rev-list", "--count", revision_range))

    def state_dir(self) -> Path:
        """``.git/wealist``: the lock, the interruption journal, scratch trees, the render cache.
        Only a path: whoever writes there creates it (the lock does, first), so reading creates
        nothing."""
        return self.git_dir / "wealist"

    # -- writing -------------------------------------------------------------------------------

    def set_branch(self, name: str, commit: str) -> None:
        """Create or move local branch ``name`` to ``commit`` (never the checked-out one)."""
        self._run("branch", "-f", name, commit)

    def move_head_keeping_changes(self, rev: str) -> None:
        """``git reset --keep``: move the current branch to ``rev``, keeping uncommitted work (git
        refuses if that work would be lost)."""
        self._run("reset", "-q", "--keep", rev)

    def add(self, path: str) -> None:
        self._run("add", "--", path)

    def unstage(self, path: str) -> None:
        """Make the index entry of ``path`` match HEAD again."""
        self._run("reset", "-q", "--", path)

    def add_worktree(self, path: Path, commit: str) -> None:
        """A detached scratch worktree at ``commit``."""
        self._run("worktree", "add", "--detach", "-q", str(path), commit)

    def prune_worktrees(self) -> None:
        self._run("worktree", "prune")

    def commit(self, message: str, paths: list[str]) -> str:
        """Commit exactly ``paths`` (their work-tree content) with git itself; returns the new HEAD."""
        message_file = self.state_dir() / "COMMIT_MSG"
        message_file.parent.mkdir(exist_ok=True)
        message_file.write_text(message, encoding="utf-8")
        try:
            self._run("commit", "-q", "--no-edit", "-F", str(message_file), "--", *paths)
        finally:
            message_file.unlink(missing_ok=True)
        return self.head()

    def undo_commit(self, commit: str, parent: str) -> None:
        """Take back ``commit`` (just made on the current branch, on ``parent``): the branch goes
        back only if it still points at it, and the index entries it changed follow."""
        self._run(
            "update-ref",
            "-m",
            "wealist: undo a commit that is not what was validated",
            "HEAD",
            parent,
            commit,
        )
        paths = [path for _, path in self.tree_changes(parent, commit) or []]
        if paths:
            self._run("reset", "-q", parent, "--", *paths)

    def remote_tip(self, remote: str, branch: str) -> str:
        """The commit ``remote``'s ``branch`` is at now, its objects fetched but no ref written
        (a dry run must plan on what the real run will fetch, and change nothing)."""
        heads = self.remote_heads(remote, f"refs/heads/{branch}")
        if branch not in heads:
            raise GitError(f"{remote} has no branch {branch}")
        if not self.has_commit(heads[branch]):
            # An empty --refmap stops git's opportunistic update of refs/remotes/REMOTE/BRANCH.
            self._run("fetch", "-q", "--no-write-fetch-head", "--refmap=", remote, f"refs/heads/{branch}")
        return heads[branch]

    def fetch(self, remote: str, branch: str) -> None:
        self._run("fetch", "-q", remote, f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}")

    def push(self, remote: str, src: str, branch: str, lease: str | None = None) -> None:
        """Push ``src`` to ``branch``; with ``lease``, only replace the branch if it is still at ``lease``."""
        from git import GitCommandError

        args = ["git", "push", "--porcelain", remote, f"{src}:refs/heads/{branch}"]
        if lease is not None:
            args.insert(2, f"--force-with-lease=refs/heads/{branch}:{lease}")
        try:
            self._repo.git.execute(args)
        except GitCommandError as exc:
            output = f"{exc.stdout}\n{exc.stderr}"
            # Only "[rejected] (fetch first | non-fast-forward | stale info)" means the branch moved;
            # "[remote rejected]" is the server saying no (a hook, a protected branch): no retry helps.
            if "rejected]" in output and any(why in output for why in _MOVED):
                raise PushRejected(f"push to {remote}/{branch} rejected: {_push_reason(output)}") from exc
            if "rejected]" in output:
                raise GitError(f"{remote} refused the push to {branch}: {_push_reason(output)}") from exc
            raise GitError(f"git push failed: {_git_message(exc)}") from exc


# "cannot lock ref ... is at X but expected Y": another push won the race inside the server.
_MOVED = ("(fetch first)", "(non-fast-forward)", "(stale info)", "cannot lock ref", "(failed to update ref)")


def _push_reason(output: str) -> str:
    """Why a push was refused: the status of the ref and what the remote's hooks said."""
    reasons = []
    for line in output.replace("\\n", "\n").splitlines():
        line = line.strip().removeprefix("stderr:").removeprefix("stdout:").strip().strip("'").strip()
        if line.startswith("!") and "[" in line:
            status = line.rsplit("\t", 1)[-1].strip()  # "[remote rejected] (pre-receive hook declined)"
            reasons.append(status.partition("] (")[2].removesuffix(")") or status)
        elif line.startswith("remote:") and line.removeprefix("remote:").strip():
            reasons.append(line.removeprefix("remote:").strip())
    return "; ".join(dict.fromkeys(reasons)) or "the remote refused it"


class _ObjectReader:
    """One persistent `git cat-file --batch` answering every object read of a command (a round trip
    on a pipe instead of a git process per read); started on the first read."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self._root, self._env = root, env
        self._proc: subprocess.Popen[bytes] | None = None

    def read(self, spec: str) -> tuple[str, str, bytes] | None:
        """(object id, type, content) of what ``spec`` names (any revision git understands, such
        as ``HEAD``, ``REV:PATH`` or ``REV^{tree}``), or None when it names nothing."""
        if "\n" in spec:
            return None
        if self._proc is None:
            self._proc = subprocess.Popen(
                ["git", "cat-file", "--batch"],
                cwd=self._root,
                env=self._env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            weakref.finalize(self, _stop, self._proc)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.write(spec.encode() + b"\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
            if not line:
                raise OSError("git cat-file ended")
            header = _batch_header(line)
            if header is None:
                return None
            data = self._proc.stdout.read(header[2] + 1)[:-1]  # the content, then a newline
        except (OSError, ValueError) as exc:
            self.close()
            raise GitError(f"git cat-file failed reading {spec}: {exc}") from None
        return header[0], header[1], data

    def close(self) -> None:
        if self._proc is not None:
            _stop(self._proc)
            self._proc = None


def _batch_header(line: bytes) -> tuple[str, str, int] | None:
    """`git cat-file --batch`'s header: (object id, type, size), or None for "<spec> missing" and
    "<spec> ambiguous" (split from the right: the spec may hold spaces)."""
    if line.rstrip(b"\n").endswith((b" missing", b" ambiguous")):
        return None
    sha, kind, size = line.split()
    return sha.decode(), kind.decode(), int(size)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End a cat-file reader: closing its input ends it; reap it so no zombie is left."""
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def find_work_tree(path: Path) -> tuple[Path, Path] | None:
    """(the work tree's top level, its git directory) for ``path``, found the way GitPython and
    git do (the nearest ``.git``, a directory or a worktree's ``gitdir:`` file), without running
    either; None outside a repository. A bare repository is refused: promotions need a work tree."""
    try:
        start = path.resolve()
    except OSError:
        return None
    if not start.is_dir():
        return None
    for candidate in [start, *start.parents]:
        dot_git = candidate / ".git"
        if dot_git.is_dir():
            return candidate, dot_git
        if dot_git.is_file():
            target = dot_git.read_text(encoding="utf-8", errors="replace").removeprefix("gitdir:").strip()
            return candidate, (candidate / target).resolve()
        if all((candidate / name).exists() for name in ("HEAD", "objects", "refs")):
            raise RefusedError(f"{path} is a bare repository: promote from a clone with a work tree")
    return None


def _git_message(exc: Exception | subprocess.CompletedProcess[bytes]) -> str:
    """git's last meaningful stderr line, without GitPython's framing."""
    stderr = getattr(exc, "stderr", "") or ""
    stderr = stderr.decode(errors="replace") if isinstance(stderr, bytes) else str(stderr)
    stderr = stderr.strip().removeprefix("stderr:").strip().strip("'").strip()
    lines = [
        line.strip()
        for line in stderr.splitlines()
        if line.strip() and not line.strip().startswith(("hint:", "To "))
    ]
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return line.split(":", 1)[1].strip()
    status = getattr(exc, "status", None) or getattr(exc, "returncode", "?")
    return lines[-1] if lines else f"exit status {status}"


def _as_git_stores(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """Files and directories as the "data" filter allows them; a symbolic link exactly as git
    stores it, absolute or pointing out of the tree (the "data" filter refuses those, and one such
    link anywhere would break every render). git never stores a path below a link, so nothing is
    written through one; kustomize itself refuses to load files outside a kustomization's root."""
    if member.issym():
        return member
    return tarfile.data_filter(member, dest)


def _text(data: bytes, rev: str, path: str) -> str:
    """A blob as text: every file the tool reads from git is YAML, hence UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = rev[:10] if _FULL_SHA.fullmatch(rev) else rev
        raise ConfigError(f"{path} at {where} is not UTF-8 text (byte {exc.start})") from None
