"""Argo CD: what really runs. Git says what *should* run; the Application's status says whether the
cluster runs it, synced and healthy. Read through Argo CD's REST API (``GET
/api/v1/applications/{name}``) with ``ARGOCD_AUTH_TOKEN`` as a Bearer token, as the argocd CLI does.

The health gate asks it before a promotion: the previous environment must run the reference now,
proved by the Application's own status rather than by ``sync.status`` (which can stay OutOfSync for
reasons unrelated to a promotion): no error condition, no operation in flight, reconciled after the
last operation finished, synced at a revision that contains the promotion commit (git ancestry:
environments share a branch), Healthy for a while, and the image among the live ones.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .background import in_background
from .errors import RefusedError
from .masking import hide

TOKEN_ENV = "ARGOCD_AUTH_TOKEN"
TIMEOUT_SECONDS = 10.0
STABLE_SECONDS = 5.0  # Healthy for less than this may still flip (a rollout's last pod)
TERMINAL_PHASES = ("Succeeded", "Failed", "Error")
ERROR_CONDITIONS = ("ComparisonError", "InvalidSpecError")


class ArgoCDError(RefusedError):
    """Argo CD could not be asked, or would not answer: the gate fails closed."""


@dataclass(frozen=True)
class AppState:
    """The parts of an Application's status a promotion cares about."""

    name: str
    sync: str | None  # Synced / OutOfSync / Unknown
    revision: str | None  # the commit it is synced at
    health: str | None
    healthy_since: datetime.datetime | None
    operation_running: bool
    phase: str | None  # the last operation's phase
    message: str | None  # the last operation's message
    finished_at: datetime.datetime | None
    reconciled_at: datetime.datetime | None
    errors: tuple[str, ...]  # ComparisonError / InvalidSpecError conditions
    images: tuple[str, ...]  # status.summary.images: what the live pods run
    failing: tuple[str, ...]  # resources that are not Healthy, as Kind/name: status

    def stale(self) -> bool:
        """Not reconciled since its last operation finished: its status may predate the sync."""
        return bool(
            self.finished_at and (self.reconciled_at is None or self.reconciled_at < self.finished_at)
        )

    def as_json(self) -> dict[str, object]:
        return {
            "application": self.name,
            "sync": self.sync,
            "revision": self.revision,
            "health": self.health,
            "operation_running": self.operation_running,
            "phase": self.phase,
            "images": list(self.images),
            "errors": list(self.errors),
        }


class ArgoCD:
    """The few calls the tool makes to one Argo CD server."""

    def __init__(self, server: str, token: str) -> None:
        self.server = server.rstrip("/")
        self._token = hide(token)
        self._early: dict[str, Callable[[], AppState]] = {}

    @classmethod
    def from_env(cls, server: str) -> ArgoCD:
        token = (os.environ.get(TOKEN_ENV) or "").strip()
        if not token:
            raise ArgoCDError(
                f"promotion.yaml names Argo CD at {server}, but {TOKEN_ENV} is not set: the health gate "
                "cannot ask it (pass --force to promote on git history alone, recorded)"
            )
        return cls(server, token)

    def ask_early(self, names: list[str]) -> None:
        """Start asking for these Applications now, in the background; the next
        ``application(name)`` takes the answer."""
        for name in names:
            self._early[name] = in_background(functools.partial(self.application, name))

    def application(self, name: str, refresh: bool = False) -> AppState:
        """The Application's state; ``refresh`` asks Argo CD to compare with git first (no
        waiting out its polling interval). An answer asked for early is used once."""
        early = None if refresh else self._early.pop(name, None)
        if early is not None:
            return early()
        query = "?refresh=normal" if refresh else ""
        data = self._get(f"/api/v1/applications/{urllib.parse.quote(name)}{query}")
        return parse_application(name, data)

    def denied_by_window(self, name: str) -> str | None:
        """Why the Application may not sync now, if a sync window says so."""
        data = _dict(self._get(f"/api/v1/applications/{urllib.parse.quote(name)}/syncwindows"))
        if data.get("canSync", True):
            return None
        windows = ", ".join(
            f"{w.get('kind', '?')} {w.get('schedule', '?')} for {w.get('duration', '?')}"
            for w in data.get("activeWindows") or []
            if isinstance(w, dict)
        )
        return f"a sync window forbids syncing now ({windows or 'no window named'})"

    def _get(self, path: str) -> Any:
        request = urllib.request.Request(
            self.server + path,
            headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json"},
        )
        try:
            with _OPENER.open(request, timeout=TIMEOUT_SECONDS) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            hint = {
                401: f"{TOKEN_ENV} was not accepted",
                403: f"{TOKEN_ENV} may not read it",
                404: "no such application",
            }
            said = hint.get(exc.code, "unexpected answer")
            raise ArgoCDError(f"Argo CD GET {path.split('?')[0]} answered {exc.code}: {said}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise ArgoCDError(
                f"cannot reach Argo CD at {self.server}: {getattr(exc, 'reason', exc)}"
            ) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise ArgoCDError(
                f"Argo CD GET {path.split('?')[0]} answered something that is not JSON"
            ) from None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would carry the token to wherever it points: refuse it."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        raise ArgoCDError(
            f"Argo CD answered {code} redirecting to {urllib.parse.urlsplit(newurl).netloc}: not followed"
        )


