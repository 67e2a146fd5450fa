"""One registry for methods, sources, mask generators and metrics.

Entries are lazy ``"module:attr"`` targets so that listing what exists imports nothing heavy
(``fsmi ls`` never imports torch). ``get`` imports the target on first use.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any

from fsmi_bench.errors import BadInputError


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "package.module:attribute"
    summary: str = ""
    needs: tuple[str, ...] = ()  # human-readable requirements: "weights", "GPU", "checkout"
    extra: dict = field(default_factory=dict)


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, target: str, summary: str = "", needs=(), **extra) -> None:
        if name in self._entries and self._entries[name].target != target:
            raise ValueError(f"{self.kind} {name!r} is already registered as {self._entries[name].target}")
        self._entries[name] = Entry(name, target, summary, tuple(needs), dict(extra))

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def entry(self, name: str) -> Entry:
        if name not in self._entries:
            raise BadInputError(self.unknown_message(name))
        return self._entries[name]

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} (known: {', '.join(self.names())})"

    def get(self, name: str) -> Any:
        """Import and return the registered object (class or function)."""
        module_name, _, attribute = self.entry(name).target.partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, attribute)

    def __contains__(self, name: str) -> bool:
        return name in self._entries
