"""Benchmark: promotion against a shell baseline doing the same job, measured in the same run.

    .venv/bin/python tools/bench.py [--pairs 15] [--quick]

Scenarios (each printed with min / median / max and ratios):
  1. the real repository: `wealist-promote --env dev --tag X` (direct, no push) against
     `sed` on the tag lines + `kustomize build overlays/dev` + `git commit -qam`, interleaved pairs,
     each in its own clone; the ratio is the median of the per-pair ratios.
  2. start-up: `wealist-promote --help` and `wealist --help`.
  3. scale: a generated repository, 40 components x 6 environments (built from the real base):
     the same pairs there; promotion with 2 vs 6 environments; `wealist validate` against the serial
     sum of the same renders; status and history over 1,000 promotion commits.
  4. memory: peak RSS of a promotion (the Python process; kustomize is a child).
  5. registry: what asking a real local registry (docker-registry on 127.0.0.1) adds to a promotion
     of two images: interleaved pairs with and without the check, and the check alone in-process.
Figures only, no assertions: targets are judged by people reading the output.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    # The scenarios below measure the tool without a registry (the images are made up); the registry
    # scenario turns the check back on against a real local registry.
    "WEALIST_NO_VERIFY_IMAGE": "1",
}


def sh(cmd: list[str] | str, cwd: Path, env: dict[str, str] | None = None, check: bool = True) -> None:
    subprocess.run(
        cmd,
        cwd=cwd,
        shell=isinstance(cmd, str),
        check=check,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **GIT_ENV, **(env or {})},
    )


def repeat(action: Callable[[], object], n: int) -> list[float]:
    """Wall time of ``n`` runs of ``action``, in seconds."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return times


def timed(cmd: list[str] | str, cwd: Path, env: dict[str, str] | None = None) -> float:
    return repeat(lambda: sh(cmd, cwd, env), 1)[0]


TARGETS: list[tuple[str, float, float, str]] = []  # (what, measured, limit, unit)


def target(what: str, measured: float, limit: float, unit: str) -> None:
    """Record a figure against its target (issue 14's); all are printed with verdicts at the end."""
    TARGETS.append((what, measured, limit, unit))


def print_targets() -> None:
    print("targets")
    for what, measured, limit, unit in TARGETS:
        verdict = "met" if measured <= limit else "NOT MET"
        print(f"  {what:<62} {measured:8.2f}{unit:<3} <= {limit:g}{unit:<3} {verdict}")


def summary(name: str, values: list[float], unit: str = "ms") -> float:
    scale = 1000 if unit == "ms" else 1
    med = statistics.median(values)
    low, high = min(values) * scale, max(values) * scale
    print(
        f"  {name:<52} min {low:8.1f}  median {med * scale:8.1f}  max {high:8.1f} {unit}  (n={len(values)})"
    )
    return med


def renderer() -> list[str]:
    from wealist.render import find_renderer

    return list(find_renderer().argv)


def world(source: Path, where: Path) -> tuple[Path, Path]:
    """A bare origin with ``source``'s files committed, and two clones (tool, baseline)."""
    seed = where / "seed"
    shutil.copytree(source, seed, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info"))
    sh(["git", "init", "-q", "-b", "main"], seed)
    sh(["git", "add", "-A"], seed)
    sh(["git", "commit", "-qm", "seed"], seed)
    sh(["git", "clone", "-q", "--bare", str(seed), str(where / "origin.git")], where)
    clones = []
    for name in ("tool", "baseline"):
        sh(["git", "clone", "-q", str(where / "origin.git"), str(where / name)], where)
        sh(["git", "config", "user.name", "bench"], where / name)
        sh(["git", "config", "user.email", "bench@example.com"], where / name)
        clones.append(where / name)
    return clones[0], clones[1]


def pairs(tool: Path, baseline: Path, env: str, n: int, render: list[str]) -> list[tuple[float, float]]:
    kustomization = f"overlays/{env}/kustomization.yaml"
    build = " ".join(render) + f" overlays/{env} >/dev/null"
    # One warm-up of each (page cache, Python bytecode), not measured.
    sh([str(BIN / "wealist-promote"), "--env", env, "--tag", "warmup"], tool)
    sh(
        f"sed -i 's/newTag: .*/newTag: warmup/' {kustomization} && {build} && git commit -qam warmup",
        baseline,
    )
    result = []
    for i in range(n):
        tag = f"v0.{i}.0"
        t_tool = timed([str(BIN / "wealist-promote"), "--env", env, "--tag", tag], tool)
        bump = f"sed -i 's/newTag: .*/newTag: {tag}/' {kustomization}"
        t_base = timed(f"{bump} && {build} && git commit -qam 'bump {tag}'", baseline)
        result.append((t_tool, t_base))
    return result


def report_pairs(title: str, measured: list[tuple[float, float]]) -> float:
    print(title)
    summary("wealist-promote --env dev --tag X", [t for t, _ in measured])
    summary("baseline: sed + kustomize build + git commit -qam", [b for _, b in measured])
    ratios = [t / b for t, b in measured]
    ratio = statistics.median(ratios)
    print(
        f"  ratio tool/baseline (median of {len(ratios)} per-pair ratios): {ratio:.2f}x "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f})"
    )
    return ratio


