"""Rehearse an environment: start what its rendered manifests describe, for real, without a cluster.

Static checks cannot see that a command never succeeds. An init container whose ``pg_isready``
has no user name, run as a uid without a passwd entry, exits 3 ("no attempt") forever; a password
with an ``@`` inside a URL breaks libpq; a liveness probe that treats "recovering" as "dead"
restarts crash recovery again and again. All of them pass ``wealist validate``. The rehearsal runs
the commands instead, the way the kubelet would:

- a real PostgreSQL server is started as the rendered StatefulSet describes it: its env resolved
  from the rendered Secrets and ConfigMaps, its volumes at their paths (the volume claim with a
  ``lost+found`` at its root, as a cloud block volume has), the image's entrypoint steps (initdb,
  the database, the scripts in ``/docker-entrypoint-initdb.d``), its uid, gid and fsGroup;
- then every command of every rendered container, init container, probe, lifecycle hook and
  CronJob whose image's programs exist on this machine (the ``postgres`` image: ``sh``,
  ``pg_isready``, ``psql``, ``pg_dump``, ``pg_ctl``) runs under its pod's uid/gid, with its env
  (``$(VAR)`` expansion included); an app container's ``DATABASE_URL`` is opened with libpq;
- backup and restore are run (dump, restore into a fresh server, same rows), and the server is
  stopped with its preStop hook and restarted in recovery to try the liveness probe on it.

How a container is made without a container engine (root only): one network namespace stands for
the cluster network; the database pod has the address 127.0.0.2 there, and connections to it come
from that address, not 127.0.0.1 (the image trusts loopback connections; other pods must
authenticate). Each container gets its own mount namespace whose root is an overlay of this
machine's root (its programs stand in for the image's), read-only when the container asks for a
read-only root filesystem, with the pod's volumes mounted at their paths, the image's
``/etc/passwd`` (in ``postgres:16-alpine`` only uid 70 has an entry), and an ``/etc/hosts`` that
maps the cluster DNS names of the database's Services, and only those, to its pod. Secrets are
never real here: every password is replaced by a generated one made of the characters that break
URLs, shells and SQL (``@ : / # % + = ?``, a space, a quote), so a manifest that mishandles any
password fails the rehearsal. Prod's SealedSecrets cannot be opened here: each sealed key gets a
generated value, the same value wherever the same key name is sealed.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import RefusedError
from .render import Object, name_of, pod_labels, pod_spec

Log = Callable[[str], None]

POD_ADDRESS = "127.0.0.2"  # the database pod's address in the rehearsal network
# Every password in a rehearsal: what breaks a URL (@ : / # % + = ?), a shell (space, quote) or SQL.
HOSTILE_PASSWORD = "p@ss:w/rd#1 %+=?'"
STARTUP_SECONDS = 60.0  # the most a rehearsal waits for the server to start
RECOVERY_LOOKS = 3  # liveness checks on a recovering server
# The restore procedure of the README, run here against a fresh server.
RESTORE_COMMAND = (
    'pg_restore --clean --if-exists --exit-on-error -U "$POSTGRES_USER" -d "$POSTGRES_DB" /tmp/restore.dump'
)
ROWS_TABLE = "wealist_rehearsal"
APP_SQL = f"""
CREATE TABLE IF NOT EXISTS {ROWS_TABLE} (id integer PRIMARY KEY, title text NOT NULL);
INSERT INTO {ROWS_TABLE} VALUES (1, 'plan the sprint'), (2, 'ship the board'),
  (3, 'a title with ''quotes'' and ünïcode') ON CONFLICT DO NOTHING;
SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls
  FROM pg_roles WHERE rolname = current_user;
"""
ROWS_SQL = f"SELECT id, title FROM {ROWS_TABLE} ORDER BY id"

# The postgres image, by its official names, with a tag and/or digest.
POSTGRES_IMAGE = re.compile(
    r"(?:(?:docker\.io|index\.docker\.io|registry-1\.docker\.io)/)?(?:library/)?postgres"
    r"(?::[\w][\w.-]*)?(?:@sha256:[0-9a-f]{64})?"
)
# What the postgres:16-alpine image brings: its environment, entrypoint, and users (uid 70 only).
POSTGRES_IMAGE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",  # the image says en_US.utf8; musl treats every locale as C.UTF-8
    "PGDATA": "/var/lib/postgresql/data",
}
POSTGRES_ENTRYPOINT = ["docker-entrypoint.sh", "postgres"]
POSTGRES_PASSWD = "root:x:0:0:root:/root:/bin/sh\npostgres:x:70:70::/var/lib/postgresql:/bin/sh\n"
POSTGRES_GROUP = "root:x:0:root\npostgres:x:70:postgres\n"
# An image this machine cannot stand in for (an app image): the programs of the machine are used
# only to open its DATABASE_URL with libpq; its users are unknown, so only root has an entry.
OTHER_PASSWD = "root:x:0:0:root:/root:/bin/sh\n"
OTHER_GROUP = "root:x:0:root\n"
HOST_TOOLS = ("unshare", "nsenter", "chroot", "mount", "ip", "env", "sleep")
SERVER_TOOLS = ("postgres", "initdb", "pg_ctl", "pg_isready", "psql", "pg_dump", "pg_restore")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod")


class RehearsalError(Exception):
    """A step could not run as the manifests describe it (the message says why)."""


@dataclass
class Step:
    """One rehearsed step and its outcome."""

    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass
class Report:
    """A rehearsal's steps and what it could not run here."""

    env: str
    steps: list[Step] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    @property
    def failures(self) -> list[Step]:
        return [s for s in self.steps if not s.ok]

    def as_json(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "ok": self.ok,
            "steps": [
                {"name": s.name, "ok": s.ok, "detail": s.detail, "seconds": round(s.seconds, 2)}
                for s in self.steps
            ],
            "skipped": self.skipped,
        }


