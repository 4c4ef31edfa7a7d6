"""The command line: the ``wealist`` group and ``wealist-promote``. Each command lives in
``commands/`` (it parses, calls one core function, prints); shared options are in ``options.py``.

Heavy modules (GitPython, ruamel.yaml, cryptography, the schema validators) are imported inside
the commands, so ``--help`` and shell completion stay instant.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import click

from .commands.deploy import deploy_approved_cmd
from .commands.freeze import freeze_cmd, unfreeze_cmd
from .commands.history import history_cmd, status_cmd
from .commands.pr_comment import pr_comment_cmd
from .commands.promote import promote_cmd, rollback_cmd
from .commands.rehearse import rehearse_cmd
from .commands.render import diff_cmd, render_cmd
from .commands.seal import seal_cmd
from .commands.validate import validate_cmd
from .options import debugging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="wealist")
def cli() -> None:
    """weAlist GitOps: environments change only through validated git commits."""


for command in (
    promote_cmd,
    rollback_cmd,
    status_cmd,
    history_cmd,
    render_cmd,
    diff_cmd,
    validate_cmd,
    rehearse_cmd,
    deploy_approved_cmd,
    pr_comment_cmd,
    seal_cmd,
    freeze_cmd,
    unfreeze_cmd,
):
    cli.add_command(command)


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
        if debugging() or os.environ.get("WEALIST_DEBUG"):
            raise
        click.echo(
            mask(f"Error: unexpected {type(exc).__name__}: {exc} (rerun with --debug for details)"), err=True
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _masked(run: Callable[[], None]) -> None:
    """Run with stdout and stderr behind the mask (a result line may carry a URL with credentials)."""
    from .masking import MaskingStream

    sys.stdout, sys.stderr = MaskingStream(sys.stdout), MaskingStream(sys.stderr)
    run()


def main() -> None:
    """The ``wealist`` command."""
    _masked(lambda: _run(cli, "wealist"))


def promote_main() -> None:
    """The ``wealist-promote`` command (= ``wealist promote``)."""
    _masked(lambda: _run(promote_cmd, "wealist-promote"))
