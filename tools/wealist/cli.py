"""The command line: each command parses, calls one core function, prints.

Heavy modules (GitPython, ruamel.yaml, cryptography, the schema validators) are imported inside
the commands, so ``--help`` and shell completion stay instant.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from .delivery import PromotionResult
    from .history import ManualChange, Promotion, Status

F = TypeVar("F", bound=Callable[..., Any])

_debug = False


def _set_debug(_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    global _debug
    _debug = _debug or value


def debug_option(func: F) -> F:
    return click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_debug,
        help="Show tracebacks of unexpected errors.",
    )(func)


def common_options(func: F) -> F:
    """--repo and --debug, shared by every command that works on the repository."""
    return click.option(
        "--repo",
        "repo",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        default=".",
        show_default="the git top level of the working directory",
        help="The GitOps repository.",
    )(debug_option(func))


def format_option(func: F) -> F:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Output for people or for scripts.",
    )(func)


def complete_names(kind: str) -> Callable[[click.Context, click.Parameter, str], list[str]]:
    """Shell completion of environment or component names, read from promotion.yaml."""

    def complete(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
        from .config import load_config
        from .errors import WealistError
        from .gitrepo import GitRepo

        try:
            cfg = load_config(GitRepo(ctx.params.get("repo") or Path(".")).root)
        except WealistError:
            return []
        names = [e.name for e in cfg.environments] if kind == "env" else [c.name for c in cfg.components]
        return [n for n in names if n.startswith(incomplete)]

    return complete


def env_option(
    required: bool = True, help_text: str = "Environment (from promotion.yaml)."
) -> Callable[[F], F]:
    return click.option(
        "--env", "env", required=required, metavar="ENV", help=help_text, shell_complete=complete_names("env")
    )


def delivery_options(func: F) -> F:
    """Options shared by promote and rollback: how the change is delivered."""
    for decorator in reversed(
        [
            click.option(
                "--component",
                "components",
                multiple=True,
                metavar="NAME",
                shell_complete=complete_names("component"),
                help="Only this component (repeatable; default: all in promotion.yaml).",
            ),
            click.option("-m", "--message", help="Why: goes into the commit body."),
            click.option(
                "--dry-run", is_flag=True, help="Print the plan and the rendered diff; change nothing."
            ),
            click.option(
                "--push", is_flag=True, help="Push the commit (direct delivery); retries if the remote moved."
            ),
            click.option(
                "--delivery",
                type=click.Choice(["direct", "pull-request"]),
                help="Override promotion.yaml: commit here, or branch + pull request.",
            ),
        ]
    ):
        func = decorator(func)
    return func


def _table(rows: Sequence[tuple[str, ...]], indent: str = "") -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo(indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _log(message: str) -> None:
    from .masking import mask

    click.echo(mask(message), err=True)


def _color() -> bool | None:
    return False if os.environ.get("NO_COLOR") else None  # None: Click decides by the terminal


def _echo_diff(diff: str) -> None:
    for line in diff.splitlines():
        style = (
            {"+": "green", "-": "red", "@": "cyan"}.get(line[:1])
            if not line.startswith(("+++", "---"))
            else None
        )
        click.echo(click.style(line, fg=style) if style else line, color=_color())


def _print_result(result: PromotionResult, fmt: str, dry_run: bool, push: bool) -> None:
    from .images import show

    plan = result.plan
    assert plan is not None
    if fmt == "json":
        click.echo(json.dumps(result.as_json(dry_run), indent=2))
        return
    if not plan.changes:
        click.echo(
            f"Nothing to do: {plan.env.name} already runs "
            + ", ".join(f"{name}" for name in plan.unchanged)
            + " at the requested version."
        )
        return
    rows = [("COMPONENT", "FROM", "TO", "WHY ALLOWED")] + [
        (
            c.component,
            show(c.old),
            c.new.short(),
            c.evidence
            or ("rollback" if plan.rollback_of else "first environment" if not plan.forced else "--force"),
        )
        for c in plan.changes
    ]
    head = "Would" if dry_run else "Plan:"
    click.echo(
        f"{head} {'roll back' if plan.rollback_of else 'promote'} {plan.env.name} "
        f"({plan.delivery}) on {plan.head[:10]}:"
    )
    _table(rows, indent="  ")
    for reason in plan.forced:
        click.echo(click.style(f"  forced: {reason}", fg="yellow"), color=_color())
    if plan.unchanged:
        click.echo(f"  unchanged: {', '.join(plan.unchanged)}")
    if result.diff:
        _echo_diff(result.diff)
    if dry_run:
        if plan.delivery == "pull-request":
            click.echo(
                f"Dry run: would commit {plan.path} on a new branch {plan.branch_name()} (git worktree, "
                "git commit), git push it and open a pull request; nothing changed. Planned on HEAD: the "
                "real run fetches and plans on the remote branch."
            )
        else:
            pushing = " and git push" if push else ""
            click.echo(f"Dry run: would change {plan.path} and run git commit{pushing}; nothing changed.")
        return
    for note in result.notes:
        _log(note)
    if result.commit:
        where = f" on {result.branch}" if result.branch else ""
        click.echo(f"Committed {result.commit[:10]}{where}: {plan.subject()}")
    if result.pushed:
        click.echo(f"Pushed {result.branch}.")
    if result.pull_request:
        click.echo(f"Pull request: {result.pull_request}")
    elif result.compare_url:
        click.echo(f"Open a pull request: {result.compare_url}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="wealist")
def cli() -> None:
    """weAlist GitOps: environments change only through validated git commits."""


@cli.command("promote")
@common_options
@env_option(help_text="Environment to change.")
@click.option("--tag", metavar="TAG", help="Set this tag (TAG or TAG@sha256:<digest>).")
@click.option(
    "--from",
    "source_env",
    metavar="ENV",
    shell_complete=complete_names("env"),
    help="Copy exactly what ENV runs now (tag and digest).",
)
@click.option(
    "--force", is_flag=True, help="Promote even if the previous environment never ran it (recorded)."
)
@delivery_options
@format_option
def promote_cmd(
    repo: Path,
    env: str,
    tag: str | None,
    source_env: str | None,
    force: bool,
    components: tuple[str, ...],
    message: str | None,
    dry_run: bool,
    push: bool,
    delivery: str | None,
    fmt: str,
) -> None:
    """Promote image tags to an environment through a git commit (or a pull request)."""
    from .plan import PromotionRequest
    from .promote import promote

    request = PromotionRequest(
        env=env,
        tag=tag,
        source_env=source_env,
        components=components,
        force=force,
        message=message,
        dry_run=dry_run,
        push=push,
        delivery=delivery,
    )
    result = promote(repo, request, _log)
    _print_result(result, fmt, dry_run, push)


@cli.command("rollback")
@common_options
@env_option(help_text="Environment to roll back.")
@click.option(
    "--to",
    "to",
    metavar="TAG",
    help="Go back to this tag (it must have run in ENV before). Default: undo the last promotion of ENV.",
)
@delivery_options
@format_option
def rollback_cmd(
    repo: Path,
    env: str,
    to: str | None,
    components: tuple[str, ...],
    message: str | None,
    dry_run: bool,
    push: bool,
    delivery: str | None,
    fmt: str,
) -> None:
    """Return an environment to an earlier state with a new commit (history is never rewritten)."""
    from .plan import PromotionRequest
    from .rollback import rollback

    request = PromotionRequest(
        env=env, components=components, message=message, dry_run=dry_run, push=push, delivery=delivery
    )
    result = rollback(repo, request, to, _log)
    _print_result(result, fmt, dry_run, push)


@cli.command("status")
@common_options
@format_option
def status_cmd(repo: Path, fmt: str) -> None:
    """What every environment runs, and which one lags which."""
    from .config import load_config
    from .gitrepo import GitRepo
    from .history import status

    git = GitRepo(repo)
    result = status(git, load_config(git.root))
    if fmt == "json":
        click.echo(json.dumps(result.as_json(), indent=2))
        return
    _print_status(result)


def _print_status(result: Status) -> None:
    from .images import show

    rows = [("COMPONENT", *result.environments)] + [
        (
            comp,
            *(show(result.running[env][comp]) for env in result.environments),
        )
        for comp in result.components
    ]
    _table(rows)
    for lag in result.lags:
        click.echo(click.style(lag, fg="yellow"), color=_color())
    if not result.lags:
        click.echo("All environments run the same versions.")


@cli.command("history")
@common_options
@env_option(required=False, help_text="Only this environment.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Newest N promotions."
)
@format_option
def history_cmd(repo: Path, env: str | None, limit: int, fmt: str) -> None:
    """Every change to the environments, from git alone: promotions (read from their trailers) and
    any commit that edited an overlay's kustomization.yaml by other means, flagged as manual."""
    from .config import load_config
    from .gitrepo import GitRepo
    from .history import ManualChange, audit_log
    from .images import show

    git = GitRepo(repo)
    entries = audit_log(git, load_config(git.root), env=env, limit=limit)
    if fmt == "json":
        click.echo(json.dumps([_history_json(p) for p in entries], indent=2))
        return
    if not entries:
        click.echo("No changes to the environments yet.")
    for p in entries:
        when = p.date[:16].replace("T", " ")
        if isinstance(p, ManualChange):
            warning = f"manual edit, not via wealist: {p.subject!r}"
            click.echo(
                f"{p.sha[:10]}  {when}  {','.join(p.envs):<6} "
                + click.style(warning, fg="yellow")
                + f"  — {p.author}",
                color=_color(),
            )
            continue
        images = ", ".join(
            f"{comp} {show(p.previous.get(comp))} → {ref.short()}" for comp, ref in p.images.items()
        )
        extra = f" from {p.source_env}" if p.source_env else ""
        extra += " (rollback)" if p.rollback_of else ""
        extra += " (forced)" if p.forced else ""
        click.echo(f"{p.sha[:10]}  {when}  {p.env:<6} {images}{extra}  — {p.author}")


