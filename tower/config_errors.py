"""One line for a configuration file pydantic refused: the file, the key, and why."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError


def validation_message(path: Path, err: ValidationError,
                       key: Callable[[Sequence[str]], Sequence[str]] | None = None) -> str:
    """``<file>: <dotted key>: <why>`` for the first error; ``key`` may rename the
    location's parts (e.g. a rule's index to its id) before they are joined."""
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    if key is not None:
        loc = list(key(loc))
    why = str(first["msg"]).removeprefix("Value error, ")
    return f"{path}: {'.'.join(loc) or '(top level)'}: {why}"