def floor(baseline: Path, render: list[str], n: int, env: str = "dev") -> float:
    """What this stack cannot go below for a promotion: the interpreter with the modules a
    promotion imports, one render, one commit. Seconds (median of ``n``)."""
    imports = [sys.executable, "-c", "import wealist.cli, wealist.promote, git, ruamel.yaml, click"]
    t_imports = statistics.median(timed(imports, REPO) for _ in range(n))
    t_render = statistics.median(timed([*render, f"overlays/{env}"], baseline) for _ in range(n))
    commits = []
    for i in range(n):
        (baseline / "floor.txt").write_text(str(i))
        sh(["git", "add", "floor.txt"], baseline)
        commits.append(timed(["git", "commit", "-qm", f"floor {i}"], baseline))
    t_commit = statistics.median(commits)
    print(
        f"  stack floor: interpreter + imports {t_imports * 1000:.0f} ms"
        f" + one render {t_render * 1000:.0f} ms"
        f" + one commit {t_commit * 1000:.0f} ms = {(t_imports + t_render + t_commit) * 1000:.0f} ms"
    )
    return t_imports + t_render + t_commit


def startup(n: int) -> None:
    print("start-up")
    for cmd in (["wealist-promote", "--help"], ["wealist", "--help"]):
        runs = [timed([str(BIN / cmd[0]), *cmd[1:]], REPO) for _ in range(n)]
        target(f"{' '.join(cmd)}", summary(" ".join(cmd), runs) * 1000, 120, "ms")
    runs = [timed([sys.executable, "-c", "pass"], REPO) for _ in range(n)]
    summary("for reference: python -c pass", runs)


# -- the generated repository ------------------------------------------------------------------


def generate(where: Path, components: int, environments: int) -> Path:
    """``components`` stateless services (copies of the real frontend base) in ``environments``."""
    root = where / f"gen-{components}x{environments}"
    envs = [f"env{i}" for i in range(environments)]
    names = [f"svc{i:02d}" for i in range(components)]
    for name in names:
        base = root / "base" / name
        shutil.copytree(REPO / "base" / "frontend", base, ignore=shutil.ignore_patterns("namespace"))
        for file in base.iterdir():
            text = file.read_text().replace("frontend-service", f"{name}-service")
            text = text.replace("wealist/frontend", f"wealist/{name}").replace("frontend", name)
            file.write_text(text)
    for env in envs:
        overlay = root / "overlays" / env
        for name in names:
            child = overlay / name
            child.mkdir(parents=True)
            (child / "kustomization.yaml").write_text(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                f"namespace: {name}-{env}\nresources:\n  - namespace.yaml\n  - ../../../base/{name}\n"
                f"replicas:\n  - name: {name}\n    count: 1\n"
            )
            (child / "namespace.yaml").write_text(
                f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}-{env}\n  labels:\n"
                "    pod-security.kubernetes.io/enforce: restricted\n"
            )
        images = "".join(f"  - name: wealist/{n}\n    newTag: v1.0.0\n" for n in names)
        resources = "".join(f"  - {n}\n" for n in names)
        (overlay / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"resources:\n{resources}images:\n{images}"
        )
    config = "namespaces:\n" + "".join(f"  {n}: {n}\n" for n in names)
    config += "environments:\n" + "".join(f"  - name: {e}\n    delivery: direct\n" for e in envs)
    config += "components:\n" + "".join(f"  {n}:\n    image: wealist/{n}\n" for n in names)
    (root / "promotion.yaml").write_text(config)
    return root