def unavailable() -> str | None:
    """Why this machine cannot rehearse, or None when it can."""
    if os.geteuid() != 0:
        return "the rehearsal needs root (uid switching, mount and network namespaces): run it as root"
    missing = [t for t in HOST_TOOLS if shutil.which(t) is None]
    if missing:
        return f"missing on this machine: {', '.join(missing)}"
    bindir = postgres_bindir()
    if bindir is None:
        return "the PostgreSQL server programs (pg_ctl, initdb, postgres) are not on PATH"
    absent = [t for t in SERVER_TOOLS if not (bindir / t).exists()]
    if absent:
        return f"{bindir} lacks {', '.join(absent)}"
    return None


def postgres_bindir() -> Path | None:
    """The directory of the real server binaries (not a distribution's wrapper scripts)."""
    pg_ctl = shutil.which("pg_ctl")
    return Path(os.path.realpath(pg_ctl)).parent if pg_ctl else None


# -- what a container sees: env, secrets, volumes ------------------------------------------------


class SecretValues:
    """The values a rehearsal puts where the manifests read a Secret. Passwords are generated
    (hostile characters, a distinct one per distinct original value, so two Secrets that agree
    still agree); other plain values stay; sealed values are generated per key name."""

    def __init__(self) -> None:
        self._by_value: dict[str, str] = {}
        self._by_key: dict[str, str] = {}

    def plain(self, key: str, value: str) -> str:
        if "PASSWORD" not in key.upper():
            return value
        return self._by_value.setdefault(value, f"{HOSTILE_PASSWORD}{len(self._by_value) + 1}")

    def sealed(self, key: str) -> str:
        if key not in self._by_key:
            generated = (
                f"{HOSTILE_PASSWORD}s{len(self._by_key) + 1}"
                if "PASSWORD" in key.upper()
                else "rh_" + re.sub(r"[^a-z0-9]", "_", key.lower())
            )
            self._by_key[key] = generated
        return self._by_key[key]

    def passwords(self) -> list[str]:
        return [v for v in [*self._by_value.values(), *self._by_key.values()] if HOSTILE_PASSWORD in v]


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names are replaced, ``$$`` is a literal ``$``,
    anything else stays as written."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        text,
    )


class Objects:
    """The rendered environment, with the rehearsal's secret values."""

    def __init__(self, objects: list[Object], secrets: SecretValues) -> None:
        self.all = objects
        self.secrets = secrets

    def find(self, kind: str, namespace: str, name: str) -> Object | None:
        for obj in self.all:
            meta = obj.get("metadata") or {}
            if obj.get("kind") == kind and meta.get("name") == name and meta.get("namespace") == namespace:
                return obj
        return None

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        secret = self.find("Secret", namespace, name)
        if secret is not None:
            data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
            data |= {k: str(v) for k, v in (secret.get("stringData") or {}).items()}
            return {k: self.secrets.plain(k, v) for k, v in data.items()}
        sealed = self.find("SealedSecret", namespace, name)
        if sealed is not None:
            keys = ((sealed.get("spec") or {}).get("encryptedData") or {}).keys()
            return {k: self.secrets.sealed(k) for k in keys}
        return None

    def config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        cm = self.find("ConfigMap", namespace, name)
        return None if cm is None else {k: str(v) for k, v in (cm.get("data") or {}).items()}


def is_postgres_image(image: str) -> bool:
    """Whether ``image`` is the official postgres image (by any of its names)."""
    return POSTGRES_IMAGE.fullmatch(image) is not None


