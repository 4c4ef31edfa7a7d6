"""The plan of a promotion: the request resolved once into typed values, what changes, and the
order guard's evidence. Reads git; writes nothing."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import Component, Config, Environment
from .errors import ConfigError, RefusedError, UsageError
from .gitrepo import GitRepo
from .history import Promotion, TrailerSet, current_holds, overlay_images, promotions
from .images import ImageRef, join_reference, malformed, parse_ref, show
from .kustomization import ImageEntry, read_images, set_images
from .rollback import rollback_targets

if TYPE_CHECKING:
    from .argocd import AppState, ArgoCD
    from .registry import Registry

Log = Callable[[str], None]
NO_VERIFY_ENV = "WEALIST_NO_VERIFY_IMAGE"  # =1: as --no-verify-image (the commits record it)
DELIVERIES = ("direct", "pull-request")


@dataclass(frozen=True)
class PromotionRequest:
    """What the user asked for, as given on the command line."""

    env: str
    tag: str | None = None
    source_env: str | None = None
    components: tuple[str, ...] = ()
    force: bool = False
    message: str | None = None
    dry_run: bool = False
    push: bool = False
    delivery: str | None = None  # overrides promotion.yaml
    rollback: bool = False  # back to ``rollback_to``, or undo the environment's last promotion
    rollback_to: str | None = None
    # Ask the registry that every new reference exists (and pin digests where promotion.yaml says);
    # WEALIST_NO_VERIFY_IMAGE=1 turns it off like --no-verify-image, and the commit records it.
    verify_image: bool = field(default_factory=lambda: not os.environ.get(NO_VERIFY_ENV))
    wait: bool = False  # follow Argo CD afterwards: checked here, before anything changes


@dataclass(frozen=True)
class Base:
    """The commit a promotion is planned on, how to name it to the user, and why it may differ
    from what the user sees in the work tree."""

    sha: str
    name: str = "HEAD"
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Intent:
    """A request resolved against promotion.yaml: every name looked up, every reference parsed."""

    env: Environment
    components: tuple[Component, ...]
    delivery: str
    ref: ImageRef | None  # --tag
    source: Environment | None  # --from
    targets: dict[str, ImageRef] | None  # given explicitly (a push retry)
    rollback: bool
    rollback_to: ImageRef | None
    rollback_of: str | None  # the promotion a retried rollback undoes
    force: bool
    reason: str | None
    push: bool
    dry_run: bool
    registry: Registry | None  # None: --no-verify-image

    def retargeted(self, targets: dict[str, ImageRef], rollback_of: str | None) -> Intent:
        """The same edit again, for exactly those components (a push retry on a moved remote)."""
        comps = tuple(c for c in self.components if c.name in targets)
        return dataclasses.replace(
            self, targets=targets, components=comps, rollback=False, rollback_of=rollback_of
        )


def resolve(cfg: Config, req: PromotionRequest) -> Intent:
    """Usage errors (exit 2), before anything is read from git."""
    env = cfg.env(req.env)
    comps = cfg.select(req.components)
    ref = source = None
    if not req.rollback:
        if (req.tag is None) == (req.source_env is None):
            raise UsageError("give exactly one of --tag TAG or --from ENV")
        if req.tag is not None:
            ref = parse_ref(req.tag)
        if req.source_env is not None:
            source = cfg.env(req.source_env)
            if source == env:
                raise UsageError(f"--from {source.name} is the environment being promoted")
    if req.delivery is not None and req.delivery not in DELIVERIES:
        raise UsageError(f"unknown delivery {req.delivery!r}")
    if req.wait and not req.dry_run:
        if cfg.argocd_server is None:
            raise UsageError("--wait needs Argo CD: add argocd: server: to promotion.yaml")
        if (req.delivery or env.delivery) == "direct" and not req.push:
            raise UsageError("--wait needs --push with direct delivery: Argo CD only sees what is pushed")
    return Intent(
        env=env,
        components=comps,
        delivery=req.delivery or env.delivery,
        ref=ref,
        source=source,
        targets=None,
        rollback=req.rollback,
        rollback_to=parse_ref(req.rollback_to) if req.rollback_to is not None else None,
        rollback_of=None,
        force=req.force,
        reason=req.message,
        push=req.push,
        dry_run=req.dry_run,
        registry=_registry(cfg) if req.verify_image else None,
    )


def _registry(cfg: Config) -> Registry:
    from .registry import Registry  # imported when asked: http.client and friends are not free

    return Registry(cfg.endpoints())


@dataclass(frozen=True)
class Change:
    """One component's move: from the reference the overlay holds to the new one."""

    component: str
    image: str  # the image name the overlay's entry matches
    rendered_name: str
    old: ImageRef | None
    new: ImageRef
    evidence: str | None = None  # where the order guard found it
    registry: str | None = None  # what the registry said about ``new``

    def reference(self, ref: ImageRef | None) -> str:
        return join_reference(self.rendered_name, ref)


