"""A stand-in for a Dash app that records the callbacks a page registers, so a test can
call them as the browser would, without a server."""

from __future__ import annotations

from typing import Any


class CallbackRecorder:
    """``funcs``: the server callbacks in registration order; ``by_output``: the same,
    keyed by the string of their first output. Client-side callbacks are ignored."""

    def __init__(self) -> None:
        self.funcs: list[Any] = []
        self.by_output: dict[str, Any] = {}

    def callback(self, *args: Any, **_kwargs: Any) -> Any:
        def keep(func: Any) -> Any:
            self.funcs.append(func)
            self.by_output[str(args[0])] = func
            return func
        return keep

    def clientside_callback(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    @property
    def func(self) -> Any:
        """The last callback registered (a page's refresh, when it has one)."""
        return self.funcs[-1]
