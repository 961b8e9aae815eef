"""Which image of a multi-platform index: ``Platform`` (``os/arch[/variant]``) and the choice of one.

The platform asked for is the ``platform`` argument, else the one ``choose_platform`` sets for a block (the
CLI's ``--platform``), else ``$BASTION_IMAGE_PLATFORM``. Without one, only an index of exactly one image is
read; any other ambiguity is a ``TargetError`` listing the platforms on offer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from bastion.errors import UsageError
from bastion.evidence.errors import TargetError

PLATFORM_ENV = "BASTION_IMAGE_PLATFORM"


@dataclass(frozen=True)
class Platform:
    """``os/architecture[/variant]`` as OCI image indexes and configs spell it."""

    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().split("/")
        if not 2 <= len(parts) <= 3 or not all(parts):
            raise UsageError(f"platform {text!r} is not os/arch[/variant], e.g. linux/arm64 or linux/arm/v7")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def of(cls, data: Any) -> Platform | None:
        """The platform an index descriptor or an image config names (None if it names none)."""
        if not isinstance(data, Mapping):
            return None
        os_name, arch, variant = data.get("os"), data.get("architecture"), data.get("variant")
        if not isinstance(os_name, str) or not isinstance(arch, str) or not os_name or not arch:
            return None
        return cls(os_name, arch, variant if isinstance(variant, str) and variant else None)

    def matches(self, offered: Platform) -> bool:
        """Whether an image for ``offered`` is what this (asked-for) platform means.

        No variant asked: any variant of that os/arch. ``arm64`` and ``arm64/v8`` are the same."""
        if (self.os, self.architecture) != (offered.os, offered.architecture):
            return False
        if self.variant is None:
            return True
        default = "v8" if self.architecture == "arm64" else None
        return (self.variant or default) == (offered.variant or default)


_CHOSEN: ContextVar[Platform | None] = ContextVar("bastion_image_platform", default=None)


@contextmanager
def choose_platform(platform: Platform | None) -> Iterator[None]:
    """Within the block, ``read_image`` picks ``platform`` from multi-platform indexes."""
    token = _CHOSEN.set(platform)
    try:
        yield
    finally:
        _CHOSEN.reset(token)


def chosen_platform(explicit: Platform | None = None) -> Platform | None:
    """``explicit``, else the block's ``choose_platform``, else ``$BASTION_IMAGE_PLATFORM``."""
    if explicit is not None:
        return explicit
    if _CHOSEN.get() is not None:
        return _CHOSEN.get()
    text = os.environ.get(PLATFORM_ENV, "").strip()
    return Platform.parse(text) if text else None


@dataclass(frozen=True)
class Candidate:
    """An image manifest an index lists, and the index that lists it."""

    descriptor: Mapping[str, Any]
    platform: Platform | None
    index_digest: str | None  # the nested index blob's digest (None: listed in index.json itself)
    annotations: Mapping[str, Any]  # its own, else those of the index descriptor that led to it


def _describe(candidates: list[Candidate]) -> str:
    return ", ".join(
        str(c.platform) if c.platform else f"(no platform) {c.descriptor.get('digest')}" for c in candidates
    )


def choose_candidate(candidates: list[Candidate], platform: Platform | None, where: str) -> Candidate:
    """The one image the caller means; a ``TargetError`` listing what is on offer otherwise."""
    hint = "choose one with --platform os/arch[/variant] (or BASTION_IMAGE_PLATFORM)"
    if not candidates:
        raise TargetError(f"{where} holds no image manifest")
    if platform is None:
        if len(candidates) == 1:
            return candidates[0]
        raise TargetError(
            f"{where} holds {len(candidates)} images, for platforms: {_describe(candidates)}", hint=hint
        )
    matching = [c for c in candidates if c.platform is not None and platform.matches(c.platform)]
    if len(matching) == 1:
        return matching[0]
    if not matching and len(candidates) == 1 and candidates[0].platform is None:
        return candidates[0]  # the index does not say: the config is checked against the platform instead
    if not matching:
        raise TargetError(
            f"{where} has no image for platform {platform}; it offers: {_describe(candidates)}", hint=hint
        )
    raise TargetError(
        f"{where} holds {len(matching)} images for platform {platform}: {_describe(matching)}",
        hint="name the variant too (os/arch/variant)",
    )


def check_config_platform(config: Mapping[str, Any], platform: Platform | None, where: str) -> None:
    if platform is None:
        return
    actual = Platform.of(config)
    if actual is None:
        raise TargetError(f"{where}: the image config names no platform, so it cannot be {platform}")
    if actual.variant is None:  # configs often leave the variant out: the index said it already
        platform = Platform(platform.os, platform.architecture)
    if not platform.matches(actual):
        raise TargetError(f"{where} is an image for {actual}, not {platform}")