@dataclass
class Pod:
    """One pod of a rendered workload, as the rehearsal runs it."""

    workload: Object
    name: str
    namespace: str
    address: str
    objects: Objects
    root: Path  # host directory for this pod's volumes and container roots

    @property
    def spec(self) -> dict[str, Any]:
        return pod_spec(self.workload)

    @property
    def security(self) -> dict[str, Any]:
        return self.spec.get("securityContext") or {}

    def ids(self, container: dict[str, Any]) -> tuple[int, int, list[int]]:
        """uid, gid and supplementary groups, as the kubelet sets them."""
        sc = {**self.security, **(container.get("securityContext") or {})}
        uid = int(sc.get("runAsUser", 0))
        gid = int(sc.get("runAsGroup", uid))
        groups = [int(g) for g in self.security.get("supplementalGroups") or []]
        if "fsGroup" in self.security:
            groups.insert(0, int(self.security["fsGroup"]))
        return uid, gid, groups or [gid]

    def env(self, container: dict[str, Any]) -> dict[str, str]:
        """The container's environment: the image's, then envFrom, then env (with expansion)."""
        image_env = POSTGRES_IMAGE_ENV if is_postgres_image(str(container.get("image", ""))) else {}
        return {**image_env, **self.defined_env(container)}

    def defined_env(self, container: dict[str, Any]) -> dict[str, str]:
        """What the manifest defines (envFrom, then env): ``$(VAR)`` expands only these."""
        defined: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                data = self._lookup("ConfigMap", source["configMapRef"])
            else:
                data = self._lookup("Secret", source.get("secretRef") or {})
            defined |= {prefix + k: v for k, v in (data or {}).items()}
        for item in container.get("env") or []:
            name = item["name"]
            if "value" in item:
                defined[name] = expand(str(item["value"]), defined)
                continue
            value_from = item.get("valueFrom") or {}
            if "secretKeyRef" in value_from or "configMapKeyRef" in value_from:
                kind, ref = (
                    ("Secret", value_from["secretKeyRef"])
                    if "secretKeyRef" in value_from
                    else ("ConfigMap", value_from["configMapKeyRef"])
                )
                data = self._lookup(kind, ref)
                if data is None or ref.get("key") not in data:
                    if ref.get("optional"):
                        continue
                    raise RehearsalError(
                        f"{self.name}: env {name}: {kind} {ref.get('name')} in {self.namespace} has no key "
                        f"{ref.get('key')} (the container would not start: CreateContainerConfigError)"
                    )
                defined[name] = data[ref["key"]]
            elif "fieldRef" in value_from:
                defined[name] = self._field(value_from["fieldRef"].get("fieldPath", ""))
            else:
                raise RehearsalError(f"{self.name}: env {name}: {sorted(value_from)} is not rehearsed")
        return defined

    def _lookup(self, kind: str, ref: dict[str, Any]) -> dict[str, str] | None:
        name = str(ref.get("name", ""))
        if kind == "Secret":
            return self.objects.secret(self.namespace, name)
        return self.objects.config_map(self.namespace, name)

    def _field(self, path: str) -> str:
        values = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "status.podIP": self.address,
            "spec.nodeName": "rehearsal",
        }
        if path not in values:
            raise RehearsalError(f"{self.name}: fieldRef {path} is not rehearsed")
        return values[path]

    def argv(self, container: dict[str, Any]) -> list[str]:
        """command + args as the runtime assembles them (the image's entrypoint where none is set)."""
        image = str(container.get("image", ""))
        command = container.get("command")
        args = container.get("args")
        if command is None:
            if not is_postgres_image(image):
                raise RehearsalError(f"{self.name}: the entrypoint of {image} is not known here")
            command, default_args = POSTGRES_ENTRYPOINT[:1], POSTGRES_ENTRYPOINT[1:]
            args = default_args if args is None else args
        defined = self.defined_env(container)
        return [expand(str(part), defined) for part in [*command, *(args or [])]]

    def volume_dirs(self, claims: Path) -> dict[str, tuple[Path, str]]:
        """Host directories of the pod's volumes, made as the kubelet makes them: name -> (dir, kind).

        Volume claims live in ``claims`` (shared by the pods of a rehearsal, so a backup written by
        one pod can be read by another), as a fresh cloud volume: owned by root, with lost+found.
        """
        fs_group = self.security.get("fsGroup")
        spec = self.workload.get("spec") or {}
        templates = [t["metadata"]["name"] for t in spec.get("volumeClaimTemplates") or []]
        volumes = [{"name": n, "persistentVolumeClaim": {"claimName": f"{n}-{self.name}"}} for n in templates]
        result: dict[str, tuple[Path, str]] = {}
        for volume in [*volumes, *(self.spec.get("volumes") or [])]:
            name = volume["name"]
            if "emptyDir" in volume:
                path, kind = self.root / "volumes" / name, "emptyDir"
                path.mkdir(parents=True, exist_ok=True)
                os.chmod(path, 0o777)
            elif "persistentVolumeClaim" in volume:
                path, kind = claims / self.namespace / volume["persistentVolumeClaim"]["claimName"], "claim"
                if not path.exists():
                    (path / "lost+found").mkdir(parents=True)
                    os.chmod(path / "lost+found", 0o700)
                    os.chmod(path, 0o755)
            elif "configMap" in volume or "secret" in volume:
                kind = "configMap" if "configMap" in volume else "secret"
                path = self._projected(name, kind, volume[kind], fs_group)
            else:
                raise RehearsalError(f"{self.name}: volume {name} ({sorted(volume)}) is not rehearsed")
            if fs_group is not None and kind in ("emptyDir", "claim"):
                # The kubelet gives the volume to the fsGroup: group-owned, group-writable, setgid.
                os.chown(path, 0, int(fs_group))
                os.chmod(path, (path.stat().st_mode & 0o7777) | 0o2070)
            result[name] = (path, kind)
        return result

    def _projected(self, name: str, kind: str, source: dict[str, Any], fs_group: object) -> Path:
        """A ConfigMap or Secret volume: one file per key (or per item), with its mode."""
        ref_name = str(source.get("name") if kind == "configMap" else source.get("secretName"))
        data = (
            self.objects.config_map(self.namespace, ref_name)
            if kind == "configMap"
            else self.objects.secret(self.namespace, ref_name)
        )
        if data is None:
            raise RehearsalError(f"{self.name}: volume {name}: {kind} {ref_name} does not exist")
        path = self.root / "volumes" / name
        path.mkdir(parents=True, exist_ok=True)
        for item in source.get("items") or [{"key": k, "path": k} for k in data]:
            target = path / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[item["key"]], encoding="utf-8")
            os.chmod(target, int(item.get("mode", source.get("defaultMode", 0o644))))
            if fs_group is not None:
                os.chown(target, 0, int(str(fs_group)))
        os.chmod(path, 0o755)
        return path


# -- the sandbox: a cluster network, containers in it -------------------------------------------


@dataclass
class Result:
    code: int | None  # None: killed at the timeout
    output: str


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    root: Path  # the container's root, inside its mount namespace
    pod: Pod
    container: dict[str, Any]
    env: dict[str, str]
    log: Path


