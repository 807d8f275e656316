"""Hub master data from ``data/hubs.toml``: each hub's names, city and coordinates.

The scans carry a location, but the tower keeps no hub master data of its own; the
hub map reads it from here. A bad file fails early with the file, the key and why
(``hubs.toml: hubs.2(hub-x).lat: ...``); a missing file is an empty book (every hub
seen in the data is then shown as having no coordinates).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class HubConfigError(ValueError):
    """A hubs file that cannot be used; the message names the file, the key and why."""


class HubNames(BaseModel):
    """A hub's name in each interface language."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    en: str = Field(min_length=1, max_length=80)
    zh_cn: str = Field(alias="zh-CN", min_length=1, max_length=80)

    def of(self, lang: str) -> str:
        return self.zh_cn if lang == "zh-CN" else self.en


class HubSite(BaseModel):
    """One transit hub: its id as the scans name it, names, city and WGS 84 position."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    name: HubNames
    city: str = Field(min_length=1, max_length=80)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class HubBook(BaseModel):
    """Every hub of the file, by id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hubs: tuple[HubSite, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> HubBook:
        seen: set[str] = set()
        for i, hub in enumerate(self.hubs):
            if hub.id in seen:
                raise ValueError(f"hubs.{i}.id: {hub.id!r} is listed twice")
            seen.add(hub.id)
        return self

    @cached_property
    def by_id(self) -> Mapping[str, HubSite]:
        return {h.id: h for h in self.hubs}


def _key(loc: tuple[Any, ...], hubs: list[Any]) -> str:
    parts = [str(p) for p in loc]
    # "hubs.3.lat" -> "hubs.3(hub-x).lat": the id says which hub without counting.
    if len(loc) >= 2 and loc[0] == "hubs" and isinstance(loc[1], int) and loc[1] < len(hubs):
        hub = hubs[loc[1]]
        if isinstance(hub, dict) and isinstance(hub.get("id"), str):
            parts[1] = f"{loc[1]}({hub['id']})"
    return ".".join(parts)


def load_hubs(path: Path) -> HubBook:
    """Read and check ``path``; raises :class:`HubConfigError` naming the file, key and why."""
    if not path.exists():
        return HubBook()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise HubConfigError(f"{path}: not valid TOML: {exc}") from None
    hubs = raw.get("hubs", [])
    if not isinstance(hubs, list):
        raise HubConfigError(f"{path}: hubs: must be an array of [[hubs]] tables")
    try:
        return HubBook.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = _key(tuple(err["loc"]), hubs)
        msg = str(err["msg"]).removeprefix("Value error, ")
        if msg.startswith("hubs.") and ":" in msg:  # from _unique_ids: the key is in the message
            key, msg = msg.split(": ", 1)
        raise HubConfigError(f"{path}: {key}: {msg}") from None
