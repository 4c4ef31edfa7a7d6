"""What ran where, read back from git alone: promotion commits and their trailers, and the overlays."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Config, Environment
from .gitrepo import GitRepo, LogEntry
from .images import ImageRef, join_reference, show, split_reference
from .kustomization import ImageEntry, read_images

if TYPE_CHECKING:
    from .argocd import AppState
    from .registry import ImageState

ENV_TRAILER = "Wealist-Env"
IMAGE_TRAILER = "Wealist-Image"
PREVIOUS_TRAILER = "Wealist-Previous"
SOURCE_TRAILER = "Wealist-Source-Env"
FORCED_TRAILER = "Wealist-Forced"
ROLLBACK_TRAILER = "Wealist-Rollback-Of"
UNVERIFIED_TRAILER = "Wealist-Image-Unverified"


@dataclass(frozen=True)
class Promotion:
    """A promotion commit, read back from its trailers."""

    sha: str
    author: str
    date: str
    subject: str
    env: str
    images: dict[str, ImageRef]  # component -> new reference
    previous: dict[str, ImageRef | None]
    source_env: str | None = None
    forced: tuple[str, ...] = ()
    rollback_of: str | None = None
    image_verified: bool = True

    def as_json(self) -> dict[str, object]:
        return {
            "manual": False,
            "commit": self.sha,
            "author": self.author,
            "date": self.date,
            "env": self.env,
            "subject": self.subject,
            "images": {k: str(v) for k, v in self.images.items()},
            "previous": {k: (str(v) if v else None) for k, v in self.previous.items()},
            "source_env": self.source_env,
            "forced": list(self.forced),
            "rollback_of": self.rollback_of,
            "image_verified": self.image_verified,
        }


@dataclass(frozen=True)
class TrailerSet:
    """The trailers of one promotion commit, in a fixed order."""

    env: str
    images: dict[str, str]  # component -> full image reference
    previous: dict[str, str]
    source_env: str | None = None
    forced: tuple[str, ...] = ()
    rollback_of: str | None = None
    unverified: bool = False  # --no-verify-image: nobody asked the registry

    def render(self) -> str:
        return "\n".join(f"{key}: {value}" for key, value in self.pairs())

    def pairs(self) -> list[tuple[str, str]]:
        """(key, value) in the order they are written, as git reads them back."""
        lines = [f"{ENV_TRAILER}: {self.env}"]
        lines += [f"{IMAGE_TRAILER}: {comp}={ref}" for comp, ref in self.images.items()]
        lines += [f"{PREVIOUS_TRAILER}: {comp}={ref}" for comp, ref in self.previous.items()]
        if self.source_env:
            lines.append(f"{SOURCE_TRAILER}: {self.source_env}")
        lines += [f"{FORCED_TRAILER}: {reason}" for reason in self.forced]
        if self.rollback_of:
            lines.append(f"{ROLLBACK_TRAILER}: {self.rollback_of}")
        if self.unverified:
            lines.append(f"{UNVERIFIED_TRAILER}: yes")
        return [(key, value.strip()) for key, _, value in (line.partition(": ") for line in lines)]


def parse_promotion(entry: LogEntry) -> Promotion | None:
    """The promotion a commit records in its trailers, or None."""
    env = None
    images: dict[str, ImageRef] = {}
    previous: dict[str, ImageRef | None] = {}
    source = rollback = None
    forced = []
    verified = True
    for key, value in entry.trailers:
        if key == ENV_TRAILER:
            env = value
        elif key in (IMAGE_TRAILER, PREVIOUS_TRAILER):
            comp, _, reference = value.partition("=")
            ref = split_reference(reference)[1]
            if key == IMAGE_TRAILER and ref is not None:
                images[comp] = ref
            elif key == PREVIOUS_TRAILER:
                previous[comp] = ref
        elif key == SOURCE_TRAILER:
            source = value
        elif key == FORCED_TRAILER:
            forced.append(value)
        elif key == ROLLBACK_TRAILER:
            rollback = value
        elif key == UNVERIFIED_TRAILER:
            verified = False
    if env is None or not images:
        return None
    return Promotion(
        entry.sha,
        entry.author,
        entry.date,
        entry.subject,
        env,
        images,
        previous,
        source,
        tuple(forced),
        rollback,
        verified,
    )


@dataclass(frozen=True)
class Hold:
    """A reference rolled back from in an environment: automation must not bring it back."""

    env: str
    component: str
    ref: ImageRef
    rollback: str  # the rollback commit
    date: str

    def describe(self) -> str:
        return (
            f"{self.component} {self.ref.short()} is held in {self.env} since the rollback "
            f"{self.rollback[:10]} ({self.date[:10]}): promote it with --force -m WHY to release the hold"
        )


def holds(history: list[Promotion]) -> list[Hold]:
    """The references an environment's rollbacks moved away from that no later promotion brought
    back (``history``: that environment's promotions, newest first)."""
    released: set[tuple[str, str]] = set()
    found = []
    for promo in history:
        if promo.rollback_of is None:
            released.update((comp, ref.tag) for comp, ref in promo.images.items())
            continue
        for comp, ref in promo.previous.items():
            if ref is not None and (comp, ref.tag) not in released:
                found.append(Hold(promo.env, comp, ref, promo.sha, promo.date))
                released.add((comp, ref.tag))  # one hold per reference: the newest rollback's
    return found


def current_holds(repo: GitRepo, envs: list[str], rev: str = "HEAD") -> list[Hold]:
    """The holds of ``envs`` at ``rev``. Most histories have no rollback: one ``git log --grep``
    over the overlays finds that out, and only environments that were rolled back are read whole."""
    pattern = f"^{ROLLBACK_TRAILER}: "
    overlays = {overlay_path(env): env for env in envs}
    rollbacks = repo.log(f"--grep={pattern}", "--extended-regexp", rev, "--", *overlays, with_paths=True)
    rolled_back = {overlays[p] for entry in rollbacks for p in entry.paths if p in overlays}
    return [h for env in envs if env in rolled_back for h in holds(promotions(repo, rev, env=env))]


def overlay_path(env: str) -> str:
    """Where an environment's tags live (the one file a promotion of it changes)."""
    return f"overlays/{env}/kustomization.yaml"


def promotions(
    repo: GitRepo, rev: str = "HEAD", env: str | None = None, limit: int | None = None
) -> list[Promotion]:
    """Promotion commits reachable from ``rev``, newest first (optionally of one environment).

    Trailers alone prove nothing (anyone can write them): a commit counts as a promotion of ENV
    only if it changed ENV's overlay and the overlay it left holds the references its trailers
    name. Anything else is at most a manual edit (``audit_log`` shows those)."""
    pattern = f"^{ENV_TRAILER}: {env}$" if env else f"^{ENV_TRAILER}: "
    paths = [overlay_path(env)] if env else [":(glob)overlays/*/kustomization.yaml"]
    args = [f"--grep={pattern}", "--extended-regexp", rev, "--", *paths]
    if limit:
        args.insert(0, f"--max-count={limit}")
    result = []
    for promotion in verified(repo, repo.log(*args, with_paths=True)):
        if promotion and (env is None or promotion.env == env):
            result.append(promotion)
    return result


def verified(repo: GitRepo, entries: list[LogEntry]) -> list[Promotion | None]:
    """The promotion each entry records, if what it changed agrees with its trailers (None
    otherwise); the overlays are read in one pass."""
    claimed = [parse_promotion(e) for e in entries]
    candidates = [
        (e, p) for e, p in zip(entries, claimed, strict=True) if p and overlay_path(p.env) in e.paths
    ]
    texts = dict(
        zip(
            (e.sha for e, _ in candidates),
            repo.show_many([(e.sha, overlay_path(p.env)) for e, p in candidates]),
            strict=True,
        )
    )
    result: list[Promotion | None] = []
    for entry, promotion in zip(entries, claimed, strict=True):
        text = texts.get(entry.sha)
        written = _scalars(text) if text is not None else set()
        ok = promotion is not None and all(
            ("newTag", ref.tag) in written and (not ref.digest or ("digest", ref.digest) in written)
            for ref in promotion.images.values()
        )
        result.append(promotion if ok else None)
    return result


# One `newTag:` / `digest:` line (plain or quoted value, an optional comment): a check of what the
# commit wrote that is cheap enough for every promotion of a long history (one pattern, compiled once).
_SCALAR = re.compile(r"^\s*(?:-\s+)?(newTag|digest):[ \t]*(['\"]?)(.*?)\2[ \t]*(?:#.*)?$", re.MULTILINE)


def _scalars(text: str) -> set[tuple[str, str]]:
    """Every (key, value) an overlay sets for newTag and digest."""
    return {(m.group(1), m.group(3)) for m in _SCALAR.finditer(text)}


@dataclass(frozen=True)
class ManualChange:
    """A commit that changed an environment's kustomization without promotion trailers: a hand
    edit, or the commit that created the overlay. The audit shows it so nothing is invisible."""

    sha: str
    author: str
    date: str
    subject: str
    envs: tuple[str, ...]
    freeze: bool = False  # a freeze or unfreeze (it changed freezes/<env>.yaml): not a manual edit

    def as_json(self) -> dict[str, object]:
        base = {"commit": self.sha, "author": self.author, "date": self.date, "subject": self.subject}
        return {**base, "manual": not self.freeze, "freeze": self.freeze, "envs": list(self.envs)}


def audit_log(
    repo: GitRepo, cfg: Config, env: str | None = None, limit: int | None = None
) -> list[Promotion | ManualChange]:
    """Every commit that changed an environment's kustomization.yaml, newest first. With a limit,
    history is read a page at a time: the newest entries never cost a walk of all of it."""
    from .freeze import path_of

    envs = [cfg.env(env)] if env else list(cfg.environments)
    paths = {str(e.kustomization): e.name for e in envs}
    freezes = {path_of(e.name): e.name for e in envs}
    page = max(limit or 0, 100)
    result: list[Promotion | ManualChange] = []
    skip = 0
    while True:
        window = [f"--max-count={page}", f"--skip={skip}"] if limit else []
        entries = repo.log(*window, "HEAD", "--", *paths, *freezes, with_paths=True)
        for entry, promotion in zip(entries, verified(repo, entries), strict=True):
            if promotion is not None:
                if env is None or promotion.env == env:
                    result.append(promotion)
            else:
                names = tuple({**paths, **freezes}[p] for p in entry.paths if p in paths or p in freezes)
                frozen = not any(p in paths for p in entry.paths)
                result.append(ManualChange(entry.sha, entry.author, entry.date, entry.subject, names, frozen))
            if limit is not None and len(result) >= limit:
                return result
        if not limit or len(entries) < page:
            return result
        skip += page


def overlay_images(repo: GitRepo, env: Environment, rev: str = "HEAD") -> dict[str, ImageEntry]:
    """The ``images:`` entries of ``env``'s overlay at ``rev``."""
    text = repo.show(rev, str(env.kustomization))
    if text is None:
        from .errors import ConfigError

        raise ConfigError(f"{env.kustomization} does not exist at {rev}")
    return read_images(text, str(env.kustomization))


@dataclass(frozen=True)
class Status:
    """What every environment runs (from git), and which lags which."""

    environments: tuple[str, ...]
    components: tuple[str, ...]
    running: dict[str, dict[str, ImageRef | None]]  # env -> component -> ref
    lags: list[str] = field(default_factory=list)
    images: list[ImageState] | None = None  # with --registry: each running image, as its registry has it
    holds: list[Hold] = field(default_factory=list)
    freezes: list[str] = field(default_factory=list)  # active and expired, described
    live: list[LiveApp] | None = None  # with --live: what Argo CD reports per environment and cluster

    def as_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "environments": {
                env: {comp: (str(ref) if ref else None) for comp, ref in comps.items()}
                for env, comps in self.running.items()
            },
            "lags": self.lags,
            "freezes": self.freezes,
            "holds": [
                {"env": h.env, "component": h.component, "ref": str(h.ref), "rollback": h.rollback}
                for h in self.holds
            ],
        }
        if self.images is not None:
            data["registry"] = [state.as_json() for state in self.images]
        if self.live is not None:
            data["live"] = [app.as_json() for app in self.live]
        return data