def history_repo(where: Path, commits: int) -> Path:
    """The real repository plus ``commits`` promotion commits (dev and prod alternating)."""
    tool, _ = world(REPO, where / "hist")
    kustomization = "overlays/dev/kustomization.yaml"
    original = (tool / kustomization).read_text()
    # git fast-import writes 1,000 real commits in well under a second.
    lines = []
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tool, capture_output=True, text=True, check=True
    ).stdout
    for i in range(commits):
        env = "dev" if i % 2 == 0 else "prod"
        tag = f"v{i // 2}.0.0"
        content = original.replace("newTag: v1.0.0", f"newTag: {tag}")
        message = (
            f"promote({env}): board-api v0 → {tag}\n\nWealist-Env: {env}\n"
            f"Wealist-Image: board-api=wealist/board-api:{tag}\n"
            "Wealist-Previous: board-api=wealist/board-api:v0\n"
        )
        data = message.encode()
        blob = content.encode()
        lines.append(b"commit refs/heads/main\n")
        lines.append(f"committer bench <bench@example.com> {1700000000 + i} +0000\n".encode())
        lines.append(f"data {len(data)}\n".encode() + data)
        if i == 0:
            lines.append(f"from {head.strip()}\n".encode())
        path = kustomization if env == "dev" else "overlays/prod/kustomization.yaml"
        lines.append(f"M 100644 inline {path}\ndata {len(blob)}\n".encode() + blob + b"\n")
    subprocess.run(["git", "fast-import", "--quiet", "--force"], cwd=tool, input=b"".join(lines), check=True)
    sh(["git", "reset", "-q", "--hard", "main"], tool)
    return tool


def scale(where: Path, n: int, render: list[str]) -> None:
    print("scale: 40 components x 6 environments, generated from the real base")
    big = generate(where, 40, 6)
    tool, baseline = world(big, where / "w6")
    measured = pairs(tool, baseline, "env0", n, render)
    ratio = report_pairs("  promotion of env0 (40 images):", measured)
    target("promote, 40 components x 6 environments: tool / baseline", ratio, 1.25, "x")
    stack = floor(baseline, render, n, "env0")
    baseline_median = statistics.median(b for _, b in measured)
    print(
        f"  stack floor / baseline: {stack / baseline_median:.2f}x;"
        f" tool / stack floor: {statistics.median(t for t, _ in measured) / stack:.2f}x"
    )

    small = generate(where, 40, 2)
    tool2, _ = world(small, where / "w2")
    six, two = [], []
    for i in range(n):
        six.append(timed([str(BIN / "wealist-promote"), "--env", "env0", "--tag", f"s{i}"], tool))
        two.append(timed([str(BIN / "wealist-promote"), "--env", "env0", "--tag", f"s{i}"], tool2))
    print("  promotion does not grow with environments:")
    m6 = summary("40 components, 6 environments", six)
    m2 = summary("40 components, 2 environments", two)
    print(f"  6 vs 2 environments: {m6 / m2:.2f}x")

    from wealist.config import load_config
    from wealist.render import find_renderer

    overlays = [tool / e.overlay for e in load_config(tool).environments]

    def render_serially() -> None:
        for overlay in overlays:
            sh([*render, str(overlay)], tool)

    serial = repeat(render_serially, 3)
    parallel = repeat(lambda: find_renderer().build_many(overlays), 3)
    print(f"  rendering all 6 environments on {os.cpu_count()} cores:")
    s = summary("serial sum of the 6 renders", serial)
    p = summary("wealist's parallel render (validate's first step)", parallel)
    print(f"  parallel / serial: {p / s:.2f}x")
    # The generated components are not weAlist's, so validate reports findings (exit 1): only its
    # time is of interest here.
    cold = {"WEALIST_NO_CACHE": "1"}
    command = [str(BIN / "wealist"), "validate", "--format", "json"]
    runs = repeat(lambda: sh(command, tool, env=cold, check=False), 3)
    v = summary("wealist validate, no cache (render all + every check)", runs)
    print(f"  validate / serial sum of renders: {v / s:.2f}x")
    target("validate 40x6, no cache: validate / serial renders", v / s, 0.8, "x")
    sh(command, tool, check=False)  # fills the cache
    warm = summary(
        "wealist validate again, tree unchanged (cached)", repeat(lambda: sh(command, tool, check=False), 5)
    )
    target("validate 40x6, unchanged tree (seconds)", warm, 0.3, "s")

    hist = history_repo(where, 1000)
    print("  1,000 promotion commits:")
    st = summary("wealist status", [timed([str(BIN / "wealist"), "status"], hist) for _ in range(n)])
    target("status, 1,000 promotion commits", st * 1000, 300, "ms")
    hl = summary(
        "wealist history --limit 1000",
        [timed([str(BIN / "wealist"), "history", "--limit", "1000"], hist) for _ in range(n)],
    )
    target("history --limit 1000, 1,000 promotion commits", hl * 1000, 300, "ms")
    summary("wealist history (last 20)", [timed([str(BIN / "wealist"), "history"], hist) for _ in range(n)])
    huge = history_repo(where / "huge", 100_000)
    print("  100,000 promotion commits:")
    h20 = summary(
        "wealist history --limit 20", [timed([str(BIN / "wealist"), "history"], huge) for _ in range(5)]
    )
    target("history --limit 20, 100,000 promotion commits", h20 * 1000, 300, "ms")