def _history_json(p: Promotion | ManualChange) -> dict[str, object]:
    from .history import ManualChange

    if isinstance(p, ManualChange):
        base = {"commit": p.sha, "author": p.author, "date": p.date, "subject": p.subject}
        return {**base, "manual": True, "envs": list(p.envs)}
    return {
        "manual": False,
        "commit": p.sha,
        "author": p.author,
        "date": p.date,
        "env": p.env,
        "subject": p.subject,
        "images": {k: str(v) for k, v in p.images.items()},
        "previous": {k: (str(v) if v else None) for k, v in p.previous.items()},
        "source_env": p.source_env,
        "forced": list(p.forced),
        "rollback_of": p.rollback_of,
    }


@cli.command("render")
@common_options
@env_option()
@click.option(
    "--cluster",
    metavar="NAME",
    help="As Argo CD renders it for this cluster of promotion.yaml (with its flavour's component).",
)
def render_cmd(repo: Path, env: str, cluster: str | None) -> None:
    """Print the environment's rendered manifests (work tree, uncommitted edits included)."""
    from .review import render_env

    click.echo(render_env(repo, env, cluster), nl=False)


@cli.command("diff")
@common_options
@env_option()
@click.option("--base", default="HEAD", show_default=True, help="Compare the work tree with this ref.")
@click.option("--against", "against", metavar="ENV", help="Instead: what promoting --from ENV would change.")
def diff_cmd(repo: Path, env: str, base: str, against: str | None) -> None:
    """Rendered difference, for review (unified diff; empty when nothing differs)."""
    from .review import diff_against_env, diffs_against_ref

    diff = diff_against_env(repo, env, against) if against else diffs_against_ref(repo, [env], base)[env]
    _echo_diff(diff)


