"""GitHub (github.com and Enterprise Server): config, match rules, write-back targets, connector.

The config and rule models come first (they are pure and used by ``okrsync validate`` and the
progress core); the connector that talks to GitHub follows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Literal

from pydantic import field_validator

from connectors.base import ConnectorPlugin, PublishConfig, RuleConfig, SourceConfig
from syncer.config import Duration
from syncer.model import ItemKind, WorkItem

__all__ = ["PLUGIN", "GitHubPublish", "GitHubRule", "GitHubSource"]

_REPO = re.compile(r"^[\w.-]+/[\w.-]+$")
_ISSUE_REF = re.compile(r"^[\w.-]+/[\w.-]+#\d+$")


class GitHubSource(SourceConfig):
    """A GitHub API base (``https://api.github.com`` or ``https://ghe.example.com/api/v3``)."""

    type: Literal["github"]
    url: str = "https://api.github.com"
    token: str
    repos: tuple[str, ...]
    """The repositories watched for unaligned items (``owner/name``)."""
    overlap: Duration = timedelta(minutes=5)
    timeout: Duration = timedelta(seconds=30)

    @field_validator("repos")
    @classmethod
    def _repo_names(cls, repos: tuple[str, ...]) -> tuple[str, ...]:
        bad = [r for r in repos if not _REPO.match(r)]
        if bad:
            raise ValueError(f"repos: {', '.join(bad)} is not owner/name")
        return repos

    def secrets(self) -> tuple[str, ...]:
        return (self.token,) if self.token else ()


class GitHubRule(RuleConfig):
    """Which GitHub issues or pull requests count for a key result. Keys are AND-ed."""

    repo: str | None = None
    labels: tuple[str, ...] = ()
    """All of these labels must be present (compared case-insensitively, as GitHub does)."""
    milestone: str | None = None
    """Milestone title."""
    type: Literal["issue", "pull_request", "any"] = "issue"
    parent: str | None = None
    """Sub-issues of this issue, written ``owner/repo#number``."""

    def matches(self, item: WorkItem, members: Mapping[str, frozenset[str]]) -> bool:
        if item.source != self.source:
            return False
        is_pr = item.kind is ItemKind.PULL_REQUEST
        if (self.type == "issue" and is_pr) or (self.type == "pull_request" and not is_pr):
            return False
        if self.repo and item.container.casefold() != self.repo.casefold():
            return False
        if self.labels and not {x.casefold() for x in self.labels} <= {x.casefold() for x in item.labels}:
            return False
        if self.milestone and item.milestone != self.milestone:
            return False
        return not (self.parent and (item.parent_key or "").casefold() != self.parent.casefold())


class GitHubPublish(PublishConfig):
    """Show a key result's progress in a marked block of an issue's body (``owner/repo#number``)."""

    issue: str

    @field_validator("issue")
    @classmethod
    def _issue_ref(cls, issue: str) -> str:
        if not _ISSUE_REF.match(issue):
            raise ValueError(f"issue: {issue!r} is not owner/repo#number")
        return issue

    def target(self) -> str:
        return f"{self.issue}:body"


def _connector_factory(name: str, config: SourceConfig, http: object) -> object:
    raise NotImplementedError("the GitHub connector is being written")


PLUGIN = ConnectorPlugin(
    type="github",
    source_model=GitHubSource,
    rule_model=GitHubRule,
    publish_model=GitHubPublish,
    factory=_connector_factory,
)