@dataclass(frozen=True)
class Plan:
    """Everything a promotion will commit, decided before anything is written."""

    env: Environment
    delivery: str
    base: Base
    changes: tuple[Change, ...]
    unchanged: tuple[str, ...]
    source_env: str | None
    forced: tuple[str, ...]
    reason: str | None
    rollback_of: str | None
    new_text: str
    old_text: str  # the overlay at ``head``
    image_verified: bool = True  # False: --no-verify-image (recorded in a trailer)
    gate: str | None = None  # what proved that the previous environment runs the references
    notes: tuple[str, ...] = ()  # worth saying, not refusing (an expired freeze)

    @property
    def head(self) -> str:
        return self.base.sha

    @property
    def path(self) -> str:
        return str(self.env.kustomization)

    def subject(self) -> str:
        verb = "rollback" if self.rollback_of else "promote"
        parts = ", ".join(f"{c.component} {show(c.old)} → {c.new.short()}" for c in self.changes)
        return f"{verb}({self.env.name}): {parts}"

    def message(self) -> str:
        paragraphs = [self.subject()]
        if self.reason:
            paragraphs.append(self.reason.strip())
        if self.forced:
            paragraphs.append(
                "Promoted with --force past the order guard:\n" + "\n".join(f"- {f}" for f in self.forced)
            )
        paragraphs.append(self.trailers().render())
        return "\n\n".join(paragraphs) + "\n"

    def trailers(self) -> TrailerSet:
        return TrailerSet(
            env=self.env.name,
            images={c.component: c.reference(c.new) for c in self.changes},
            previous={c.component: c.reference(c.old) for c in self.changes},
            source_env=self.source_env,
            forced=self.forced,
            rollback_of=self.rollback_of,
            unverified=not self.image_verified,
        )

    def branch_name(self) -> str:
        tags = sorted({c.new.tag for c in self.changes})
        return f"promote/{self.env.name}/{tags[0] if len(tags) == 1 else '-'.join(tags)}"


def draft_plan(repo: GitRepo, intent: Intent, base: Base) -> Plan:
    """What promoting ``intent`` on commit ``base`` would change, before any check: the overlay's
    new text is already known, so the render that proves it can start while the checks run."""
    env = intent.env
    head = base.sha
    current_text = repo.show(head, str(env.kustomization))
    if current_text is None:
        raise ConfigError(f"{env.kustomization} does not exist at {head[:10]}")
    current = read_images(current_text, str(env.kustomization))
    components, targets, rollback_of = _targets(repo, intent, head)
    changes: list[Change] = []
    unchanged = []
    for comp in components:
        entry = current.get(comp.image)
        if entry is None:
            raise ConfigError(
                f"{env.kustomization} has no images: entry for {comp.image} ({comp.name}); add one"
            )
        new = targets[comp.name]
        if entry.ref == new:
            unchanged.append(comp.name)
        else:
            changes.append(Change(comp.name, comp.image, entry.rendered_name, entry.ref, new))
    return Plan(
        env=env,
        delivery=intent.delivery,
        base=base,
        changes=tuple(changes),
        unchanged=tuple(unchanged),
        source_env=intent.source.name if intent.source else None,
        forced=(),
        reason=intent.reason,
        rollback_of=rollback_of,
        new_text=set_images(current_text, {c.image: c.new for c in changes}, str(env.kustomization)),
        old_text=current_text,
        image_verified=intent.registry is not None,
    )