@cli.command("validate")
@common_options
@click.option(
    "--crds",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    envvar="WEALIST_CRDS",
    help="Directory of Argo CD CRDs (kubectl get crd applications.argoproj.io ... -o yaml) to check argocd/ "
    "against. Also WEALIST_CRDS.",
)
@format_option
def validate_cmd(repo: Path, crds: Path | None, fmt: str) -> None:
    """Render every environment and check every SPEC invariant; exit 1 on any finding."""
    from .errors import ValidationFailed
    from .validate import validate

    report = validate(repo, crds)
    if fmt == "json":
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        for env, count in report.objects.items():
            click.echo(f"{env}: {count} objects rendered and checked")
        click.echo(f"argocd: {report.argocd_documents} documents checked")
        for skipped in report.skipped:
            click.echo(click.style(f"skipped: {skipped}", fg="yellow"), color=_color())
        for finding in report.findings:
            click.echo(click.style(f"FAIL {finding}", fg="red"), color=_color())
        if report.ok:
            click.echo(click.style("All checks passed.", fg="green"), color=_color())
    if not report.ok:
        raise ValidationFailed(f"{len(report.findings)} problem(s) found")


@cli.command("rehearse")
@common_options
@env_option(help_text="Environment to rehearse.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Seconds a command may run before it counts as hanging (an init container's wait loop).",
)
@format_option
def rehearse_cmd(repo: Path, env: str, timeout: float, fmt: str) -> None:
    """Start the environment for real, without a cluster: a real PostgreSQL as the StatefulSet
    describes it, then every command of every container, probe, hook and CronJob that can run
    here, as Kubernetes would run it (needs root and the PostgreSQL server programs)."""
    from .errors import RehearsalFailed
    from .rehearse import rehearse

    report = rehearse(repo, env, timeout, _log)
    if fmt == "json":
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        for step in report.steps:
            mark = click.style("ok  ", fg="green") if step.ok else click.style("FAIL", fg="red")
            click.echo(f"{mark} {step.name}: {step.detail} ({step.seconds:.1f} s)", color=_color())
        for skipped in report.skipped:
            click.echo(f"note: {skipped}")
    if not report.ok:
        raise RehearsalFailed(f"{len(report.failures)} step(s) failed: {env} would not start as rendered")


