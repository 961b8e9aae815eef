"""Roles, actions and environment-scoped grants (least privilege: nothing unless bound).

A principal holds bindings ``(role, environment, models)``; an action on a model is allowed only when some
binding's role grants the action, names the model's environment exactly, and covers the model.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Action(enum.Enum):
    PREDICT = "predict"
    READ_METADATA = "read-metadata"
    READ_AUDIT = "read-audit"
    MANAGE = "manage"


class Role(enum.Enum):
    DATA_ENGINEER = "data-engineer"
    DATA_SCIENTIST = "data-scientist"
    ML_ENGINEER = "ml-engineer"
    MLOPS_ENGINEER = "mlops-engineer"
    SECURITY_AUDITOR = "security-auditor"
    MODEL_CONSUMER = "model-consumer"


ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.DATA_ENGINEER: frozenset({Action.READ_METADATA}),
    Role.DATA_SCIENTIST: frozenset({Action.PREDICT, Action.READ_METADATA}),
    Role.ML_ENGINEER: frozenset({Action.PREDICT, Action.READ_METADATA}),
    Role.MLOPS_ENGINEER: frozenset({Action.PREDICT, Action.READ_METADATA, Action.READ_AUDIT, Action.MANAGE}),
    Role.SECURITY_AUDITOR: frozenset({Action.READ_METADATA, Action.READ_AUDIT}),
    Role.MODEL_CONSUMER: frozenset({Action.PREDICT}),
}


@dataclass(frozen=True)
class Grant:
    role: Role
    environment: str
    models: frozenset[str]

    def covers(self, action: Action, environment: str, model: str | None) -> bool:
        if action not in ROLE_ACTIONS[self.role] or environment != self.environment:
            return False
        return model is None or "*" in self.models or model in self.models


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``caller`` is the authenticated identity (API key owner or JWT subject)."""

    caller: str
    user: str
    method: str  # "api-key" | "jwt"
    credential_id: str
    grants: tuple[Grant, ...]

    def may(self, action: Action, environment: str, model: str | None = None) -> bool:
        return any(g.covers(action, environment, model) for g in self.grants)

    def roles_for(self, environment: str, model: str) -> frozenset[Role]:
        return frozenset(
            g.role
            for g in self.grants
            if g.environment == environment and g.covers(Action.PREDICT, environment, model)
        )
