"""Prod changes only through review: prod's Argo CD Applications follow a deploy branch
(``deploy/prod``) that only this step moves, and only to the merge commit of an approved pull
request. Direct pushes to main (dev promotions) never reach prod; a repository ruleset lets no one
but the deployer move the branch (.github/rulesets/deploy-branches.json).

Run by the prod-approved workflow on every push to main, with the deployer's token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import load_config
from .errors import ConfigError, RefusedError
from .forge import GitHub
from .gitrepo import GitRepo
from .render import RENDER_INPUTS

# What a prod render reads besides its overlay: a change here reaches prod too, so it must have
# come through a reviewed pull request as well.
SHARED_INPUTS = tuple(p for p in RENDER_INPUTS if p != "overlays")


@dataclass(frozen=True)
class DeployDecision:
    """What deploy-approved decided, and why."""

    env: str
    branch: str
    commit: str
    pull_request: int | None
    moved: bool
    reason: str


def advance(
    root: Path, env_name: str, commit: str, remote: str = "origin", dry_run: bool = False
) -> DeployDecision:
    """Move ``env_name``'s deploy branch to ``commit`` if it is the merge of an approved pull
    request and every commit it brings that touches what the environment renders came through it.

    Long because it is the whole decision, one check after another, each with its own refusal."""
    repo = GitRepo(root)
    cfg = load_config(repo.root)
    env = cfg.env(env_name)
    if env.deploy_branch is None:
        raise ConfigError(f"promotion.yaml gives {env.name} no deploy-branch: it deploys from main directly")
    if cfg.forge is None:
        raise ConfigError("promotion.yaml names no forge: reviews cannot be checked")
    github = GitHub.from_env(cfg.forge.repository)
    if github is None:
        raise ConfigError("GITHUB_TOKEN is not set: reviews cannot be checked")
    sha = repo.rev(commit)
    number = github.merged_pull_for(sha)
    if number is None:
        return DeployDecision(
            env.name, env.deploy_branch, sha, None, False, "not the merge of a pull request"
        )
    approved, blocking = github.approvals(number)
    if blocking:
        raise RefusedError(f"pull request #{number} has changes requested by {', '.join(sorted(blocking))}")
    if not approved:
        raise RefusedError(
            f"pull request #{number} was merged without an approval: {env.name} stays where it is"
        )
    repo.fetch(remote, env.deploy_branch)
    current = repo.rev(f"{remote}/{env.deploy_branch}")
    paths = [str(env.overlay), *SHARED_INPUTS]
    touching = repo.commits_touching(f"{current}..{sha}", paths)
    unreviewed = [c for c in touching if c not in github.pull_commits(number) | {sha}]
    if unreviewed:
        raise RefusedError(
            f"{len(unreviewed)} commit(s) since {env.deploy_branch} changed what {env.name} renders without "
            f"review ({', '.join(c[:10] for c in unreviewed[:5])}): bring them through a pull request"
        )
    if not dry_run:
        repo.push(remote, sha, env.deploy_branch)  # a fast-forward: the ruleset forbids anything else
    return DeployDecision(
        env.name, env.deploy_branch, sha, number, not dry_run, f"approved by {', '.join(sorted(approved))}"
    )
