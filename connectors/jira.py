"""Jira Cloud and Jira Server/Data Center: config, match rules, write-back targets, connector.

The config and rule models come first (they are pure and used by ``okrsync validate`` and the
progress core); the connector that talks to Jira follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from connectors.base import ConnectorPlugin, PublishConfig, RuleConfig, SourceConfig
from syncer.config import Duration
from syncer.model import ItemKind, WorkItem

__all__ = ["PLUGIN", "JiraAuth", "JiraPublish", "JiraRule", "JiraSource"]


class JiraAuth(BaseModel):
    """Cloud: ``email`` + API ``token`` (Basic). Data Center: ``pat`` (Bearer)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: str | None = None
    token: str | None = None
    pat: str | None = None

    @model_validator(mode="after")
    def _one_scheme(self) -> JiraAuth:
        if self.pat and (self.email or self.token):
            raise ValueError("auth: give either email + token (Cloud) or pat (Data Center), not both")
        if not self.pat and not (self.email and self.token):
            raise ValueError("auth: needs email and token (Cloud) or pat (Data Center)")
        return self


class JiraSource(SourceConfig):
    """A Jira site (Cloud, or a Server/Data Center base URL)."""

    type: Literal["jira"]
    url: str
    auth: JiraAuth
    scope: str
    """JQL for the work watched for unaligned items, e.g. ``project in (PLAT, MOB)``."""
    story_points_field: str = "auto"
    excluded_resolutions: tuple[str, ...] = ("Won't Do", "Duplicate", "Cannot Reproduce")
    overlap: Duration = timedelta(minutes=10)
    timeout: Duration = timedelta(seconds=30)
    page_size: int = 100

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.auth.token, self.auth.pat) if s)


class JiraRule(RuleConfig):
    """Which Jira issues count for a key result. Keys are AND-ed."""

    epic: str | None = None
    """Children of this epic (team-managed ``parent`` and company-managed Epic Link alike)."""
    parent: str | None = None
    """Every descendant of this issue at any depth (evaluated by Jira)."""
    jql: str | None = None
    """Issues this JQL returns now (evaluated by Jira with an ids-only search)."""
    labels: tuple[str, ...] = ()
    project: str | None = None
    issue_type: str | None = None
    component: str | None = None
    fix_version: str | None = None

    def needs_members(self) -> bool:
        return bool(self.jql or self.parent)

    def matches(self, item: WorkItem, members: Mapping[str, frozenset[str]]) -> bool:
        if item.source != self.source or item.kind is ItemKind.SUBTASK:
            return False
        if self.epic and (item.parent_key or "").upper() != self.epic.upper():
            return False
        if self.needs_members() and item.id not in members.get(self.fingerprint(), frozenset()):
            return False
        if self.labels and not set(self.labels) <= set(item.labels):
            return False
        if self.project and item.container.upper() != self.project.upper():
            return False
        if self.issue_type and item.issue_type.casefold() != self.issue_type.casefold():
            return False
        if self.component and self.component not in item.components:
            return False
        return not (self.fix_version and self.fix_version not in item.fix_versions)


class JiraPublish(PublishConfig):
    """Write a key result's progress to a Jira issue: a number ``field`` or a ``comment``."""

    issue: str
    field: str | None = None
    comment: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> JiraPublish:
        if bool(self.field) == bool(self.comment):
            raise ValueError("publish: give exactly one of `field: <field id>` or `comment: true`")
        return self

    def target(self) -> str:
        return f"{self.issue}:{self.field or 'comment'}"


def _connector_factory(name: str, config: SourceConfig, http: object) -> object:
    raise NotImplementedError("the Jira connector is being written")


PLUGIN = ConnectorPlugin(
    type="jira",
    source_model=JiraSource,
    rule_model=JiraRule,
    publish_model=JiraPublish,
    factory=_connector_factory,
)