_OPENER = urllib.request.build_opener(_NoRedirects())


def parse_application(name: str, data: Any) -> AppState:
    """An AppState from a ``v1alpha1Application`` document (missing parts read as unknown)."""
    status = _dict(_dict(data).get("status"))
    sync, health, op = (
        _dict(status.get("sync")),
        _dict(status.get("health")),
        _dict(status.get("operationState")),
    )
    phase = op.get("phase")
    running = bool(_dict(data).get("operation")) or (
        bool(op) and (phase not in TERMINAL_PHASES or not op.get("finishedAt"))
    )
    errors = tuple(
        f"{c.get('type')}: {c.get('message', '')}"
        for c in status.get("conditions") or []
        if isinstance(c, dict) and c.get("type") in ERROR_CONDITIONS
    )
    failing = tuple(
        f"{r.get('kind')}/{r.get('name')}: {_dict(r.get('health')).get('status')}"
        + (f" ({_dict(r.get('health')).get('message')})" if _dict(r.get("health")).get("message") else "")
        for r in status.get("resources") or []
        if isinstance(r, dict) and _dict(r.get("health")).get("status") not in (None, "Healthy")
    )
    return AppState(
        name=name,
        sync=sync.get("status"),
        revision=sync.get("revision"),
        health=health.get("status"),
        healthy_since=_time(health.get("lastTransitionTime")),
        operation_running=running,
        phase=phase,
        message=op.get("message"),
        finished_at=_time(op.get("finishedAt")),
        reconciled_at=_time(status.get("reconciledAt")),
        errors=errors,
        images=tuple(str(i) for i in _dict(status.get("summary")).get("images") or []),
        failing=failing,
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def gate_problems(state: AppState, image: str, contains: bool, now: datetime.datetime) -> list[str]:
    """Why ``state`` does not prove that its cluster runs ``image`` (empty: it does). ``contains``:
    the synced revision contains the commit that put the reference into the overlay."""
    problems = [*state.errors]
    if state.operation_running:
        problems.append(f"an operation is in flight ({state.phase or 'starting'})")
    if state.stale():
        problems.append("not reconciled since its last sync finished")
    if not contains:
        problems.append(
            f"synced at {(state.revision or 'no revision')[:10]}, which does not contain the promotion"
        )
    if state.health != "Healthy":
        detail = f": {'; '.join(state.failing[:3])}" if state.failing else ""
        problems.append(f"health {state.health or 'unknown'}{detail}")
    elif state.healthy_since and (now - state.healthy_since).total_seconds() < STABLE_SECONDS:
        problems.append(f"Healthy only since {state.healthy_since.isoformat()}")
    if image not in state.images:
        problems.append(f"{image} is not among its live images")
    return problems
