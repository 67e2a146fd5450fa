"""One registry for methods, sources, mask generators and metrics.

Entries are lazy ``"module:attr"`` targets so that listing what exists imports nothing heavy
(``fsmi ls`` never imports torch). ``get`` imports the target on first use.

A registry may also take entries from outside the package:
- an entry-point group (``entry_point_group``, e.g. ``fsmi.methods``): installed packages declare
  ``name = "package.module:Class"`` in their metadata; listing reads the metadata only, nothing is imported;
- targets given in place of a name (``accepts_targets``): ``package.module:Class`` (importable from
  ``sys.path``) or ``path/to/file.py:Class`` (imported from that file).
The package's own names come first: an entry point cannot replace one of them.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsmi_bench.errors import BadInputError

BUILT_IN = "fsmi"


@dataclass(frozen=True)
class Entry:
    """One registered object. origin: ``"fsmi"`` for the package's own, ``"entry point of DIST VERSION"``,
    ``"module"`` or ``"file"`` for targets given directly."""

    name: str
    target: str  # "package.module:attribute" or "path/to/file.py:attribute"
    summary: str = ""
    needs: tuple[str, ...] = ()  # human-readable requirements: "weights", "GPU", "checkout"
    extra: dict = field(default_factory=dict)
    origin: str = BUILT_IN


@dataclass(frozen=True)
class IgnoredEntryPoint:
    """An entry point that is not used: it lost to an earlier entry of the same name (``winner`` is that entry's
    origin), or its name breaks the registry's name rule (``reason`` says so)."""

    entry: Entry
    winner: str = ""
    reason: str = ""


def is_target(text: str) -> bool:
    """True for ``module:attr`` and ``file.py:attr`` (a name given as a target rather than a registered name)."""
    location, separator, attribute = text.rpartition(":")
    return bool(separator and location and attribute.isidentifier())


def _is_file_target(location: str) -> bool:
    return location.endswith(".py") or "/" in location or "\\" in location


