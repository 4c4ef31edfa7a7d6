"""validate: every invariant of the rendered environments."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..options import common_options, format_option
from ..output import color


@click.command("validate")
@common_options
@click.option(
    "--crds",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    envvar="WEALIST_CRDS",
    help="Check argocd/ against the CRDs in this directory (kubectl get crd applications.argoproj.io ... "
    "-o yaml) instead of the pinned ones validate fetches and caches. Also WEALIST_CRDS.",
)
@click.option(
    "--strict", is_flag=True, help="A check skipped for lack of schemas (offline, no cache) is a failure."
)
@format_option
def validate_cmd(repo: Path, crds: Path | None, strict: bool, fmt: str) -> None:
    """Render every environment as each cluster of the fleet gets it and check every invariant
    the README lists (schemas, namespaces, workloads, network, waves, secrets, Argo CD); exit 1 on
    any finding."""
    from ..errors import ValidationFailed
    from ..validate import validate

    report = validate(repo, crds, strict)
    if fmt == "json":
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        for env, count in report.objects.items():
            click.echo(f"{env}: {count} objects rendered and checked")
        click.echo(f"argocd: {report.argocd_documents} documents checked")
        for skipped in report.skipped:
            click.echo(click.style(f"skipped: {skipped}", fg="yellow"), color=color())
        for finding in report.findings:
            click.echo(click.style(f"FAIL {finding}", fg="red"), color=color())
        if report.ok:
            click.echo(click.style("All checks passed.", fg="green"), color=color())
    if not report.ok:
        raise ValidationFailed(f"{len(report.findings)} problem(s) found")
