"""A materialised copy of a commit's tree for rendering, kept under .git/wealist/render and updated
incrementally: between two promotions usually only one file differs, so one file is written instead
of the whole tree being extracted again (which cost more than kustomize itself).

Only used under the repository lock. A marker file names the tree the copy holds; it is removed
before the copy changes and written back (by rename) only once the copy matches, so a run killed
half-way leaves no marker and the next one rebuilds.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from .files import write_if_changed
from .gitrepo import GitRepo


class TreeCopy:
    """The scratch copy of a commit's tree that promotions render."""

    def __init__(self, repo: GitRepo) -> None:
        self._repo = repo
        self.root = repo.state_dir() / "render"
        self._marker = repo.state_dir() / "render.tree"

    def checkout(self, tree: str) -> Path:
        """Make the copy hold ``tree`` (and nothing else); returns its root."""
        try:
            current = self._marker.read_text().strip()
        except FileNotFoundError:
            current = None
        if current == tree and self.root.is_dir():
            return self.root
        self._marker.unlink(missing_ok=True)
        if current is None or not self.root.is_dir() or not self._update(current, tree):
            shutil.rmtree(self.root, ignore_errors=True)
            self._repo.archive(tree, self.root)
        write_if_changed(self._marker, tree + "\n")
        return self.root

    def edit(self, path: str, text: str) -> None:
        """Change one file of the copy; the marker goes until ``restore`` puts the original back."""
        self._marker.unlink(missing_ok=True)
        write_if_changed(self.root / path, text)

    def restore(self, tree: str, path: str, original: str) -> None:
        """Put ``path`` back to ``original``: the copy holds ``tree`` again."""
        write_if_changed(self.root / path, original)
        write_if_changed(self._marker, tree + "\n")

    def _update(self, old: str, new: str) -> bool:
        changes = self._repo.tree_changes(old, new)
        if changes is None:
            return False  # the old tree is gone (gc): rebuild
        changed = []
        try:
            for status, path in changes:
                if status == "D":
                    (self.root / path).unlink(missing_ok=True)
                else:
                    changed.append(path)
            if changed:
                self._repo.archive(new, self.root, changed)
        except (OSError, tarfile.TarError):
            return False  # e.g. a directory became a link: rebuild
        return True