def check_plan(repo: GitRepo, cfg: Config, intent: Intent, draft: Plan, argocd: ArgoCD | None = None) -> Plan:
    """``draft`` after the order guard, the Argo CD gate, holds and freezes (refused unless forced;
    forced problems are recorded) and the registry (every new reference must exist; where the
    environment pins digests they are added, which changes the overlay's new text).

    Long because the checks share one read of the previous environment's history and together
    decide between refusing and recording what was forced."""
    env, head = draft.env, draft.head
    changes = list(draft.changes)
    unchanged = list(draft.unchanged)
    forced: tuple[str, ...] = ()
    gate = None
    notes: list[str] = []
    previous = cfg.previous(env)
    if changes and draft.rollback_of is None:
        violations: list[str] = []
        if previous is not None:
            # The guard and the gate both may read the previous environment's history: once.
            history = _read_once(lambda: promotions(repo, head, env=previous.name))
            changes, violations = _order_guard(repo, previous, changes, head, history)
            if cfg.argocd_server is None:
                gate = "git history only: promotion.yaml names no Argo CD to ask"
            else:
                changes, problems = _health_gate(
                    repo, cfg, previous, changes, head, history, intent.force, argocd
                )
                violations += problems
                gate = f"Argo CD at {cfg.argocd_server}: {', '.join(cfg.applications(previous))}"
        held = _held(repo, env, changes, head)
        frozen = _frozen(repo, env, head, intent, notes)
        if (violations or held or frozen) and not intent.force:
            refusals = [f"frozen: {f}" for f in frozen] + [f"hold: {h}" for h in held]
            if violations and previous is not None:
                guard = "; ".join(violations)
                refusals.append(f"order guard: {guard}. Promote to {previous.name} first, or pass --force")
            raise RefusedError(". ".join(refusals))
        forced = tuple(violations + held + frozen)

    new_text = draft.new_text
    if changes and intent.registry is not None:
        changes = _checked(intent.registry, env, changes, exact_tag=intent.ref is not None)
        # A tag the environment already runs, pinned to the digest it already has: no change.
        unchanged += [c.component for c in changes if c.new == c.old]
        changes = [c for c in changes if c.new != c.old]
        if [c.new for c in changes] != [c.new for c in draft.changes]:  # pinned digests
            new_text = set_images(draft.old_text, {c.image: c.new for c in changes}, draft.path)
    return dataclasses.replace(
        draft,
        changes=tuple(changes),
        unchanged=tuple(unchanged),
        forced=forced,
        new_text=new_text,
        gate=gate,
        notes=tuple(notes),
    )


def _targets(
    repo: GitRepo, intent: Intent, head: str
) -> tuple[tuple[Component, ...], dict[str, ImageRef], str | None]:
    """The components that move, where to, and the promotion a rollback undoes."""
    if intent.targets is not None:
        return intent.components, intent.targets, intent.rollback_of
    if intent.rollback:
        selected = {c.name for c in intent.components}
        targets, undone = rollback_targets(repo, intent.env, selected, intent.rollback_to, head)
        return tuple(c for c in intent.components if c.name in targets), targets, undone
    if intent.ref is not None:
        return intent.components, {c.name: intent.ref for c in intent.components}, None
    return intent.components, _copied(repo, intent, head), None


