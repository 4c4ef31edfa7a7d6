"""validate: every invariant of the rendered environments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
    from ..gitrepo import find_work_tree
    from ..render import find_renderer
    from ..validatecache import enabled, key, load, store

    found = find_work_tree(repo)
    root = found[0] if found else None
    cache_key = (
        key(root, crds, strict, find_renderer().identity()) if root is not None and enabled() else None
    )
    data = load(root, cache_key) if root is not None and cache_key else None
    if data is None:
        from ..validate import validate

        data = validate(repo, crds, strict).as_json()
        if root is not None and cache_key:
            store(root, cache_key, data)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        _print_report(data)
    if not data["ok"]:
        raise ValidationFailed(f"{len(data['findings'])} problem(s) found")


def _print_report(data: dict[str, Any]) -> None:
    for env, count in data["objects"].items():
        click.echo(f"{env}: {count} objects rendered and checked")
    click.echo(f"argocd: {data['argocd_documents']} documents checked")
    for skipped in data["skipped"]:
        click.echo(click.style(f"skipped: {skipped}", fg="yellow"), color=color())
    for f in data["findings"]:
        where = f"[{f['env']}] " if f["env"] else ""
        click.echo(
            click.style(f"FAIL {where}{f['check']}: {f['subject']}: {f['message']}", fg="red"), color=color()
        )
    if data["ok"]:
        click.echo(click.style("All checks passed.", fg="green"), color=color())
