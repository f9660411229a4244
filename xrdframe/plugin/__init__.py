"""The plugin host: hook markers, hook specifications and the plugin registry.

Plugins register through the ``xrdframe`` entry-point group and implement the
hooks of :mod:`xrdframe.plugin.spec` with :data:`hookimpl`::

    from xrdframe.component import Component
    from xrdframe.plugin import hookimpl

    @hookimpl
    def xrdframe_augmentations():
        return [Component(name="my_noise", factory=MyNoise, params=MyNoiseParams)]
"""

from __future__ import annotations

import pluggy

from xrdframe.plugin.manager import (
    DISABLE_ENV,
    ENTRY_POINT_GROUP,
    PluginInfo,
    Registry,
    get_registry,
    reset_registry,
)
from xrdframe.plugin.spec import XrdframeSpec, hookspec

__all__ = [
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "Registry",
    "XrdframeSpec",
    "get_registry",
    "hookimpl",
    "hookspec",
    "reset_registry",
]

#: Marker for hook implementations in plugins.
hookimpl = pluggy.HookimplMarker("xrdframe")