def _copied(repo: GitRepo, intent: Intent, head: str) -> dict[str, ImageRef]:
    """--from: what the source environment runs at ``head``."""
    assert intent.source is not None
    entries = overlay_images(repo, intent.source, head)
    targets = {}
    for comp in intent.components:
        entry = entries.get(comp.image)
        if entry is None or entry.ref is None:
            raise ConfigError(
                f"{intent.source.kustomization} sets no tag for {comp.image}: nothing to promote from it"
            )
        # What --from copies obeys the grammar --tag does: the tool never writes a malformed reference.
        if malformed(entry.ref):
            raise ConfigError(
                f"{intent.source.kustomization} holds a malformed reference for {comp.image} "
                f"({malformed(entry.ref)}): fix it there first"
            )
        targets[comp.name] = entry.ref
    return targets


def _read_once(read: Callable[[], list[Promotion]]) -> Callable[[], list[Promotion]]:
    """``read``, called at most once, and only if somebody asks."""
    cache: list[list[Promotion]] = []

    def once() -> list[Promotion]:
        if not cache:
            cache.append(read())
        return cache[0]

    return once


def _order_guard(
    repo: GitRepo,
    previous: Environment,
    changes: list[Change],
    head: str,
    history: Callable[[], list[Promotion]],
) -> tuple[list[Change], list[str]]:
    """Every new reference must run, or have run, in the previous environment."""
    running = overlay_images(repo, previous, head)
    guarded = []
    violations = []
    for change in changes:
        evidence = None
        entry: ImageEntry | None = running.get(change.image)
        if entry is not None and entry.ref is not None and _covers(entry.ref, change.new):
            evidence = f"running in {previous.name} now"
        else:
            for promo in history():
                ran = promo.images.get(change.component)
                if ran is not None and _covers(ran, change.new):
                    evidence = f"ran in {previous.name} since {promo.sha[:10]} ({promo.date[:10]})"
                    break
        if evidence is None:
            violations.append(f"{change.component} {change.new.short()} has not run in {previous.name}")
        guarded.append(dataclasses.replace(change, evidence=evidence))
    return guarded, violations


def ask_early(cfg: Config, intent: Intent, draft: Plan) -> ArgoCD | None:
    """Start the network questions ``check_plan`` will ask for ``draft``: the registry lookups and
    the Argo CD gate's Applications. They wait on the network, so they run while the draft renders
    and the git checks run. Returns the Argo CD client holding the early answers, for check_plan."""
    if not draft.changes:
        return None
    if intent.registry is not None:
        intent.registry.ask_early(_questions(draft.changes, exact_tag=intent.ref is not None))
    previous = cfg.previous(draft.env)
    if cfg.argocd_server is None or previous is None or draft.rollback_of is not None:
        return None
    from .argocd import ArgoCD, ArgoCDError

    try:
        argocd = ArgoCD.from_env(str(cfg.argocd_server))
    except ArgoCDError:
        return None  # the gate meets the same error and decides (refused, or recorded with --force)
    argocd.ask_early(cfg.applications(previous))
    return argocd


def _questions(changes: Sequence[Change], exact_tag: bool) -> list[tuple[str, str]]:
    return [(c.rendered_name, _asked(c.new, exact_tag)) for c in changes]


def _asked(new: ImageRef, exact_tag: bool) -> str:
    """What to ask the registry about ``new``: its digest (what --from and rollback copy must still
    exist), or its tag when the user typed the digest beside it (it must be what the tag is now)."""
    return new.digest if new.digest and not exact_tag else new.tag


def _checked(registry: Registry, env: Environment, changes: list[Change], exact_tag: bool) -> list[Change]:
    """Every new reference, asked of the registry its rendered name points at. A reference with a
    digest is asked by digest (what --from and rollback copy must still exist), except a digest
    the user typed beside a tag, which must be what the tag is now. Where ``env`` pins digests,
    a tag gets the digest the registry gave (the index digest for a multi-arch image)."""

    checks = registry.check_many(_questions(changes, exact_tag))
    result = []
    for change in changes:
        check = checks[(change.rendered_name, _asked(change.new, exact_tag))]
        new = change.new
        if new.digest and exact_tag and new.digest != check.digest:
            raise RefusedError(
                f"the tag moved: {change.rendered_name}:{new.tag} is {check.digest} in {check.registry} "
                f"now, not {new.digest}"
            )
        if env.pin == "digest" and new.digest is None:
            new = ImageRef(new.tag, check.digest)
        result.append(dataclasses.replace(change, new=new, registry=check.describe()))
    return result


