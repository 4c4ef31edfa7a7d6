"""promotion.yaml: environments in promotion order, promotable components, review policy, forge."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, UsageError

if TYPE_CHECKING:
    from .registry import Endpoint

CONFIG_FILE = "promotion.yaml"
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_BRANCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?")
DELIVERIES = ("direct", "pull-request")


@dataclass(frozen=True)
class Environment:
    """One environment of promotion.yaml, in promotion order."""

    name: str
    delivery: str
    deploy_branch: str | None = None  # the branch its Argo CD Applications follow, if not main
    # (component, namespace) for every component of the manifests: each lives in its own
    namespaces: tuple[tuple[str, str], ...] = ()
    pin: str = "tag"  # "digest": the overlay records the digest the registry gave for the tag

    def namespace(self, component: str) -> str:
        """The namespace ``component`` lives in, in this environment."""
        return dict(self.namespaces).get(component, f"{component}-{self.name}")

    @property
    def all_namespaces(self) -> set[str]:
        return {ns for _, ns in self.namespaces}

    @property
    def overlay(self) -> PurePosixPath:
        """The overlay directory, relative to the repository root (posix, as git names it)."""
        return PurePosixPath("overlays") / self.name

    @property
    def kustomization(self) -> PurePosixPath:
        """The one file that holds this environment's app image tags."""
        return self.overlay / "kustomization.yaml"


@dataclass(frozen=True)
class Component:
    """A promotable app image: its name in the base manifests and the overlays' ``images:``."""

    name: str
    image: str


@dataclass(frozen=True)
class Cluster:
    """A cluster of the Argo CD fleet: what its cluster Secret's labels say it runs."""

    name: str
    environment: str
    flavour: str  # components/clusters/<flavour>
    sealing_cert: PurePosixPath | None  # its sealed-secrets controller's certificate

    @property
    def component(self) -> PurePosixPath:
        return PurePosixPath("components") / "clusters" / self.flavour


@dataclass(frozen=True)
class Forge:
    """Where pull requests are opened (GitHub's REST API)."""

    type: str
    repository: str  # owner/name


@dataclass(frozen=True)
class RegistryAddress:
    """Where this machine reaches a registry that the cluster knows by another name (k3d's
    registry is k3d-wealist-registry:5000 inside the cluster, localhost:5001 outside)."""

    host: str  # as image names in the overlays spell it
    address: str  # host[:port] to connect to from here
    plain_http: bool = False  # only for registries listed as such


@dataclass(frozen=True)
class Config:
    """promotion.yaml, parsed and checked."""

    environments: tuple[Environment, ...]
    components: tuple[Component, ...]
    forge: Forge | None
    clusters: tuple[Cluster, ...] = ()
    registries: tuple[RegistryAddress, ...] = ()
    argocd_server: str | None = None  # the health gate asks it; None: the git history guard alone

    def applications(self, env: Environment) -> list[str]:
        """The Argo CD Applications that run ``env``: one per cluster of the fleet, named as the
        ApplicationSets in argocd/apps name them (wealist-<env>-<cluster>)."""
        return [f"wealist-{env.name}-{c.name}" for c in self.clusters if c.environment == env.name]

    def env(self, name: str) -> Environment:
        for env in self.environments:
            if env.name == name:
                return env
        known = ", ".join(e.name for e in self.environments)
        raise UsageError(f"unknown environment {name!r} (promotion.yaml has: {known})")

    def previous(self, env: Environment) -> Environment | None:
        """The environment before ``env`` in promotion order, or None for the first."""
        index = self.environments.index(env)
        return self.environments[index - 1] if index > 0 else None

    def component(self, name: str) -> Component:
        for comp in self.components:
            if comp.name == name:
                return comp
        known = ", ".join(c.name for c in self.components)
        raise UsageError(f"unknown component {name!r} (promotion.yaml has: {known})")

    def cluster(self, name: str) -> Cluster:
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        known = ", ".join(c.name for c in self.clusters) or "none"
        raise UsageError(f"unknown cluster {name!r} (promotion.yaml has: {known})")

    def endpoints(self) -> dict[str, Endpoint]:
        """Registry host (as image names spell it) -> where this machine reaches it."""
        from .registry import Endpoint

        return {r.host: Endpoint(r.address, r.plain_http) for r in self.registries}

    def select(self, names: tuple[str, ...]) -> tuple[Component, ...]:
        """The named components in promotion.yaml order; all of them when none is named."""
        if not names:
            return self.components
        wanted = {self.component(n).name for n in names}
        return tuple(c for c in self.components if c.name in wanted)


