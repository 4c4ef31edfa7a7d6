"""The sources: app image tags only in the overlays' images:, promotion.yaml agreeing with them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from ..config import Config
from ..images import malformed
from .facts import K3D_CONFIG
from .report import Report


def check_image_tags_in_sources(root: Path, cfg: Config, report: Report) -> None:
    """App image tags appear only in `images:` of overlays/<env>/kustomization.yaml."""
    allowed = {root / env.kustomization for env in cfg.environments}
    pattern = re.compile("|".join(re.escape(c.image) + r"[:@][A-Za-z0-9_]" for c in cfg.components))
    for path in _yaml_files(root):
        if path in allowed:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if pattern.search(line.split("#", 1)[0]):
                report.add(
                    "images",
                    f"{path.relative_to(root)}:{number}",
                    "names an app image tag outside the overlays' images:",
                )
    for env in cfg.environments:
        for path in (root / env.overlay).rglob("*.y*ml"):
            if path != root / env.kustomization and b"newTag" in path.read_bytes():
                report.add(
                    "images",
                    str(path.relative_to(root)),
                    "sets newTag: tags belong in the aggregate kustomization",
                    env.name,
                )


def check_promotion_config(root: Path, cfg: Config, report: Report) -> None:
    """Every component of promotion.yaml has a tagged images: entry in every environment's overlay
    (or wealist-promote could not promote it there)."""
    from ..errors import ConfigError
    from ..kustomization import read_images

    for env in cfg.environments:
        try:
            images = read_images(
                (root / env.kustomization).read_text(encoding="utf-8"), str(env.kustomization)
            )
        except UnicodeDecodeError:
            report.add("promotion.yaml", str(env.kustomization), "is not UTF-8 text", env.name)
            continue
        except (OSError, ConfigError) as exc:
            report.add("promotion.yaml", str(env.kustomization), str(getattr(exc, "message", exc)), env.name)
            continue
        for comp in cfg.components:
            entry = images.get(comp.image)
            if entry is None or entry.ref is None:
                report.add(
                    "promotion.yaml",
                    str(env.kustomization),
                    f"no tagged images: entry for {comp.image}",
                    env.name,
                )
            elif malformed(entry.ref):
                why = malformed(entry.ref)
                report.add("images", str(env.kustomization), f"{comp.image}: {why}", env.name)
            elif not qualified(entry.rendered_name):
                report.add(
                    "images",
                    str(env.kustomization),
                    f"{entry.rendered_name} names no registry, so it resolves to Docker Hub (where anyone "
                    "may publish it): set newName to the registry the cluster pulls from",
                    env.name,
                )


def qualified(name: str) -> bool:
    """Whether an image name starts with a registry host (a dot, a port, or localhost)."""
    first, sep, _ = name.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def _yaml_files(root: Path) -> Iterable[Path]:
    for directory in ("base", "overlays", "argocd"):
        yield from sorted((root / directory).rglob("*.y*ml"))


def check_local_cluster(root: Path, schema: Path | None, report: Report) -> None:
    """The k3d config against k3d's own schema, which rejects unknown keys (a typo fails)."""
    import json

    import jsonschema
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    from ..yamlerrors import describe_yaml_error, too_deep

    config_path = root / K3D_CONFIG
    if schema is None or not config_path.is_file():
        return
    try:
        text = config_path.read_text(encoding="utf-8")
        problem = too_deep(text)
        config = None if problem else YAML(typ="safe").load(text)
    except UnicodeDecodeError:
        problem = "is not UTF-8 text"
    except YAMLError as exc:
        problem = f"is not valid YAML: {describe_yaml_error(exc)}"
    if problem:
        report.add("local-cluster", K3D_CONFIG, problem)
        return
    validator = jsonschema.Draft7Validator(json.loads(schema.read_text(encoding="utf-8")))
    for error in validator.iter_errors(config):
        at = "/".join(str(p) for p in error.absolute_path)
        report.add("local-cluster", K3D_CONFIG, f"{error.message} at /{at}")


def check_freezes(root: Path, cfg: Config, report: Report) -> None:
    """Every record under freezes/ names an environment and reads (reason, optional until)."""
    from ..errors import WealistError
    from ..freeze import FREEZES, parse_record

    envs = {e.name for e in cfg.environments}
    for path in sorted((root / FREEZES).glob("*")):
        source = str(path.relative_to(root))
        if path.suffix != ".yaml" or path.stem not in envs:
            report.add("freezes", source, f"is not <environment>.yaml for one of {', '.join(sorted(envs))}")
            continue
        try:
            parse_record(path.read_text(encoding="utf-8"), source)
        except UnicodeDecodeError:
            report.add("freezes", source, "is not UTF-8 text")
        except WealistError as exc:
            report.add("freezes", source, exc.message)