def memory(where: Path) -> None:
    tool, _ = world(REPO, where / "mem")
    code = (
        "import resource, sys; sys.argv = ['wealist-promote', '--env', 'dev', '--tag', 'v9.9.9'];"
        "from wealist.cli import promote_cmd\n"
        "try:\n    promote_cmd.main(standalone_mode=False)\nfinally:\n"
        "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tool,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **GIT_ENV},
    )
    rss_kib = int(proc.stderr.strip().splitlines()[-1])
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print("memory")
    print(
        f"  peak RSS of a promotion (the Python process): {rss_kib / 1024:.1f} MiB"
        f"  (largest child so far, e.g. kustomize: {children / 1024:.1f} MiB)"
    )
    target("peak RSS of a promotion (MiB)", rss_kib / 1024, 80, "MiB")


def registry_cost(where: Path, n: int) -> None:
    """The registry check's cost: promotions with and without it, interleaved, against a real
    registry on loopback; the median of the per-pair differences."""
    import registrylab
    from wealist.registry import Endpoint, Registry

    print("registry (two images, a real docker-registry on 127.0.0.1)")
    if shutil.which(registrylab.BINARY) is None:
        print("  skipped: docker-registry is not installed (apt-get install docker-registry)")
        return
    server = registrylab.RealRegistry(where / "registry-data", "anonymous")
    try:
        tags = ["warmup", *(f"v0.{i}.0" for i in range(n))]
        for tag in tags:
            for name in ("wealist/board-api", "wealist/frontend"):
                server.push_image(name, tag, salt=tag)
        checked, unchecked = world(REPO, where / "registry")
        for clone in (checked, unchecked):
            config = clone / "promotion.yaml"
            config.write_text(
                config.read_text().replace("address: localhost:5001", f"address: {server.address}")
            )
            sh(["git", "commit", "-qam", "the local registry"], clone)
        verify = {"WEALIST_NO_VERIFY_IMAGE": ""}
        sh([str(BIN / "wealist-promote"), "--env", "dev", "--tag", "warmup"], checked, verify)
        sh([str(BIN / "wealist-promote"), "--env", "dev", "--tag", "warmup"], unchecked)
        added = []
        for tag in tags[1:]:
            with_check = timed([str(BIN / "wealist-promote"), "--env", "dev", "--tag", tag], checked, verify)
            without = timed([str(BIN / "wealist-promote"), "--env", "dev", "--tag", tag], unchecked)
            added.append(with_check - without)
        summary("added per promotion (with check - without, per pair)", added)
        images = [(f"k3d-wealist-registry:5000/wealist/{c}", "warmup") for c in ("board-api", "frontend")]
        endpoints = {"k3d-wealist-registry:5000": Endpoint(server.address, plain_http=True)}
        alone = summary(
            "the check alone, in-process (fresh client)",
            repeat(lambda: Registry(endpoints).check_many(images), n),
        )
        target(
            "registry check added to a promotion of 2 images (ms)", statistics.median(added) * 1000, 15, "ms"
        )
        target("registry check alone, 2 images (ms)", alone * 1000, 15, "ms")
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=15, help="interleaved pairs per comparison (default 15)")
    parser.add_argument("--quick", action="store_true", help="skip the scale scenarios")
    args = parser.parse_args()
    render = renderer()
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, renderer: {' '.join(render)}"
    )
    with tempfile.TemporaryDirectory(prefix="wealist-bench-") as tmp:
        where = Path(tmp)
        tool, baseline = world(REPO, where / "real")
        measured = pairs(tool, baseline, "dev", args.pairs, render)
        ratio = report_pairs("the real repository, dev (2 images):", measured)
        target("promote, real repository: tool / shell baseline", ratio, 2.4, "x")
        stack = floor(baseline, render, args.pairs)
        tool_median = statistics.median(t for t, _ in measured)
        target("promote, real repository: tool / stack floor", tool_median / stack, 1.15, "x")
        startup(20)
        memory(where)
        # A difference of two ~250 ms runs, each ±15 % on this kind of VM: three times the pairs.
        registry_cost(where, 3 * args.pairs)
        if not args.quick:
            scale(where, args.pairs, render)
        print_targets()


if __name__ == "__main__":
    main()