def _health_gate(
    repo: GitRepo,
    cfg: Config,
    previous: Environment,
    changes: list[Change],
    head: str,
    history: Callable[[], list[Promotion]],
    force: bool,
    early: ArgoCD | None,
) -> tuple[list[Change], list[str]]:
    """Argo CD must show every Application of ``previous`` running each new reference now, at a
    revision that contains the commit which put it into ``previous``'s overlay. Returns the changes
    with the evidence added, and what is wrong (a refusal unless forced). ``early``: the client
    that was asked while the draft rendered."""
    import datetime

    from .argocd import ArgoCDError, gate_problems

    try:
        states = _app_states(cfg, previous, early)
    except ArgoCDError as exc:
        if not force:
            raise
        return changes, [f"Argo CD gate not checked: {exc.message}"]
    if not states:
        return changes, [f"no cluster of the fleet runs {previous.name}: no Application to ask"]
    running = overlay_images(repo, previous, head)
    now = datetime.datetime.now(datetime.UTC)
    result, problems = [], []
    for change in changes:
        entry = running.get(change.image)
        live = join_reference(entry.rendered_name, change.new) if entry else change.reference(change.new)
        since = next(
            (p.sha for p in history() if _covers(p.images.get(change.component) or ImageRef(""), change.new)),
            None,
        )
        since = since or next(iter(repo.commits_touching(head, [str(previous.kustomization)])), None)
        for state in states:
            contains = bool(state.revision and since and repo.is_ancestor(since, state.revision))
            problems += [f"{state.name}: {p}" for p in gate_problems(state, live, contains, now)]
        seen = ", ".join(f"{s.name} Healthy at {(s.revision or '')[:10]}" for s in states)
        result.append(dataclasses.replace(change, evidence=f"{change.evidence}; Argo CD: {seen}"))
    return result, list(dict.fromkeys(problems))


def _app_states(cfg: Config, previous: Environment, early: ArgoCD | None) -> list[AppState]:
    """What Argo CD reports for every Application of ``previous`` (ArgoCDError if it cannot)."""
    from .argocd import ArgoCD

    argocd = early or ArgoCD.from_env(str(cfg.argocd_server))
    states = [argocd.application(app) for app in cfg.applications(previous)]
    # A status older than the last sync may predate it: ask Argo CD to look again, once.
    return [argocd.application(s.name, refresh=True) if s.stale() else s for s in states]


def _frozen(repo: GitRepo, env: Environment, head: str, intent: Intent, notes: list[str]) -> list[str]:
    """A freeze of ``env`` refuses the promotion; overriding it takes --force and a reason."""
    import datetime

    from .freeze import read_freeze

    record = read_freeze(repo, env.name, head)
    if record is None:
        return []
    if record.expired(datetime.datetime.now(datetime.UTC)):
        notes.append(
            f"the freeze of {env.name} expired at {record.until}: ignored (wealist unfreeze removes it)"
        )
        return []
    if intent.force and not (intent.reason or "").strip():
        raise UsageError(f"{record.describe()}: --force needs -m REASON to promote through a freeze")
    return [f"{record.describe()} (pass --force -m REASON to promote anyway)"]


def _held(repo: GitRepo, env: Environment, changes: list[Change], head: str) -> list[str]:
    """A reference rolled back from in ``env`` stays out until a forced promotion brings it back:
    automation re-promoting what a person rolled back is exactly what a rollback must survive."""
    found = {(h.component, h.ref.tag): h for h in current_holds(repo, [env.name], head)}
    return [found[(c.component, c.new.tag)].describe() for c in changes if (c.component, c.new.tag) in found]


def _covers(ran: ImageRef, wanted: ImageRef) -> bool:
    """A tag ran before; a pinned digest must be the very digest that ran."""
    return ran.tag == wanted.tag and (wanted.digest is None or ran.digest == wanted.digest)
