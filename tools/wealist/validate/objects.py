"""Small readers of rendered objects, shared by the checks."""

from __future__ import annotations

from typing import Any

from ..render import Object
from .facts import WAVE


def group_of(obj: Object) -> str:
    api_version = str(obj.get("apiVersion", ""))
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def find_object(objects: list[Object], kind: str, name: str, namespace: str | None = None) -> Object | None:
    for obj in objects:
        meta = obj.get("metadata") or {}
        if (
            obj.get("kind") == kind
            and meta.get("name") == name
            and (namespace is None or meta.get("namespace") == namespace)
        ):
            return obj
    return None


def env_value(container: dict[str, Any], name: str) -> dict[str, Any] | None:
    for item in container.get("env") or []:
        if item.get("name") == name:
            return dict(item)
    return None


def resolve_env(objects: list[Object], ns: str, container: dict[str, Any], name: str) -> str | None:
    item = env_value(container, name)
    if item is None:
        return None
    if "value" in item:
        return str(item["value"])
    ref = (item.get("valueFrom") or {}).get("configMapKeyRef")
    if ref:
        cm = find_object(objects, "ConfigMap", ref.get("name", ""), ns)
        value = ((cm or {}).get("data") or {}).get(ref.get("key", ""))
        return None if value is None else str(value)
    return None


def wave_of(obj: Object) -> int:
    return int(((obj.get("metadata") or {}).get("annotations") or {}).get(WAVE, "0"))
