"""seal: a SealedSecret, sealed locally for a cluster's key."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import common_options
from ..output import log


@click.command("seal")
@common_options
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
    from ..files import write_if_changed
    from ..seal import SealRequest, cluster_cert, parse_pairs, seal, to_yaml

    if (cert is None) == (cluster is None):
        from ..errors import UsageError

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
        log(f"wrote {output}: SealedSecret {namespace}/{name} ({keys}; {scope} scope)")
