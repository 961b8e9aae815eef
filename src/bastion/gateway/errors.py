"""The gateway's errors.

    BastionError
    ├── ConfigError (bastion.errors)   a gateway configuration or key file is malformed
    └── GatewayError                   the gateway cannot start or serve as configured
        ├── ModelRefused               a model did not pass the load-time checks (scan, evidence)
        └── LimiterUnavailable         the shared limit store (Redis) cannot be reached: fail closed

``HttpError`` is not a ``BastionError``: it is the one way a request is refused, and the edge turns it into a
JSON body with the status, a stable ``error`` code and a message (never a stack trace).
"""

from __future__ import annotations

from bastion.errors import BastionError


class GatewayError(BastionError):
    """The gateway cannot do what its configuration asks."""


class ModelRefused(GatewayError):
    """A model failed a load-time check; ``reason`` says which."""


class LimiterUnavailable(GatewayError):
    """The limit store could not answer; requests are refused rather than let through."""


class HttpError(Exception):
    """A refusal with its HTTP status, a stable machine-readable code and a human message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.close = close