@cli.command("deploy-approved")
@common_options
@env_option(help_text="Environment whose deploy branch to move (promotion.yaml deploy-branch).")
@click.option("--commit", default="HEAD", show_default=True, help="The commit just pushed to main.")
@click.option("--dry-run", is_flag=True, help="Check, but do not push the deploy branch.")
def deploy_approved_cmd(repo: Path, env: str, commit: str, dry_run: bool) -> None:
    """For CI on every push to main: move ENV's deploy branch to COMMIT if it is the merge of an
    approved pull request (a direct push leaves it where it is). Needs GITHUB_TOKEN."""
    from .deploy import advance

    decision = advance(repo, env, commit, dry_run=dry_run)
    if decision.pull_request is None:
        click.echo(f"{decision.commit[:10]} is {decision.reason}: {decision.branch} stays where it is.")
        return
    verb = "Moved" if decision.moved else "Would move"
    click.echo(
        f"{verb} {decision.branch} to {decision.commit[:10]} (pull request #{decision.pull_request}, "
        f"{decision.reason})."
    )


@cli.command("pr-comment")
@common_options
@click.option("--base", required=True, help="The ref the pull request merges into (e.g. origin/main).")
@click.option("--pull-request", "number", type=click.IntRange(min=1), required=True, help="Its number.")
def pr_comment_cmd(repo: Path, base: str, number: int) -> None:
    """Comment (or update the comment with) the rendered diff of each environment a pull request touches.

    For the repository's CI; needs GITHUB_TOKEN.
    """
    from .pr_comment import post

    click.echo(post(repo, base, number))


@cli.command("seal")
@click.option(
    "--cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The controller's public certificate (kubeseal --fetch-cert).",
)
@click.option(
    "--cluster",
    metavar="NAME",
    help="Seal for this cluster of promotion.yaml (its sealing-cert); instead of --cert.",
)
@click.option(
    "--repo",
    "repo",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    show_default="the git top level of the working directory",
    help="The GitOps repository (for --cluster).",
)
@click.option("--namespace", required=True, help="Namespace of the Secret.")
@click.option("--name", required=True, help="Name of the Secret.")
@click.option("--from-literal", "literals", multiple=True, metavar="KEY=VALUE", help="A value (repeatable).")
@click.option("--from-file", "files", multiple=True, metavar="KEY=PATH", help="A value read from a file.")
@click.option(
    "--scope",
    type=click.Choice(["strict", "namespace-wide", "cluster-wide"]),
    default="strict",
    show_default=True,
    help="Where the controller may decrypt it.",
)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout."
)
@debug_option
def seal_cmd(
    cert: Path | None,
    cluster: str | None,
    repo: Path,
    namespace: str,
    name: str,
    literals: tuple[str, ...],
    files: tuple[str, ...],
    scope: str,
    output: Path | None,
) -> None:
    """Seal a Secret for the sealed-secrets controller (values are never printed or logged).

    The SealedSecret records the fingerprint of the key it was sealed for (wealist.io/sealed-for),
    so validate can tell on which cluster it opens."""
    from .files import write_if_changed
    from .seal import SealRequest, cluster_cert, parse_pairs, seal, to_yaml

    if (cert is None) == (cluster is None):
        from .errors import UsageError

        raise UsageError("give exactly one of --cert PEM or --cluster NAME")
    if cluster is not None:
        cert = cluster_cert(repo, cluster)
    assert cert is not None
    request = SealRequest(namespace=namespace, name=name, data=parse_pairs(literals, files), scope=scope)
    target = f"cluster {cluster}" if cluster else cert.name
    text = to_yaml(seal(cert, request), header=f"Sealed with wealist seal for {target}; {scope} scope.")
    if output is None:
        click.echo(text, nl=False)
    else:
        write_if_changed(output, text)
        keys = ", ".join(sorted(request.data))
        _log(f"wrote {output}: SealedSecret {namespace}/{name} ({keys}; {scope} scope)")


def _run(command: click.Command, prog_name: str) -> None:
    """Run a command; every failure ends as one ``Error:`` line on stderr with its exit code.

    Click's own usage errors would print the usage banner and a hint around the message; a script
    and a person both read one line better.
    """
    from .errors import WealistError
    from .masking import mask

    try:
        code = command.main(prog_name=prog_name, standalone_mode=False)
    except (click.ClickException, WealistError) as exc:
        click.echo(mask(f"Error: {exc.format_message()}"), err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Error: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # an unexpected failure: one line unless --debug
        if _debug or os.environ.get("WEALIST_DEBUG"):
            raise
        click.echo(
            mask(f"Error: unexpected {type(exc).__name__}: {exc} (rerun with --debug for details)"), err=True
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def main() -> None:
    _run(cli, "wealist")


def promote_main() -> None:
    _run(promote_cmd, "wealist-promote")