@dataclass(frozen=True)
class LiveApp:
    """One Argo CD Application beside what git says its environment runs."""

    env: str
    state: AppState
    drift: tuple[str, ...]  # components whose git image is not among the live images

    def as_json(self) -> dict[str, object]:
        return {"env": self.env, **self.state.as_json(), "drift": list(self.drift)}


def status(repo: GitRepo, cfg: Config, rev: str = "HEAD") -> Status:
    """Every environment's images at ``rev``, and the lags between neighbours."""
    running: dict[str, dict[str, ImageRef | None]] = {}
    for env in cfg.environments:
        entries = overlay_images(repo, env, rev)
        running[env.name] = {
            c.name: (entries[c.image].ref if c.image in entries else None) for c in cfg.components
        }
    lags = []
    for prev, env in zip(cfg.environments, cfg.environments[1:], strict=False):
        behind = [
            f"{c.name} {show(running[env.name][c.name])} (vs {show(running[prev.name][c.name])})"
            for c in cfg.components
            if running[env.name][c.name] != running[prev.name][c.name]
        ]
        if behind:
            lags.append(f"{env.name} differs from {prev.name}: " + ", ".join(behind))
    held = current_holds(repo, [env.name for env in cfg.environments], rev)
    frozen = _freezes(repo, cfg, rev)
    return Status(
        tuple(e.name for e in cfg.environments),
        tuple(c.name for c in cfg.components),
        running,
        lags,
        holds=held,
        freezes=frozen,
    )