def _import_file(path: Path):
    """Import a Python file as a module of its own (named after its resolved path, imported once)."""
    if not path.is_file():
        raise BadInputError(f"no such file: {path}")
    resolved = path.resolve()
    module_name = f"fsmi_user_{resolved.stem}_{hashlib.sha256(str(resolved).encode()).hexdigest()[:10]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise BadInputError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    # Registered before running, as `import` does, so that dataclasses and pickling find the module.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def load_target(target: str) -> Any:
    """Import ``module:attr`` or ``path/to/file.py:attr`` and return the attribute.

    Errors (no such module or file, an exception while importing it, no such attribute) become one-line
    ``BadInputError``s naming the target.
    """
    location, _, attribute = target.rpartition(":")
    if not location or not attribute:
        raise BadInputError(f"{target!r} is not a target: use package.module:Class or path/to/file.py:Class")
    try:
        module = _import_file(Path(location)) if _is_file_target(location) else importlib.import_module(location)
    except BadInputError:
        raise
    except (Exception, SystemExit) as error:  # the user's code: any failure to import it (sys.exit too) is theirs
        raise BadInputError(f"cannot import {location!r} for {target!r}: {type(error).__name__}: {error}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        close = difflib.get_close_matches(attribute, [n for n in dir(module) if not n.startswith("_")], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise BadInputError(f"{location!r} has no attribute {attribute!r}{hint}") from None


class Registry:
    """Named lazy targets of one kind.

    entry_point_group: an ``importlib.metadata`` entry-point group whose entries join the registry.
    accepts_targets: ``entry``/``get`` also take ``module:Class`` or ``file.py:Class`` in place of a name.
    base_class: what ``get`` must return for a target from outside the package (a subclass of it).
    name_rule: a regular expression every name must match whole, the package's own and entry points' alike
    (an entry point whose name breaks it is ignored, and listed as such).
    """

    def __init__(self, kind: str, entry_point_group: str | None = None, accepts_targets: bool = False,
                 base_class: type | None = None, name_rule: str | None = None):
        self.kind = kind
        self.name_rule = re.compile(name_rule) if name_rule else None
        self.entry_point_group = entry_point_group
        self.accepts_targets = accepts_targets
        self.base_class = base_class
        self._entries: dict[str, Entry] = {}
        self._plugins_for_path: tuple | None = None
        self._plugins: dict[str, Entry] = {}
        self._ignored: list[IgnoredEntryPoint] = []

    def register(self, name: str, target: str, summary: str = "", needs=(), **extra) -> None:
        if self.name_rule is not None and not self.name_rule.fullmatch(name):
            raise ValueError(f"{self.kind} name {name!r} breaks the name rule {self.name_rule.pattern}")
        if name in self._entries and self._entries[name].target != target:
            raise ValueError(f"{self.kind} {name!r} is already registered as {self._entries[name].target}")
        self._entries[name] = Entry(name, target, summary, tuple(needs), dict(extra))

    def _plugin_entries(self) -> dict[str, Entry]:
        """Entries of the entry-point group, read from installed metadata (nothing imported). Read again
        whenever ``sys.path`` changes, since that changes which distributions are installed."""
        if self.entry_point_group is None:
            return {}
        path_key = tuple(sys.path)
        if self._plugins_for_path == path_key:
            return self._plugins
        from importlib.metadata import entry_points

        plugins: dict[str, Entry] = {}
        ignored: list[IgnoredEntryPoint] = []
        for point in sorted(entry_points(group=self.entry_point_group), key=lambda p: p.name):
            dist = getattr(point, "dist", None)
            origin = (f"entry point of {dist.metadata['Name']} {dist.version}" if dist is not None
                      else "entry point")
            entry = Entry(point.name, point.value, f"{self.entry_point_group} entry point {point.value}",
                          origin=origin)
            if self.name_rule is not None and not self.name_rule.fullmatch(point.name):
                ignored.append(IgnoredEntryPoint(entry, reason=f"not a {self.kind} name"))
                continue
            winner = self._entries.get(point.name) or plugins.get(point.name)
            if winner is not None:
                ignored.append(IgnoredEntryPoint(entry, winner.origin))
                continue
            plugins[point.name] = entry
        self._plugins_for_path, self._plugins, self._ignored = path_key, plugins, ignored
        return plugins

    def ignored_entry_points(self) -> list[IgnoredEntryPoint]:
        """Entry points not used because their name was taken (by the package or an earlier entry point)."""
        self._plugin_entries()
        return list(self._ignored)

    def names(self) -> list[str]:
        return list(self._entries) + list(self._plugin_entries())

    def entries(self) -> list[Entry]:
        return list(self._entries.values()) + list(self._plugin_entries().values())

    def entry(self, name: str) -> Entry:
        if name in self._entries:
            return self._entries[name]
        plugins = self._plugin_entries()
        if name in plugins:
            return plugins[name]
        if self.accepts_targets and is_target(name):
            location = name.rpartition(":")[0]
            origin = "file" if _is_file_target(location) else "module"
            if origin == "file" and not Path(location).is_file():
                raise BadInputError(f"{self.kind} {name!r}: no such file {location}")
            return Entry(name, name, f"given as {origin} target", origin=origin)
        raise BadInputError(self.unknown_message(name))

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        forms = " or give package.module:Class or path/to/file.py:Class" if self.accepts_targets else ""
        return f"unknown {self.kind} {name!r}{hint} (known: {', '.join(self.names())}{forms})"

    def get(self, name: str) -> Any:
        """Import and return the registered object (class or function)."""
        entry = self.entry(name)
        if entry.origin == BUILT_IN:
            module_name, _, attribute = entry.target.partition(":")
            return getattr(importlib.import_module(module_name), attribute)
        found = load_target(entry.target)
        if self.base_class is not None and not (isinstance(found, type) and issubclass(found, self.base_class)):
            base = f"{self.base_class.__module__}.{self.base_class.__qualname__}"
            raise BadInputError(f"{self.kind} {name!r} ({entry.origin}) is {found!r}, not a subclass of {base}")
        return found

    def __contains__(self, name: str) -> bool:
        return name in self._entries or name in self._plugin_entries()