def parse_config(text: str, source: str = CONFIG_FILE) -> Config:
    """promotion.yaml's text as a Config; anything malformed is one ConfigError naming the field."""
    data = _load(text, source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a mapping")
    prefixes = data.get("namespaces")
    if (
        not isinstance(prefixes, dict)
        or not prefixes
        or not all(isinstance(v, str) and _NAME.fullmatch(v) for v in prefixes.values())
    ):
        raise ConfigError(f"{source}: namespaces must map each component to a lowercase namespace prefix")
    envs = [_environment(raw, prefixes, source) for raw in _list(data, "environments", source)]
    if len({e.name for e in envs}) != len(envs):
        raise ConfigError(f"{source}: environment names must be unique")
    comps_raw = data.get("components")
    if not isinstance(comps_raw, dict) or not comps_raw:
        raise ConfigError(f"{source}: components must be a non-empty mapping")
    comps = tuple(
        Component(name=str(name), image=_str(body, "image", f"{source}: components.{name}"))
        for name, body in comps_raw.items()
    )
    forge = _forge(data["forge"], source) if "forge" in data else None
    clusters = tuple(_cluster(raw, envs, source) for raw in _list(data, "clusters", source, required=False))
    if len({c.name for c in clusters}) != len(clusters):
        raise ConfigError(f"{source}: cluster names must be unique")
    registries = _registries(data.get("registries"), source)
    return Config(
        environments=tuple(envs),
        components=comps,
        forge=forge,
        clusters=clusters,
        registries=registries,
        argocd_server=_argocd(data.get("argocd"), source),
    )


def _argocd(raw: Any, source: str) -> str | None:
    if raw is None:
        return None
    # The token goes to this server: TLS, except to this machine itself (a port-forward, the tests).
    if not (
        isinstance(raw, dict)
        and set(raw) == {"server"}
        and str(raw["server"]).startswith(("https://", "http://127.0.0.1:", "http://localhost:"))
    ):
        raise ConfigError(
            f"{source}: argocd must be a mapping with server: https://<your Argo CD> "
            "(plain http only to 127.0.0.1 or localhost)"
        )
    return str(raw["server"])


def _registries(raw: Any, source: str) -> tuple[RegistryAddress, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: registries must map a registry host to its address and protocol")
    found = []
    for host, body in raw.items():
        where = f"{source}: registries.{host}"
        if not isinstance(body, dict) or set(body) - {"address", "plain-http"}:
            raise ConfigError(f"{where} must be a mapping with address and plain-http only")
        address = body.get("address", host)
        plain = body.get("plain-http", False)
        if not isinstance(address, str) or not _HOST.fullmatch(address) or not isinstance(plain, bool):
            raise ConfigError(f"{where}: address must be host[:port] and plain-http true or false")
        found.append(RegistryAddress(str(host), address, plain))
    return tuple(found)


def _environment(raw: dict[str, Any], prefixes: dict[str, str], source: str) -> Environment:
    name = _str(raw, "name", f"{source}: environments[]")
    # It becomes a directory (overlays/<name>), part of namespace names and of branch names.
    if not _NAME.fullmatch(name) or len(name) > 30:
        raise ConfigError(
            f"{source}: environment name {name!r} must be a lowercase DNS label (a-z, 0-9, '-'; up to 30)"
        )
    delivery = raw.get("delivery", "direct")
    if delivery not in DELIVERIES:
        raise ConfigError(f"{source}: environment {name}: delivery must be one of {', '.join(DELIVERIES)}")
    deploy_branch = raw.get("deploy-branch")
    if deploy_branch is not None and not (
        isinstance(deploy_branch, str) and _BRANCH.fullmatch(deploy_branch)
    ):
        raise ConfigError(f"{source}: environment {name}: deploy-branch must be a branch name")
    namespaces = tuple((str(c), f"{prefix}-{name}") for c, prefix in prefixes.items())
    pin = raw.get("pin", "tag")
    if pin not in ("tag", "digest"):
        raise ConfigError(f"{source}: environment {name}: pin must be tag or digest")
    return Environment(name, delivery, deploy_branch, namespaces, pin)


def _forge(raw: Any, source: str) -> Forge:
    forge_type = _str(raw, "type", f"{source}: forge")
    if forge_type != "github":
        raise ConfigError(f"{source}: forge.type {forge_type!r} is not supported (github is)")
    repository = _str(raw, "repository", f"{source}: forge")
    if repository.count("/") != 1:
        raise ConfigError(f"{source}: forge.repository must be owner/name")
    return Forge(type=forge_type, repository=repository)


def _cluster(raw: dict[str, Any], envs: list[Environment], source: str) -> Cluster:
    where = f"{source}: clusters[]"
    name = _str(raw, "name", where)
    environment = _str(raw, "environment", f"{where} {name}")
    if environment not in {e.name for e in envs}:
        raise ConfigError(f"{where} {name}: environment {environment!r} is not one of the environments")
    flavour = _str(raw, "flavour", f"{where} {name}")
    if not _NAME.fullmatch(flavour):
        raise ConfigError(f"{where} {name}: flavour {flavour!r} must be a lowercase name")
    cert = raw.get("sealing-cert")
    if cert is not None and (not isinstance(cert, str) or PurePosixPath(cert).is_absolute() or ".." in cert):
        raise ConfigError(f"{where} {name}: sealing-cert must be a path inside the repository")
    return Cluster(name, environment, flavour, PurePosixPath(cert) if cert else None)


def _load(text: str, source: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    from .yamlerrors import describe_yaml_error, too_deep

    deep = too_deep(text)
    if deep:
        raise ConfigError(f"{source} {deep}")
    try:
        return YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {describe_yaml_error(exc)}") from None


def load_config(root: Path) -> Config:
    """promotion.yaml of the repository at ``root``; ConfigError when missing or malformed."""
    path = root / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: is --repo the weAlist GitOps repository?") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{CONFIG_FILE} is not UTF-8 text (byte {exc.start})") from None
    return parse_config(text)


def _list(data: dict[str, Any], key: str, where: str, required: bool = True) -> list[dict[str, Any]]:
    value = data.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{where}: {key} must be a non-empty list of mappings")
    return value


def _str(data: Any, key: str, where: str) -> str:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key} must be a non-empty string")
    return value