def _freezes(repo: GitRepo, cfg: Config, rev: str) -> list[str]:
    import datetime

    from .freeze import read_freeze

    now = datetime.datetime.now(datetime.UTC)
    found = []
    for env in cfg.environments:
        record = read_freeze(repo, env.name, rev)
        if record is not None:
            found.append(record.describe() + (" (expired: ignored)" if record.expired(now) else ""))
    return found


def repository_status(root: Path, ask_registry: bool = False, live: bool = False) -> Status:
    """``status`` of the repository at ``root`` (its HEAD); with ``ask_registry``, whether each
    running image is still in its registry as pinned (a moved or deleted tag is a warning); with
    ``live``, what Argo CD runs beside it."""
    import dataclasses

    from .config import load_config

    repo = GitRepo(root)
    cfg = load_config(repo.root)
    result = status(repo, cfg)
    if live:
        result = dataclasses.replace(result, live=live_apps(repo, cfg))
    if ask_registry:
        result = dataclasses.replace(result, images=_registry_states(repo, cfg))
    return result


def live_apps(repo: GitRepo, cfg: Config) -> list[LiveApp]:
    """Every environment's Applications as Argo CD reports them, with a drift mark per component
    whose image (as git renders it) is not among the live images."""
    from .argocd import ArgoCD
    from .errors import ConfigError

    if cfg.argocd_server is None:
        raise ConfigError("promotion.yaml names no Argo CD (argocd: server:): nothing to ask for --live")
    argocd = ArgoCD.from_env(cfg.argocd_server)
    found = []
    for env in cfg.environments:
        entries = overlay_images(repo, env, "HEAD")
        wanted = {
            c.name: join_reference(entries[c.image].rendered_name, entries[c.image].ref)
            for c in cfg.components
            if c.image in entries and entries[c.image].ref is not None
        }
        for app in cfg.applications(env):
            state = argocd.application(app)
            drift = tuple(comp for comp, image in wanted.items() if image not in state.images)
            found.append(LiveApp(env.name, state, drift))
    return found


def _registry_states(repo: GitRepo, cfg: Config) -> list[ImageState]:
    from .registry import Registry, RunningImage, image_states

    running = []
    for env in cfg.environments:
        entries = overlay_images(repo, env, "HEAD")
        for comp in cfg.components:
            entry = entries.get(comp.image)
            if entry is not None and entry.ref is not None:
                ref = entry.ref
                running.append(RunningImage(env.name, comp.name, entry.rendered_name, ref.tag, ref.digest))
    return image_states(Registry(cfg.endpoints()), running)


def repository_history(root: Path, env: str | None, limit: int) -> list[Promotion | ManualChange]:
    """``audit_log`` of the repository at ``root``."""
    from .config import load_config

    repo = GitRepo(root)
    return audit_log(repo, load_config(repo.root), env=env, limit=limit)