class Sandbox:
    """The cluster network (a network namespace held by a sleeping process), and every process
    started in it; leaving the context kills them all and removes every file."""

    def __init__(self, mask: Callable[[str], str]) -> None:
        self._mask = mask
        self._tools = {t: str(shutil.which(t)) for t in HOST_TOOLS}
        self._processes: list[subprocess.Popen[bytes]] = []
        self.dir = Path(tempfile.mkdtemp(prefix="wealist-rehearse-"))
        self.claims = self.dir / "claims"
        self.hosts: dict[str, str] = {}  # DNS name -> address, per pod namespace filled by the caller
        self._holder: subprocess.Popen[bytes] | None = None
        self._counter = 0

    def __enter__(self) -> Sandbox:
        self._holder = subprocess.Popen(
            [self._tools["unshare"], "--net", "--", self._tools["sleep"], "infinity"]
        )
        own = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{self._holder.pid}/ns/net") == own:
            if time.monotonic() > deadline:
                raise RehearsalError("could not create the rehearsal network namespace")
            time.sleep(0.01)
        for args in (
            ["link", "set", "lo", "up"],
            ["addr", "add", f"{POD_ADDRESS}/32", "dev", "lo"],
            # Connections to the pod leave from the pod's address, not from 127.0.0.1.
            ["route", "replace", "local", POD_ADDRESS, "dev", "lo", "table", "local", "src", POD_ADDRESS],
        ):
            subprocess.run(
                [self._tools["nsenter"], f"--net={self._netns}", "--", self._tools["ip"], *args], check=True
            )
        return self

    def __exit__(self, *exc: object) -> None:
        for process in [*self._processes, *([self._holder] if self._holder else [])]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL) if process is not self._holder else process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def _netns(self) -> str:
        assert self._holder is not None
        return f"/proc/{self._holder.pid}/ns/net"

    # A container: a mount namespace whose root is an overlay of this machine's root.
    def _setup_script(self, pod: Pod, container: dict[str, Any], entrypoint: bool) -> tuple[Path, Path]:
        """A shell script that makes the container's filesystem in a fresh mount namespace and
        execs its command as its user; returns the script and the container's root."""
        self._counter += 1
        stage = pod.root / f"{container['name']}.{self._counter}"
        stage.mkdir(parents=True)
        root = stage / "root"
        mount, q = shlex.quote(self._tools["mount"]), shlex.quote
        lines = [
            "set -eu",
            f"{mount} -t tmpfs -o mode=0755 rehearsal {q(str(stage))}",
            f"mkdir {q(str(stage / 'upper'))} {q(str(stage / 'work'))} {q(str(root))}",
            f"{mount} -t overlay overlay -o "
            + q(f"lowerdir=/,upperdir={stage / 'upper'},workdir={stage / 'work'}")
            + f" {q(str(root))}",
            *(f"{mount} --rbind /{d} {q(str(root / d))}" for d in ("dev", "proc", "sys")),
        ]
        for name, text in self._etc_files(pod, container).items():
            source = stage.parent / f"{container['name']}.{self._counter}.{name}"
            source.write_text(text)
            lines.append(f"cat {q(str(source))} > {q(str(root / 'etc' / name))}")
        if entrypoint:
            script = resources.files("wealist") / "stand_ins" / "postgres-entrypoint.sh"
            target = root / "usr/local/bin/docker-entrypoint.sh"
            lines.append(f"cat {q(str(script))} > {q(str(target))} && chmod 755 {q(str(target))}")
        lines += self._volume_mounts(pod, container, root)
        if (container.get("securityContext") or {}).get("readOnlyRootFilesystem"):
            lines.append(f"{mount} -o remount,ro {q(str(root))}")
        uid, gid, groups = pod.ids(container)
        workdir = container.get("workingDir") or "/"
        lines.append(
            f"exec {q(self._tools['chroot'])} --userspec={uid}:{gid} --groups={','.join(map(str, groups))} "
            f'{q(str(root))} /usr/bin/env -C {q(workdir)} -- "$@"'
        )
        path = stage.parent / f"{container['name']}.{self._counter}.sh"
        path.write_text("\n".join(lines) + "\n")
        return path, root

    def _etc_files(self, pod: Pod, container: dict[str, Any]) -> dict[str, str]:
        """The image's users and groups, and hosts with the mapped cluster DNS names."""
        postgres = is_postgres_image(str(container.get("image", "")))
        hosts = ["127.0.0.1\tlocalhost", f"{pod.address}\t{pod.name}"]
        hosts += [f"{address}\t{name}" for name, address in self._names_for(pod.namespace).items()]
        return {
            "passwd": POSTGRES_PASSWD if postgres else OTHER_PASSWD,
            "group": POSTGRES_GROUP if postgres else OTHER_GROUP,
            "hosts": "\n".join(hosts) + "\n",
        }

    def _volume_mounts(self, pod: Pod, container: dict[str, Any], root: Path) -> list[str]:
        """Bind mounts of the pod's volumes at the container's paths, parents first."""
        mount, q = shlex.quote(self._tools["mount"]), shlex.quote
        volumes = pod.volume_dirs(self.claims)
        lines = []
        for entry in sorted(
            container.get("volumeMounts") or [], key=lambda m: len(PurePosixPath(m["mountPath"]).parts)
        ):
            if entry["name"] not in volumes:
                raise RehearsalError(
                    f"{pod.name}/{container['name']}: volumeMount {entry['name']} names no volume"
                )
            source = volumes[entry["name"]][0] / entry.get("subPath", "")
            target = root / _inside_root(entry["mountPath"]).relative_to("/")
            lines.append(f"mkdir -p {q(str(target))} && {mount} --bind {q(str(source))} {q(str(target))}")
            if entry.get("readOnly"):
                lines.append(f"{mount} -o remount,bind,ro {q(str(target))}")
        return lines

    def _names_for(self, namespace: str) -> dict[str, str]:
        """The mapped Service names as a pod in ``namespace`` resolves them (its search path
        makes ``svc`` and ``svc.ns`` work besides the full name)."""
        names: dict[str, str] = {}
        for fqdn, address in self.hosts.items():
            names[fqdn] = address
            service, ns = fqdn.split(".")[:2]
            names[f"{service}.{ns}.svc"] = address
            names[f"{service}.{ns}"] = address
            if ns == namespace:
                names[service] = address
        return names

    def _popen(self, argv: list[str], env: dict[str, str], output: Any) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._processes.append(process)
        return process

    def _finish(self, process: subprocess.Popen[bytes], timeout: float) -> Result:
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            out, _ = process.communicate()
            return Result(None, self._mask((out or b"").decode(errors="replace")))
        return Result(process.returncode, self._mask((out or b"").decode(errors="replace")))

    def run(
        self, pod: Pod, container: dict[str, Any], argv: list[str], env: dict[str, str], timeout: float
    ) -> Result:
        """Run ``argv`` in a new container of ``pod`` until it exits (or the timeout kills it)."""
        script, _ = self._setup_script(pod, container, entrypoint=False)
        launcher = [self._tools["nsenter"], f"--net={self._netns}", "--", self._tools["unshare"], "--mount"]
        process = self._popen(
            [*launcher, "--propagation", "private", "--", "/bin/sh", str(script), *argv], env, subprocess.PIPE
        )
        return self._finish(process, timeout)

    def start(self, pod: Pod, container: dict[str, Any], argv: list[str], env: dict[str, str]) -> Running:
        """Start a long-running container (the database server); its output goes to a log file."""
        script, root = self._setup_script(pod, container, entrypoint=argv[:1] == POSTGRES_ENTRYPOINT[:1])
        log = script.with_suffix(".log")
        launcher = [self._tools["nsenter"], f"--net={self._netns}", "--", self._tools["unshare"], "--mount"]
        with log.open("wb") as handle:
            process = self._popen(
                [*launcher, "--propagation", "private", "--", "/bin/sh", str(script), *argv], env, handle
            )
        return Running(process, root, pod, container, env, log)

    def exec_in(
        self, running: Running, argv: list[str], timeout: float, env: dict[str, str] | None = None
    ) -> Result:
        """Run ``argv`` inside a running container (probes, hooks, kubectl exec): its namespaces,
        its root, its uid."""
        uid, gid, groups = running.pod.ids(running.container)
        t = self._tools
        process = self._popen(
            [
                t["nsenter"], f"--target={running.process.pid}", "--mount", "--net", "--",
                t["chroot"], f"--userspec={uid}:{gid}", f"--groups={','.join(map(str, groups))}",
                str(running.root), "/usr/bin/env", "-C", "/", "--", *argv,
            ],
            env or running.env,
            subprocess.PIPE,
        )  # fmt: skip
        return self._finish(process, timeout)

    def log_tail(self, running: Running, lines: int = 3) -> str:
        text = running.log.read_text(encoding="utf-8", errors="replace") if running.log.exists() else ""
        return self._mask(" | ".join(line for line in text.splitlines()[-lines:] if line.strip()))


