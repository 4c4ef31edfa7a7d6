"""Options shared by several commands, defined once (and the --debug switch they all have)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

_debug = False


def debugging() -> bool:
    """Whether --debug was given: unexpected errors then show their traceback."""
    return _debug


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
            click.option(
                "--no-verify-image",
                "no_verify_image",
                is_flag=True,
                help="Do not ask the registry whether the images exist (the commit records it). "
                "Also WEALIST_NO_VERIFY_IMAGE=1.",
            ),
        ]
    ):
        func = decorator(func)
    return func


def wait_options(func: F) -> F:
    """--wait and --timeout, shared by promote and rollback: follow Argo CD afterwards."""
    func = click.option(
        "--timeout",
        "wait_timeout",
        default="10m",
        show_default=True,
        metavar="DURATION",
        help="How long --wait waits (90s, 10m, 1h).",
    )(func)
    return click.option(
        "--wait",
        is_flag=True,
        help="Afterwards, follow Argo CD until the environment runs it healthy (after the merge, "
        "for a pull request); exit 1 if it fails, 3 on timeout.",
    )(func)
