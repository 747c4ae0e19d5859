"""The corpus's shape: clusters of events that are one error each, rendered from templates."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

_PLACEHOLDER = re.compile(r"\{([a-z]\w*)\}")


@dataclass(frozen=True)
class Cluster:
    """One error: every variant must group together, and apart from every other cluster.

    Attributes:
        name: Unique; the ground-truth label.
        language: python, javascript, java, go or ruby.
        template: The printed trace with ``{placeholders}``; None for message-only logs.
        error_type: What the log's ``error_type`` says (None: the trace must tell).
        variants: Values of one event each (another deploy, line numbers, ids, prefixes);
            the keys ``message``, ``error_message`` and ``error_type`` set those fields, and
            ``template`` replaces the cluster's (the same error printed another way).
    """

    name: str
    language: str
    template: str | None
    error_type: str | None
    variants: Sequence[dict[str, Any]]


@dataclass(frozen=True)
class Event:
    cluster: str
    language: str
    error_type: str | None
    error_message: str | None
    message: str | None
    stack_trace: str | None


def render(template: str, values: dict[str, Any]) -> str:
    # Not str.format: Go argument lists and Java lambdas are full of braces. Two passes, so
    # that a value may itself hold a placeholder ("KeyError: {id}").
    for _ in range(2):
        template = _PLACEHOLDER.sub(
            lambda m: str(values[m[1]]) if m[1] in values else m[0], template)
    leftover = _PLACEHOLDER.search(template.replace("{{", "").replace("}}", ""))
    assert leftover is None, f"unfilled placeholder {leftover[0] if leftover else ''}"
    return template.replace("{{", "{").replace("}}", "}")


def variants(*axes: Sequence[dict[str, Any]], **fixed: Any) -> list[dict[str, Any]]:
    """One variant per element of each axis, zipped cyclically (not the product: a handful of
    variants per cluster is what keeps the pair counts balanced)."""
    count = max(len(axis) for axis in axes)
    out = []
    for index in range(count):
        merged: dict[str, Any] = {}
        for axis in axes:
            merged.update(axis[index % len(axis)])
        merged.update(fixed)
        out.append(merged)
    return out


def events(clusters: Sequence[Cluster]) -> Iterator[Event]:
    names = [c.name for c in clusters]
    assert len(names) == len(set(names)), "cluster names must be unique"
    for cluster in clusters:
        for values in cluster.variants:
            template = values.get("template", cluster.template)
            trace = render(template, values) if template else None
            message = values.get("message")
            yield Event(cluster.name, cluster.language,
                        values.get("error_type", cluster.error_type),
                        render(values["error_message"], values)
                        if "error_message" in values else None,
                        render(message, values) if message else None, trace)
