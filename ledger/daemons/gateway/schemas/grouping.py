"""Request/response models of the grouping routes (fingerprint rules, in-app, merges)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ledger.core import grouping_rules

#: Request bodies take JSON types as they are: `false` is not a position, `1` not a rule.
_STRICT = ConfigDict(strict=True)


class RuleBody(BaseModel):
    """A fingerprint rule to add."""

    model_config = _STRICT

    rule: str = Field(max_length=grouping_rules.MAX_RULE_CHARS, examples=[
        "error.type:ConnectionError -> connection-errors",
        'message:"*timeout*" -> {{ default }}, timeout'])
    position: int | None = Field(None, ge=0, le=grouping_rules.MAX_RULES,
                                 description="Insert before this index; default: at the end.")


class InAppBody(BaseModel):
    """Prefixes of modules, classes or package paths that are (not) the project's own code."""

    model_config = _STRICT

    include: list[str] = Field(default_factory=list,
                               max_length=grouping_rules.MAX_IN_APP_ENTRIES)
    exclude: list[str] = Field(default_factory=list,
                               max_length=grouping_rules.MAX_IN_APP_ENTRIES)


class RuleTestBody(BaseModel):
    """An event to fingerprint, with the stored rules or with ``rules`` instead."""

    model_config = _STRICT

    event: dict[str, Any] = Field(description="A log as POST /ingest/single takes it.")
    rules: list[str] | None = Field(None, max_length=grouping_rules.MAX_RULES)


class MergeBody(BaseModel):
    """Groups to merge into the group of the path."""

    model_config = _STRICT

    group_ids: list[str] = Field(min_length=1, max_length=50)


class UnmergeBody(BaseModel):
    """The group to take back out of the group of the path."""

    model_config = _STRICT

    group_id: str = Field(max_length=64)


class FingerprintRuleOut(BaseModel):
    index: int
    rule: str
    matchers: list[dict[str, str]]
    fingerprint: list[str]


class GroupingSettings(BaseModel):
    """A project's grouping setting at its current revision."""

    project_id: str
    revision: int
    rules: list[FingerprintRuleOut]
    in_app: dict[str, list[str]]
    updated_at: str | None = None
    history: list[dict[str, Any]] | None = None


class RuleTestResult(BaseModel):
    """What the event's fingerprint would be."""

    fingerprint: str | None
    method: str | None
    components: dict[str, Any]
    rule: dict[str, Any] | None = None
    revision: int
    is_error_event: bool
