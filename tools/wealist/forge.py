"""The git forge: GitHub's REST API for pull requests (GITHUB_TOKEN, GITHUB_API_URL, as Actions sets them)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from .errors import ForgeError
from .masking import TOKEN_ENV

API_ENV = "GITHUB_API_URL"
SERVER_ENV = "GITHUB_SERVER_URL"
DEFAULT_API = "https://api.github.com"
DEFAULT_SERVER = "https://github.com"
TIMEOUT_SECONDS = 10.0  # per read: how long the server may stay silent
CALL_DEADLINE_SECONDS = 30.0  # per call, whatever the server does (one byte every few seconds...)
BODY_LIMIT = 65_536  # GitHub rejects longer pull-request bodies (422)


@dataclass(frozen=True)
class PullRequest:
    """An opened or updated pull request."""

    number: int
    url: str
    created: bool  # False: an open pull request for the branch was updated


class GitHub:
    """The few GitHub REST calls the tool makes, with the token from GITHUB_TOKEN."""

    def __init__(self, repository: str, token: str, api_url: str | None = None) -> None:
        self.owner, self.name = repository.split("/", 1)
        self._token = token
        self.api_url = (api_url or os.environ.get(API_ENV) or DEFAULT_API).rstrip("/")

    @classmethod
    def from_env(cls, repository: str) -> GitHub | None:
        """The client with GITHUB_TOKEN (surrounding whitespace, as a file or heredoc leaves it,
        is dropped); None without a token. A token with whitespace or control characters inside
        is refused without showing it."""
        token = (os.environ.get(TOKEN_ENV) or "").strip()
        if not token:
            return None
        if any(ch.isspace() or not ch.isprintable() for ch in token):
            raise ForgeError(f"{TOKEN_ENV} contains whitespace or control characters: check how it was set")
        return cls(repository, token)

    def open_or_update(self, head: str, base: str, title: str, body: str, labels: list[str]) -> PullRequest:
        """Create the pull request, or update the open one for ``head``; labels are best effort."""
        repo_path = f"/repos/{self.owner}/{self.name}"
        query = urllib.parse.urlencode({"head": f"{self.owner}:{head}", "state": "open"})
        existing = self._call("GET", f"{repo_path}/pulls?{query}")
        if not isinstance(existing, list):
            raise ForgeError(f"GitHub API GET {repo_path}/pulls answered something that is not a list")
        if existing:
            number = _field(existing[0], "number", int, f"GET {repo_path}/pulls")
            data = self._call("PATCH", f"{repo_path}/pulls/{number}", {"title": title, "body": body})
            created = False
        else:
            data = self._call(
                "POST", f"{repo_path}/pulls", {"title": title, "head": head, "base": base, "body": body}
            )
            created = True
        call = f"{'POST' if created else 'PATCH'} {repo_path}/pulls"
        pull = PullRequest(
            number=_field(data, "number", int, call), url=_field(data, "html_url", str, call), created=created
        )
        if labels:
            # Labels are a convenience: a token that may open pull requests may not label them.
            with contextlib.suppress(ForgeError):
                self._call("POST", f"{repo_path}/issues/{pull.number}/labels", {"labels": labels})
        return pull

    def upsert_comment(self, number: int, marker: str, body: str) -> str:
        """Post ``body`` on pull request ``number``, or edit our earlier comment (found by ``marker``)."""
        repo_path = f"/repos/{self.owner}/{self.name}"
        comments = _dicts(self._call("GET", f"{repo_path}/issues/{number}/comments?per_page=100"))
        mine = next((c for c in comments if marker in str(c.get("body", ""))), None)
        if mine is None:
            call = f"POST {repo_path}/issues/{number}/comments"
            data = self._call("POST", f"{repo_path}/issues/{number}/comments", {"body": body})
        else:
            comment_id = _field(mine, "id", int, f"GET {repo_path}/issues/{number}/comments")
            call = f"PATCH {repo_path}/issues/comments/{comment_id}"
            data = self._call("PATCH", f"{repo_path}/issues/comments/{comment_id}", {"body": body})
        return _field(data, "html_url", str, call)

    def merged_pull_for(self, sha: str) -> int | None:
        """The merged pull request whose merge produced commit ``sha``, or None (a direct push)."""
        pulls = self._call("GET", f"/repos/{self.owner}/{self.name}/commits/{sha}/pulls")
        for pull in pulls if isinstance(pulls, list) else []:
            if isinstance(pull, dict) and pull.get("merged_at") and pull.get("merge_commit_sha") == sha:
                return int(pull["number"])
        return None

    def approvals(self, number: int) -> tuple[set[str], set[str]]:
        """(who approved, who requests changes) by each reviewer's latest review; the author's own
        reviews do not count."""
        repo_path = f"/repos/{self.owner}/{self.name}"
        pull = _dicts([self._call("GET", f"{repo_path}/pulls/{number}")])
        author = str(_user(pull[0]) if pull else "")
        latest: dict[str, str] = {}
        for review in _dicts(self._call("GET", f"{repo_path}/pulls/{number}/reviews?per_page=100")):
            login = _user(review)
            if (
                login
                and login != author
                and review.get("state") in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED")
            ):
                latest[login] = str(review["state"])
        return (
            {u for u, state in latest.items() if state == "APPROVED"},
            {u for u, state in latest.items() if state == "CHANGES_REQUESTED"},
        )

    def pull_state(self, number: int) -> tuple[bool, str, str | None]:
        """(merged, state, merge commit) of pull request ``number``."""
        call = f"GET /repos/{self.owner}/{self.name}/pulls/{number}"
        data = self._call("GET", f"/repos/{self.owner}/{self.name}/pulls/{number}")
        state = _field(data, "state", str, call)
        merged = bool(data.get("merged"))
        sha = data.get("merge_commit_sha")
        return merged, state, str(sha) if merged and sha else None

    def pull_commits(self, number: int) -> set[str]:
        data = self._call("GET", f"/repos/{self.owner}/{self.name}/pulls/{number}/commits?per_page=250")
        return {str(c["sha"]) for c in data or [] if isinstance(c, dict) and "sha" in c}

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        """One API call within CALL_DEADLINE_SECONDS in all: the socket's timeout bounds each read
        only, so the request runs in a worker thread that is abandoned at the deadline."""
        outcome: list[Any] = []

        def work() -> None:
            try:
                outcome.append((True, self._request(method, path, payload)))
            except BaseException as exc:  # handed to the caller's thread
                outcome.append((False, exc))

        worker = threading.Thread(target=work, name="github-api", daemon=True)
        worker.start()
        worker.join(CALL_DEADLINE_SECONDS)
        if not outcome:
            maybe = "" if method == "GET" else " (it may have taken effect: look before retrying)"
            raise ForgeError(
                f"GitHub API {method} {path.split('?')[0]} did not finish answering within "
                f"{CALL_DEADLINE_SECONDS:.0f}s{maybe}"
            )
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    def _request(self, method: str, path: str, payload: dict[str, Any] | None) -> Any:
        request = urllib.request.Request(
            self.api_url + path,
            method=method,
            data=None if payload is None else json.dumps(payload).encode(),
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self._token}",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "wealist-promote",
                **({"Content-Type": "application/json"} if payload is not None else {}),
            },
        )
        try:
            with _OPENER.open(request, timeout=TIMEOUT_SECONDS) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise ForgeError(_explain(exc.code, exc.read(), method, path)) from None
        except TimeoutError:
            raise ForgeError(f"{self.api_url} did not answer within {TIMEOUT_SECONDS:.0f}s") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise ForgeError(f"{self.api_url} did not answer within {TIMEOUT_SECONDS:.0f}s") from None
            raise ForgeError(f"cannot reach {self.api_url}: {exc.reason}") from None
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise ForgeError(
                f"GitHub API {method} {path.split('?')[0]} answered something that is not JSON"
            ) from None


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only within the API's own scheme, host and port: urllib would otherwise
    carry the Authorization header (the token) to whatever host the answer names."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        old, new = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(newurl)
        if (old.scheme, old.netloc) != (new.scheme, new.netloc):
            raise ForgeError(
                f"GitHub API answered {code} redirecting to {new.scheme}://{new.netloc}: not following "
                "it with the token (check GITHUB_API_URL)"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_SameOriginRedirects())


def _field(data: Any, key: str, kind: type[Any], call: str) -> Any:
    """``data[key]`` as ``kind``; an answer without it is the forge's fault, said in one line."""
    value = data.get(key) if isinstance(data, dict) else None
    try:
        if value is None or value == "" or isinstance(value, (dict, list)):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise ForgeError(f"GitHub API {call} answered without a usable {key!r}") from None