# -- the rehearsal -------------------------------------------------------------------------------


class Rehearsal:
    """Runs one environment's rendered objects; every step goes into the report."""

    def __init__(self, env: str, objects: list[Object], timeout: float, log: Log) -> None:
        self.report = Report(env)
        self.secrets = SecretValues()
        self.objects = Objects(objects, self.secrets)
        self.timeout = timeout
        self._log = log
        self._pods = 0
        self._dir = Path()  # the sandbox's directory, once it exists

    def mask(self, text: str) -> str:
        for value in sorted(self.secrets.passwords(), key=len, reverse=True):
            text = text.replace(value, "***")
        return text

    def step(self, name: str, ok: bool, detail: str, started: float) -> bool:
        seconds = time.monotonic() - started
        self.report.steps.append(Step(name, ok, self.mask(detail), seconds))
        return ok

    def run(self) -> Report:
        self._log(
            f"rehearsing {self.report.env}: a real PostgreSQL, then every command that can run here "
            f"(a command still running after {self.timeout:.0f} s counts as hanging)"
        )
        try:
            self._run()
        except RehearsalError as exc:
            self.step("rehearsal", False, str(exc), time.monotonic())
        return self.report

    def _run(self) -> None:
        servers = [o for o in self._workloads() if _server_container(o) is not None]
        if not servers:
            self.step("database", False, "no StatefulSet runs the postgres image's server", time.monotonic())
            return
        server_obj = servers[0]
        for extra in servers[1:]:
            self.report.skipped.append(f"{name_of(extra)}: only one database server is rehearsed")
        with Sandbox(self.mask) as sandbox:
            self._dir = sandbox.dir
            server = self._server_pod(server_obj)
            self._map_services(sandbox, server_obj, server)
            running = self._start_server(sandbox, server, "start")
            if running is None:
                return
            self._probe_running(sandbox, running)
            for workload in self._workloads():
                if workload is not server_obj:
                    self._rehearse_workload(sandbox, workload)
            self._restore(sandbox, server_obj, running)
            if self._stop(sandbox, running, "stop (preStop hook)"):
                self._recovery(sandbox, server)

    def _workloads(self) -> list[Object]:
        """Workloads in the order Argo CD applies them: by sync wave, then as rendered."""
        found = [o for o in self.objects.all if o.get("kind") in WORKLOAD_KINDS]
        return sorted(
            found,
            key=lambda o: int(
                ((o.get("metadata") or {}).get("annotations") or {}).get("argocd.argoproj.io/sync-wave", 0)
            ),
        )

    def _pod(self, workload: Object, name: str, address: str) -> Pod:
        self._pods += 1
        namespace = str((workload.get("metadata") or {}).get("namespace", "default"))
        root = self._dir / "pods" / f"{self._pods}-{name}"
        root.mkdir(parents=True)
        return Pod(workload, name, namespace, address, self.objects, root)

    def _server_pod(self, workload: Object) -> Pod:
        return self._pod(workload, f"{workload['metadata']['name']}-0", POD_ADDRESS)

    def _map_services(self, sandbox: Sandbox, workload: Object, server: Pod) -> None:
        """Map the cluster DNS names of the Services that select the server's pod to its address,
        after checking each is that Service and its ports reach the port the server listens on."""
        started = time.monotonic()
        main = _server_container(workload)
        assert main is not None
        env = server.env(main)
        listens = int(env.get("PGPORT", "5432"))
        ports = {p.get("name"): int(p["containerPort"]) for p in main.get("ports") or []}
        labels = pod_labels(workload)
        mapped = []
        for svc in (o for o in self.objects.all if o.get("kind") == "Service"):
            meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
            selector = spec.get("selector") or {}
            if (
                meta.get("namespace") != server.namespace
                or not selector
                or not selector.items() <= labels.items()
            ):
                continue
            fqdn = f"{meta['name']}.{meta['namespace']}.svc.cluster.local"
            for port in spec.get("ports") or []:
                target = port.get("targetPort", port.get("port"))
                resolved = ports.get(target) if isinstance(target, str) else int(target)
                if resolved != listens or int(port["port"]) != listens:
                    self.step(
                        f"Service {meta['namespace']}/{meta['name']}",
                        False,
                        f"port {port['port']} -> {target} misses the server (it listens on {listens})",
                        started,
                    )
                    break
            else:
                sandbox.hosts[fqdn] = server.address
                if spec.get("clusterIP") == "None":
                    sandbox.hosts[f"{server.name}.{fqdn}"] = server.address
                mapped.append(fqdn)
        self.report.skipped.append(f"cluster DNS mapped to the database pod: {', '.join(mapped) or 'none'}")

    def _start_server(
        self, sandbox: Sandbox, pod: Pod, label: str, extra: list[str] | None = None
    ) -> Running | None:
        started = time.monotonic()
        name = f"{pod.name}/{_server_container(pod.workload)['name']}"  # type: ignore[index]
        try:
            for init in pod.spec.get("initContainers") or []:
                if not self._run_init(sandbox, pod, init):
                    return None
            main = _server_container(pod.workload)
            assert main is not None
            env = pod.env(main)
            running = sandbox.start(pod, main, pod.argv(main) + (extra or []), env)
        except RehearsalError as exc:
            self.step(f"{name}: {label}", False, str(exc), started)
            return None
        probe = main.get("startupProbe") or main.get("readinessProbe")
        wait = min(STARTUP_SECONDS, _budget(probe) if probe else STARTUP_SECONDS)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if running.process.poll() is not None:
                self.step(
                    f"{name}: {label}",
                    False,
                    f"the server exited ({running.process.returncode}): {sandbox.log_tail(running)}",
                    started,
                )
                return None
            if probe is None or self._probe(sandbox, running, probe).code == 0:
                what = "startup probe" if "startupProbe" in main else "readiness probe"
                self.step(f"{name}: {label}", True, f"serving; {what} passed", started)
                return running
            time.sleep(0.3)
        self.step(
            f"{name}: {label}",
            False,
            f"not ready within {wait:.0f} s: {sandbox.log_tail(running)}",
            started,
        )
        return None

    def _probe(self, sandbox: Sandbox, running: Running, probe: dict[str, Any]) -> Result:
        command = (probe.get("exec") or {}).get("command")
        if not command:
            raise RehearsalError("only exec probes can be rehearsed on the database")
        return sandbox.exec_in(
            running, [expand(str(c), running.env) for c in command], float(probe.get("timeoutSeconds", 1)) + 2
        )

    def _probe_running(self, sandbox: Sandbox, running: Running) -> None:
        for kind in ("readinessProbe", "livenessProbe"):
            probe = running.container.get(kind)
            started = time.monotonic()
            name = f"{running.pod.name}/{running.container['name']}: {kind}"
            if probe is None:
                self.step(name, False, "missing", started)
                continue
            result = self._probe(sandbox, running, probe)
            self.step(name, result.code == 0, _outcome(result, "passes on the running server"), started)

    def _run_init(self, sandbox: Sandbox, pod: Pod, init: dict[str, Any]) -> bool:
        started = time.monotonic()
        name = f"{pod.name}/{init['name']} (init container)"
        image = str(init.get("image", ""))
        if not is_postgres_image(image):
            self.report.skipped.append(f"{name}: the programs of {image} are not on this machine")
            return True
        try:
            env = pod.env(init)
            result = sandbox.run(pod, init, pod.argv(init), env, self.timeout)
        except RehearsalError as exc:
            return self.step(name, False, str(exc), started)
        if result.code is None:
            return self.step(
                name,
                False,
                f"did not finish within {self.timeout:.0f} s; Kubernetes would wait forever (the pod stays "
                f"in Init and the next sync waves never start). Last output: {_tail(result.output)}",
                started,
            )
        return self.step(name, result.code == 0, _outcome(result, "finished"), started)

    def _rehearse_workload(self, sandbox: Sandbox, workload: Object) -> None:
        suffix = "job" if workload.get("kind") in ("Job", "CronJob") else "0"
        pod = self._pod(workload, f"{workload['metadata']['name']}-{suffix}", "127.0.0.3")
        # A failed init container keeps the pod from starting; its containers are still checked,
        # so one rehearsal shows every defect.
        for init in pod.spec.get("initContainers") or []:
            if not self._run_init(sandbox, pod, init):
                break
        for container in pod.spec.get("containers") or []:
            name = f"{pod.name}/{container['name']}"
            image = str(container.get("image", ""))
            started = time.monotonic()
            try:
                env = pod.env(container)
            except RehearsalError as exc:
                self.step(name, False, str(exc), started)
                continue
            if is_postgres_image(image) and workload.get("kind") in ("Job", "CronJob"):
                self._run_job(sandbox, pod, container, env, name)
            elif is_postgres_image(image):
                self.report.skipped.append(
                    f"{name}: a long-running postgres container that is not the server"
                )
            elif "DATABASE_URL" in env:
                self._open_database_url(sandbox, pod, container, env, name)
            else:
                self.report.skipped.append(f"{name}: the programs of {image} are not on this machine")
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container.get(kind)
                if probe and not is_postgres_image(image):
                    how = next(iter(k for k in probe if k in ("exec", "httpGet", "tcpSocket", "grpc")), "?")
                    self.report.skipped.append(f"{name}: {kind} ({how}) needs the app itself")

    def _run_job(
        self, sandbox: Sandbox, pod: Pod, container: dict[str, Any], env: dict[str, str], name: str
    ) -> None:
        started = time.monotonic()
        before = _files(sandbox.claims)
        try:
            result = sandbox.run(pod, container, pod.argv(container), env, self.timeout)
        except RehearsalError as exc:
            self.step(name, False, str(exc), started)
            return
        new_files = sorted(_files(sandbox.claims) - before)
        written = [str(p.relative_to(sandbox.claims)) for p in new_files]
        detail = _outcome(result, "finished") + (f"; wrote {', '.join(written)}" if written else "")
        if self.step(name, result.code == 0, detail, started) and new_files and "RETENTION_DAYS" in env:
            self._retention(sandbox, pod, container, env, name, new_files[0])

    def _retention(
        self,
        sandbox: Sandbox,
        pod: Pod,
        container: dict[str, Any],
        env: dict[str, str],
        name: str,
        made: Path,
    ) -> None:
        """Run the job again beside a copy of its output aged past RETENTION_DAYS: the copy must go,
        the fresh output stay."""
        started = time.monotonic()
        days = int(env["RETENTION_DAYS"])
        old = made.with_stem(made.stem + "-old")
        shutil.copy2(made, old)
        os.chown(old, *made.stat()[4:6])
        aged = time.time() - (days + 2) * 86400
        os.utime(old, (aged, aged))
        time.sleep(1.1)  # the job names its output by the second
        result = sandbox.run(pod, container, pod.argv(container), env, self.timeout)
        kept = made.exists()
        self.step(
            f"{name}: retention",
            result.code == 0 and not old.exists() and kept,
            f"a copy aged {days + 2} days was {'removed' if not old.exists() else 'kept'}, the recent one "
            f"{'kept' if kept else 'removed'} (RETENTION_DAYS={days})",
            started,
        )

    def _open_database_url(
        self, sandbox: Sandbox, pod: Pod, container: dict[str, Any], env: dict[str, str], name: str
    ) -> None:
        """Open the app's connection string with libpq, as its driver would, and check what the
        connected role may do: create and fill a table, but not create roles or databases."""
        started = time.monotonic()
        psql = 'exec psql "$DATABASE_URL" -X -v ON_ERROR_STOP=1 -At'
        result = sandbox.run(pod, container, ["sh", "-c", f'{psql} -c "$0"', APP_SQL], env, self.timeout)
        if result.code != 0:
            self.step(f"{name}: DATABASE_URL", False, f"libpq cannot use it: {_tail(result.output)}", started)
            return
        self.step(f"{name}: DATABASE_URL", True, "opened with libpq; created and filled a table", started)
        started = time.monotonic()
        if result.output.strip().splitlines()[-1:] != ["f"]:
            self.step(
                f"{name}: least privilege",
                False,
                "connects as a superuser or a role that may create roles or databases",
                started,
            )
            return
        refused = []
        for sql in ("CREATE ROLE wealist_rehearsal_probe", "CREATE DATABASE wealist_rehearsal_probe"):
            attempt = sandbox.run(pod, container, ["sh", "-c", f'{psql} -c "$0"', sql], env, self.timeout)
            refused.append(attempt.code != 0 and "permission denied" in attempt.output)
        self.step(
            f"{name}: least privilege",
            all(refused),
            "no superuser; may not create roles or databases"
            if all(refused)
            else "may create roles or databases",
            started,
        )

    def _restore(self, sandbox: Sandbox, server_obj: Object, running: Running) -> None:
        """The README's restore procedure on a fresh server (a new volume claim, as after losing
        the volume): the newest dump, the same rows. The original server is restarted after."""
        dumps = sorted(
            (p for p in _files(sandbox.claims) if p.suffix == ".dump"), key=lambda p: p.stat().st_mtime
        )
        started = time.monotonic()
        if not dumps:
            self.step("restore", False, "no backup dump was written (no CronJob running pg_dump?)", started)
            return
        original = self._rows(sandbox, running)
        fresh_pod = self._server_pod(server_obj)
        saved_claims, sandbox.claims = sandbox.claims, sandbox.dir / "claims-fresh"
        fresh = None
        try:
            if self._stop(sandbox, running, "stop before the restore (preStop hook)", quiet=True):
                fresh = self._start_server(sandbox, fresh_pod, "fresh server for the restore")
            if fresh is not None:
                detail = self._restore_into(sandbox, fresh, dumps[-1])
                restored = self._rows(sandbox, fresh) if detail is None else ""
                same = detail is None and restored == original and bool(original)
                summary = f"{len(restored.splitlines())} rows, " + (
                    "the same" if same else f"expected {original!r}, got {restored!r}"
                )
                self.step(
                    "restore", same, f"{dumps[-1].name} into a fresh server: {detail or summary}", started
                )
        finally:
            if fresh is not None:
                self._stop(sandbox, fresh, "stop the fresh server", quiet=True)
            sandbox.claims = saved_claims
            restarted = self._start_server(sandbox, running.pod, "restart on its volume")
            if restarted is not None:
                running.process, running.root, running.log = restarted.process, restarted.root, restarted.log

    def _restore_into(self, sandbox: Sandbox, fresh: Running, dump: Path) -> str | None:
        """Copy ``dump`` into the container's /tmp and run the restore command; why not, or None."""
        tmp = next(
            (
                fresh.pod.root / "volumes" / m["name"]
                for m in fresh.container.get("volumeMounts") or []
                if m["mountPath"] == "/tmp"
            ),
            None,
        )
        if tmp is None:
            return "the postgres container has no /tmp volume to copy the dump into"
        shutil.copy(dump, tmp / "restore.dump")
        os.chmod(tmp / "restore.dump", 0o644)
        result = sandbox.exec_in(fresh, ["sh", "-c", RESTORE_COMMAND], self.timeout)
        return None if result.code == 0 else f"pg_restore failed: {_tail(result.output)}"

    def _rows(self, sandbox: Sandbox, running: Running) -> str:
        result = sandbox.exec_in(
            running,
            ["sh", "-c", 'exec psql -X -At -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "$0"', ROWS_SQL],
            self.timeout,
        )
        return result.output.strip() if result.code == 0 else ""

    def _stop(self, sandbox: Sandbox, running: Running, label: str, quiet: bool = False) -> bool:
        """The kubelet's stop: the preStop hook, then SIGTERM, within the grace period."""
        started = time.monotonic()
        name = f"{running.pod.name}/{running.container['name']}: {label}"
        grace = float(running.pod.spec.get("terminationGracePeriodSeconds", 30))
        hook = (((running.container.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get(
            "command"
        )
        if hook:
            result = sandbox.exec_in(
                running, [expand(str(c), running.env) for c in hook], min(grace, self.timeout)
            )
            if result.code != 0:
                return self.step(name, False, _outcome(result, "stopped the server"), started)
        with contextlib.suppress(ProcessLookupError):
            os.kill(running.process.pid, signal.SIGTERM)
        try:
            running.process.wait(timeout=min(grace, self.timeout))
        except subprocess.TimeoutExpired:
            os.killpg(running.process.pid, signal.SIGKILL)
            return self.step(
                name,
                False,
                f"still running {min(grace, self.timeout):.0f} s after preStop and SIGTERM",
                started,
            )
        if not quiet:
            self.step(
                name,
                True,
                "preStop hook stopped the server cleanly" if hook else "stopped on SIGTERM",
                started,
            )
        return True

    def _recovery(self, sandbox: Sandbox, server: Pod) -> None:
        """Restart the server in recovery (standby.signal, hot standby off: it answers pg_isready
        with exit 1, "rejecting connections", as during crash recovery). Liveness must keep it;
        readiness must not route to it; with nothing answering, liveness must fail."""
        main = _server_container(server.workload)
        assert main is not None
        pgdata = self._host_path(server, main, server.env(main).get("PGDATA", POSTGRES_IMAGE_ENV["PGDATA"]))
        if pgdata is None:
            self.step(
                "recovery", False, "PGDATA is on no volume: the data would not survive", time.monotonic()
            )
            return
        (pgdata / "standby.signal").touch()
        os.chown(pgdata / "standby.signal", *pgdata.stat()[4:6])
        running = self._start_recovering(sandbox, server, main)
        if running is not None:
            self._probe_recovering(sandbox, running, main)
            self._stop(sandbox, running, "stop the recovering server", quiet=True)
        (pgdata / "standby.signal").unlink(missing_ok=True)
        liveness = main.get("livenessProbe")
        if liveness and running is not None:
            started = time.monotonic()
            result = self._probe_stopped(sandbox, server, main, liveness)
            self.step(
                f"{server.name}/{main['name']}: livenessProbe with no server",
                result.code != 0,
                "fails when nothing answers"
                if result.code != 0
                else "passes with no server running: a hung server is never restarted",
                started,
            )

    def _start_recovering(self, sandbox: Sandbox, server: Pod, main: dict[str, Any]) -> Running | None:
        """The server, started in standby with hot standby off; None if it never got there."""
        started = time.monotonic()
        running = sandbox.start(server, main, [*server.argv(main), "-c", "hot_standby=off"], server.env(main))
        probe_env = {**running.env, "PGCONNECT_TIMEOUT": "2"}
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline and running.process.poll() is None:
            check = ["pg_isready", "-q", "-h", "127.0.0.1", "-U", "probe"]
            if sandbox.exec_in(running, check, 5, probe_env).code == 1:
                return running
            time.sleep(0.3)
        self.step(
            "recovery",
            False,
            f"could not bring the server into recovery: {sandbox.log_tail(running)}",
            started,
        )
        return None

    def _probe_recovering(self, sandbox: Sandbox, running: Running, main: dict[str, Any]) -> None:
        name = f"{running.pod.name}/{main['name']}"
        liveness, readiness = main.get("livenessProbe"), main.get("readinessProbe")
        if liveness:
            started = time.monotonic()
            results = [self._probe(sandbox, running, liveness) for _ in range(RECOVERY_LOOKS)]
            failed = next((r for r in results if r.code != 0), None)
            self.step(
                f"{name}: livenessProbe while recovering",
                failed is None,
                "keeps a recovering server (pg_isready exit 1) alive"
                if failed is None
                else "fails while the server recovers (pg_isready exit 1): the kubelet would restart the "
                f"recovery again and again ({_outcome(failed, '')})",
                started,
            )
        if readiness:
            started = time.monotonic()
            result = self._probe(sandbox, running, readiness)
            self.step(
                f"{name}: readinessProbe while recovering",
                result.code != 0,
                "keeps the recovering server out of its Services"
                if result.code != 0
                else "passes on a server that cannot serve",
                started,
            )

    def _probe_stopped(
        self, sandbox: Sandbox, pod: Pod, main: dict[str, Any], probe: dict[str, Any]
    ) -> Result:
        env = pod.env(main)
        command = [expand(str(c), env) for c in (probe.get("exec") or {}).get("command") or []]
        return sandbox.run(pod, main, command, env, float(probe.get("timeoutSeconds", 1)) + 2)

    def _host_path(self, pod: Pod, container: dict[str, Any], path: str) -> Path | None:
        """Where a container path on a volume is on this machine."""
        volumes = pod.volume_dirs(self._dir / "claims")
        target = PurePosixPath(path)
        holding = [
            m
            for m in container.get("volumeMounts") or []
            if target == PurePosixPath(m["mountPath"]) or PurePosixPath(m["mountPath"]) in target.parents
        ]
        best = max(holding, key=lambda m: len(PurePosixPath(m["mountPath"]).parts), default=None)
        if best is None:
            return None
        relative = PurePosixPath(path).relative_to(best["mountPath"])
        return volumes[best["name"]][0] / best.get("subPath", "") / relative


def _server_container(workload: Object) -> dict[str, Any] | None:
    """The container that runs the postgres image's own server (no command of its own)."""
    if workload.get("kind") != "StatefulSet":
        return None
    for container in pod_spec(workload).get("containers") or []:
        if is_postgres_image(str(container.get("image", ""))) and not container.get("command"):
            return container
    return None


def _inside_root(path: str) -> PurePosixPath:
    """``path`` with its symlinks resolved the way they resolve inside the container's root (an
    overlay of this machine's root): ``/var/run`` -> ``/run`` must not be followed to the
    machine's own ``/run``, or a mount would land outside the container."""
    resolved = PurePosixPath("/")
    pending = list(PurePosixPath(path).parts[1:])
    for _ in range(256):
        if not pending:
            return resolved
        part = pending.pop(0)
        if part == "..":
            resolved = resolved.parent
            continue
        candidate = resolved / part
        host = Path(candidate)
        if host.is_symlink():
            link = PurePosixPath(os.readlink(host))
            pending = list(link.parts[1:] if link.is_absolute() else link.parts) + pending
            resolved = PurePosixPath("/") if link.is_absolute() else resolved
        else:
            resolved = candidate
    raise RehearsalError(f"too many symbolic links under {path}")


def _budget(probe: dict[str, Any]) -> float:
    return float(probe.get("initialDelaySeconds", 0)) + float(probe.get("periodSeconds", 10)) * float(
        probe.get("failureThreshold", 3)
    )


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _tail(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return " | ".join(lines[-2:]) or "(no output)"


def _outcome(result: Result, success: str) -> str:
    if result.code is None:
        return f"timed out: {_tail(result.output)}"
    if result.code == 0:
        return success
    return f"exit {result.code}: {_tail(result.output)}"


def rehearse_objects(env: str, objects: list[Object], timeout: float, log: Log) -> Report:
    """Rehearse rendered objects (``env`` names them in the report)."""
    reason = unavailable()
    if reason is not None:
        raise RefusedError(f"cannot rehearse here: {reason}")
    return Rehearsal(env, objects, timeout, log).run()


def rehearse(root: Path, env_name: str, timeout: float, log: Log) -> Report:
    """Render the environment from the work tree (uncommitted edits included: run it before you
    push) and rehearse it."""
    from .config import load_config
    from .gitrepo import GitRepo
    from .render import find_renderer, parse_objects

    repo = GitRepo(root)
    env = load_config(repo.root).env(env_name)
    objects = parse_objects(find_renderer().build(repo.root / env.overlay))
    return rehearse_objects(env.name, objects, timeout, log)
