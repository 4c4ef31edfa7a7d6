"""Schemas: every built-in object against Kubernetes' own (strict), Argo CD documents against
their CRDs made strict."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from ..render import Object, name_of
from .facts import KUBERNETES_VERSION


def check_schemas(objects: list[Object], add: Any) -> None:
    """Every built-in object against Kubernetes' strict schema; SealedSecrets by shape."""
    for obj in objects:
        if obj.get("kind") == "SealedSecret":
            _check_sealed_secret_shape(obj, add)
            continue
        api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
        validator = schema_validator(api_version, kind)
        if validator is None:
            add(
                "schema",
                name_of(obj),
                f"no schema for {obj.get('apiVersion')} {obj.get('kind')} in Kubernetes {KUBERNETES_VERSION}",
            )
            continue
        if _shape_passes(api_version, kind, obj):
            continue
        error = next(iter(validator.iter_errors(obj)), None)
        if error is not None:
            path = "/".join(str(p) for p in error.absolute_path)
            add("schema", name_of(obj), error.message + (f" at {path}" if path else ""))


# Stands for every string no enum of the schemas lists: the schemas never tell such strings apart.
_ANY_STRING = "\0"
# What could reject one string and accept another that is not in an enum. Kubernetes' schemas use
# none of them (formats are annotations here: the validator gets no format checker).
_STRING_KEYWORDS = ("pattern", "minLength", "maxLength", "const")


def _shape_passes(api_version: str, kind: str, obj: Object) -> bool:
    """Whether ``obj`` certainly validates, judged by its shape: every string no enum lists becomes
    one placeholder, so the Deployments of forty services in six environments are a handful of
    shapes, each validated once per run (validation is most of validate's own CPU). False when
    unsure: the object itself is then validated, which also gives the message."""
    enums = _enum_strings(api_version, kind)
    if enums is None:
        return False
    shape = _shape(obj, enums)
    key = (api_version, kind, repr(shape))  # repr keeps types apart: "1" is not 1
    verdict = _SHAPES.get(key)
    if verdict is None:
        validator = schema_validator(api_version, kind)
        verdict = _SHAPES[key] = next(iter(validator.iter_errors(shape)), None) is None
        if len(_SHAPES) > 4096:  # a long-lived process (the tests) validating many repositories
            _SHAPES.clear()
    return verdict


_SHAPES: dict[tuple[str, str, str], bool] = {}


def _shape(value: Any, enums: frozenset[str]) -> Any:
    if isinstance(value, str):
        return value if value in enums else _ANY_STRING
    if isinstance(value, dict):
        return {key: _shape(item, enums) for key, item in value.items()}  # keys stay: strict schemas
    if isinstance(value, list):
        return [_shape(item, enums) for item in value]
    return value


@functools.cache
def _enum_strings(api_version: str, kind: str) -> frozenset[str] | None:
    """Every string an enum of this kind's schema (or the shared definitions) lists; None if one of
    them constrains strings otherwise, or there is no schema: then shapes prove nothing."""
    schema = _kind_schema(api_version, kind)
    shared = _definitions_enums()
    own = _schema_enums(schema) if schema is not None else None
    return None if shared is None or own is None else shared | own


@functools.cache
def _definitions_enums() -> frozenset[str] | None:
    return _schema_enums(_definitions())


def _schema_enums(root: Any) -> frozenset[str] | None:
    enums: set[str] = set()
    schemas = [root]
    while schemas:
        schema = schemas.pop()
        if isinstance(schema, list):
            schemas += schema
            continue
        if not isinstance(schema, dict):
            continue
        if any(keyword in schema for keyword in _STRING_KEYWORDS):
            return None
        enums.update(v for v in schema.get("enum") or () if isinstance(v, str))
        for keyword, value in schema.items():
            if keyword in ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas"):
                schemas += list(value.values())  # names -> schemas: the names are not keywords
            elif keyword not in ("enum", "default", "examples", "description", "required"):
                schemas.append(value)
    return frozenset(enums)


@functools.cache
def _definitions() -> Any:
    return _schema_file("_definitions.json")


@functools.cache
def schema_validator(api_version: str, kind: str) -> Any:
    """kubernetes-validate's strict schema for one kind, compiled once per run.

    kubernetes_validate.validate() re-reads its 2 MB definitions file for every object (5 ms each);
    these are the same files and the same validator class, loaded once.
    """
    import jsonschema
    from referencing import Registry, Resource

    schema = _kind_schema(api_version, kind)
    if schema is None:
        return None
    registry = Resource.from_contents(schema) @ (Resource.from_contents(_definitions()) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


@functools.cache
def _kind_schema(api_version: str, kind: str) -> Any:
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        return _schema_file(f"{kind.lower()}-{group_version}.json")
    except FileNotFoundError:
        return None


def _schema_file(name: str) -> Any:
    import json
    from importlib import resources

    minor = ".".join(KUBERNETES_VERSION.split(".")[:2])
    folder = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{minor}.0-local-strict"
    return json.loads((folder / name).read_text(encoding="utf-8"))


def _check_sealed_secret_shape(obj: Object, add: Any) -> None:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    template_meta = ((spec.get("template") or {}).get("metadata")) or {}
    if obj.get("apiVersion") != "bitnami.com/v1alpha1":
        add("schema", name_of(obj), "SealedSecret must be bitnami.com/v1alpha1")
    if not isinstance(spec.get("encryptedData"), dict) or not spec["encryptedData"]:
        add("schema", name_of(obj), "SealedSecret has no spec.encryptedData")
    for key in ("name", "namespace"):
        if template_meta.get(key) not in (None, meta.get(key)):
            add(
                "schema",
                name_of(obj),
                f"spec.template.metadata.{key} differs from metadata.{key}: it would not unseal",
            )


def load_crd_schemas(source: Path | list[Path]) -> dict[str, dict[str, Any]]:
    """kind -> the CRD's openAPIV3Schema, made strict: undeclared keys are errors (a `selfHeel`
    typo would pass Argo CD's own schema) unless the schema preserves unknown fields. ``source``
    is a directory of CRD files, or the files."""
    from ruamel.yaml import YAML

    schemas = {}
    paths = sorted(source.glob("*.y*ml")) if isinstance(source, Path) else source
    for path in paths:
        for doc in YAML(typ="safe").load_all(path.read_text(encoding="utf-8")):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            kind = doc["spec"]["names"]["kind"]
            version = next((v for v in doc["spec"]["versions"] if v.get("storage", True)), None)
            if version is None:
                from ..errors import ConfigError

                raise ConfigError(f"{path.name}: the CRD {kind} has no storage version")
            schemas[kind] = _strict(version["schema"]["openAPIV3Schema"], top=True)
    if not schemas:
        from ..errors import ConfigError

        raise ConfigError(f"no CustomResourceDefinition in {source}")
    return schemas


def _strict(schema: Any, top: bool = False) -> Any:
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    if top:
        # The CRD schema leaves metadata open; check the fields we write.
        result.setdefault("properties", {})["metadata"] = {"type": "object"}
    return result