def _dicts(data: Any) -> list[dict[str, Any]]:
    """The objects of a list answer (anything else in it, or a non-list answer, is ignored)."""
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def _user(item: dict[str, Any]) -> str:
    user = item.get("user")
    return str(user.get("login", "")) if isinstance(user, dict) else ""


def _explain(status: int, raw: bytes, method: str, path: str) -> str:
    try:
        detail = json.loads(raw)
        message = str(detail.get("message", ""))
        errors = "; ".join(
            str(e.get("message") or e.get("code")) for e in detail.get("errors", []) if isinstance(e, dict)
        )
    except (ValueError, AttributeError):
        message, errors = raw[:200].decode(errors="replace"), ""
    hints = {
        401: "GITHUB_TOKEN was not accepted: renew it",
        403: "GITHUB_TOKEN may not do this (it needs pull-requests: write), or the rate limit is reached",
        404: "repository not found: check forge.repository in promotion.yaml and the token's access to it",
        422: "GitHub refused the pull request",
    }
    hint = hints.get(status, "unexpected answer")
    said = ": ".join(part for part in (message, errors) if part)
    return f"GitHub API {method} {path.split('?')[0]} answered {status}: {hint}" + (
        f" ({said})" if said else ""
    )


def fit_lines(text: str, room: int) -> tuple[str, int, int]:
    """The longest run of whole lines of ``text`` within ``room`` characters.

    Returns (the kept text, how many lines were kept, how many there were)."""
    lines = text.splitlines(True)
    kept, size = 0, 0
    for line in lines:
        if size + len(line) > room:
            break
        kept, size = kept + 1, size + len(line)
    return "".join(lines[:kept]), kept, len(lines)


def compare_url(repository: str, base: str, head: str) -> str:
    """The web page that opens a pull request from ``head`` into ``base``."""
    server = (os.environ.get(SERVER_ENV) or DEFAULT_SERVER).rstrip("/")
    return f"{server}/{repository}/compare/{urllib.parse.quote(base)}...{urllib.parse.quote(head)}?expand=1"
