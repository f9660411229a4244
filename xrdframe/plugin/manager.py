"""The plugin registry: loads every ``xrdframe`` entry point and collects components.

No plugin module is named here: built-in plugins register through the entry
points of xrdframe's own ``pyproject.toml``, exactly as third-party ones do.
A plugin that fails to import, has an invalid hook implementation, or raises
from a hook is recorded as *broken* with its error; the others keep working.
"""

from __future__ import annotations

import importlib.metadata as importlib_metadata
import os
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import pluggy

from xrdframe.component import KINDS, Component
from xrdframe.errors import did_you_mean
from xrdframe.plugin.spec import XrdframeSpec

__all__ = ["DISABLE_ENV", "ENTRY_POINT_GROUP", "PluginInfo", "Registry", "get_registry", "reset_registry"]

#: The entry-point group (and pluggy project name) of xrdframe plugins.
ENTRY_POINT_GROUP = "xrdframe"
#: Environment variable: comma-separated entry-point names of plugins to skip.
DISABLE_ENV = "XRDFRAME_DISABLE_PLUGINS"


@attrs.define
class PluginInfo:
    """What the registry knows of one plugin (one entry point)."""

    name: str
    distribution: str | None
    version: str | None
    value: str
    status: str = "ok"  # "ok", "broken" or "disabled"
    error: str | None = None
    components: dict[str, list[str]] = attrs.field(factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Registered:
    """A component together with the plugin that provides it."""

    component: Component
    plugin: PluginInfo


class Registry:
    """Plugins and the components they provide, by kind.

    :param entry_points: entry points to load; by default every entry point of
        group ``xrdframe`` in the current environment.
    :param disabled: entry-point names to skip; by default read from
        ``XRDFRAME_DISABLE_PLUGINS``.
    """

    def __init__(
        self,
        entry_points: Iterable[importlib_metadata.EntryPoint] | None = None,
        disabled: Iterable[str] | None = None,
    ) -> None:
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(XrdframeSpec)
        if disabled is None:
            disabled = [n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()]
        self.disabled = frozenset(disabled)
        self.plugins: dict[str, PluginInfo] = {}
        self._components: dict[str, dict[str, Registered]] = {kind: {} for kind in KINDS}
        self._conflicts: dict[str, dict[str, list[PluginInfo]]] = {kind: {} for kind in KINDS}
        if entry_points is None:
            entry_points = importlib_metadata.entry_points(group=ENTRY_POINT_GROUP)
        for ep in sorted(entry_points, key=lambda e: e.name):
            self._load(ep)

    # -- loading ---------------------------------------------------------------

    def _load(self, ep: importlib_metadata.EntryPoint) -> None:
        dist = getattr(ep, "dist", None)
        info = PluginInfo(
            name=ep.name,
            distribution=dist.metadata["Name"] if dist is not None else None,
            version=dist.version if dist is not None else None,
            value=ep.value,
        )
        if ep.name in self.plugins:
            other = self.plugins[ep.name]
            info.status, info.error = "broken", (
                f"entry-point name {ep.name!r} is already used by distribution {other.distribution!r}"
            )
            self.plugins[f"{ep.name} ({info.distribution})"] = info
            return
        self.plugins[ep.name] = info
        if ep.name in self.disabled:
            info.status = "disabled"
            return
        try:
            module = ep.load()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - isolate any failure of a plugin
            self._break(info, f"failed to import {ep.value!r}: {_describe(exc)}")
            return
        try:
            self.pm.register(module, name=ep.name)
        except Exception as exc:  # noqa: BLE001
            self._break(info, f"invalid hook implementation: {exc}")
            return
        unknown = [hc.name for hc in self.pm.get_hookcallers(module) or [] if hc.spec is None]
        if unknown:
            hooks = [h for h in KINDS.values()]
            self._unregister(info)
            self._break(info, "; ".join(f"unknown hook {u!r}{did_you_mean(u, hooks)}" for u in unknown))
            return
        self._collect(info, module)

    def _collect(self, info: PluginInfo, module: Any) -> None:
        found: dict[str, list[Component]] = {}
        for kind, hook_name in KINDS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if impl.plugin is not module:
                    continue
                try:
                    result = impl.function()
                    items = list(result) if result is not None else []
                except Exception as exc:  # noqa: BLE001
                    self._unregister(info)
                    self._break(info, f"hook {hook_name} raised {_describe(exc)}")
                    return
                bad = [item for item in items if not isinstance(item, Component)]
                if bad:
                    self._unregister(info)
                    self._break(info, f"hook {hook_name} returned {bad[0]!r}, expected Component descriptors")
                    return
                found[kind] = items
        for kind, items in found.items():
            names = [c.name for c in items]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                self._unregister(info)
                self._break(info, f"provides {kind} {', '.join(map(repr, repeated))} more than once")
                return
        for kind, items in found.items():
            for comp in items:
                self._add(kind, comp, info)

    def _add(self, kind: str, comp: Component, info: PluginInfo) -> None:
        info.components.setdefault(kind, []).append(comp.name)
        table = self._components[kind]
        if comp.name in self._conflicts[kind]:
            self._conflicts[kind][comp.name].append(info)
        elif comp.name in table:
            first = table.pop(comp.name)
            self._conflicts[kind][comp.name] = [first.plugin, info]
        else:
            table[comp.name] = Registered(comp, info)

    def _break(self, info: PluginInfo, error: str) -> None:
        info.status, info.error = "broken", error

    def _unregister(self, info: PluginInfo) -> None:
        plugin = self.pm.get_plugin(info.name)
        if plugin is not None:
            self.pm.unregister(plugin)

    # -- queries ---------------------------------------------------------------

    def names(self, kind: str) -> list[str]:
        """Names usable for ``kind`` (ambiguous names excluded), sorted."""
        return sorted(self._components[kind])

    def all_names(self, kind: str) -> list[str]:
        """Every name of ``kind``, usable or ambiguous, sorted."""
        return sorted(set(self._components[kind]) | set(self._conflicts[kind]))

    def lookup(self, kind: str, name: str) -> Registered:
        """The component ``name`` of ``kind``.

        :raises LookupError: with a message for the user: unknown kind, unknown
            name (with suggestions and the installed names), or a name that two
            plugins provide (naming both).
        """
        if kind not in KINDS:
            raise LookupError(f"unknown component kind {kind!r}{did_you_mean(kind, KINDS)}; "
                              f"kinds: {', '.join(KINDS)}")
        if name in self._components[kind]:
            return self._components[kind][name]
        if name in self._conflicts[kind]:
            infos = self._conflicts[kind][name]
            providers = ", ".join(_provider(p) for p in infos[:-1]) + " and " + _provider(infos[-1])
            raise LookupError(
                f"{kind} {name!r} is provided by {len(infos)} plugins, {providers}; "
                f"disable one with {DISABLE_ENV}=<entry-point name>"
            )
        installed = ", ".join(self.names(kind)) or "none"
        raise LookupError(f"unknown {kind} {name!r}{did_you_mean(name, self.all_names(kind))}; "
                          f"installed: {installed}")

    def conflicts(self) -> Mapping[str, Mapping[str, list[PluginInfo]]]:
        """Names provided by more than one plugin, by kind."""
        return {k: v for k, v in self._conflicts.items() if v}

    def versions(self) -> dict[str, Any]:
        """xrdframe's version and each plugin's distribution, version and status."""
        from xrdframe import __version__

        return {
            "xrdframe": __version__,
            "plugins": {
                name: {"distribution": p.distribution, "version": p.version, "status": p.status}
                for name, p in sorted(self.plugins.items())
            },
        }


def _provider(info: PluginInfo) -> str:
    return f"plugin {info.name!r} (distribution {info.distribution} {info.version})"


def _describe(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = Registry()
    return _REGISTRY


def reset_registry() -> None:
    """Forget the process-wide registry (for tests and after installing plugins)."""
    global _REGISTRY
    _REGISTRY = None
