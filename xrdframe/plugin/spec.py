"""Hook specifications: the contract between xrdframe and its plugins.

Every hook is called without arguments, once per plugin, when the plugin
registry is first built (``xrdframe.plugin.get_registry()``: at the start of
every command that uses components, and at the first :func:`xrdframe.create`). Each returns an iterable of
:class:`xrdframe.component.Component` descriptors, the components of one kind
that the plugin provides, in the style of datasette's ``register_*`` hooks.

A plugin implements only the hooks it needs. The host, not the plugin, checks
that names are unique within a kind: when two plugins provide one name, the
name cannot be used and the error names both providers. A hook that raises, or
returns something other than ``Component`` descriptors, marks its plugin as
broken (shown by ``xrdframe plugins``); every other plugin keeps working.

Hooks are prefixed ``xrdframe_``; implement them with
:data:`xrdframe.plugin.hookimpl`.
"""

from __future__ import annotations

from collections.abc import Iterable

import pluggy

from xrdframe.component import Component

__all__ = ["hookspec", "XrdframeSpec"]

hookspec = pluggy.HookspecMarker("xrdframe")


class XrdframeSpec:
    """Namespace of the hook specifications (registered with ``add_hookspecs``)."""

    # -------------------------------------------------------------------------
    # Simulation: from peak lists to profiles
    # -------------------------------------------------------------------------

    @hookspec
    def xrdframe_augmentations(self) -> Iterable[Component]:
        """Return the ``augmentation`` components this plugin provides.

        An augmentation operator transforms a batch of peak lists or profiles
        (zero shift, peak noise, pseudo-Voigt profiles, background, ...). Its
        factory returns the operator object.

        :returns: an iterable of :class:`~xrdframe.component.Component`.

        Called once per plugin when the registry is built.

        .. versionadded:: 0.1
        """

    # -------------------------------------------------------------------------
    # Learning: encoders and representation losses
    # -------------------------------------------------------------------------

    @hookspec
    def xrdframe_encoders(self) -> Iterable[Component]:
        """Return the ``encoder`` components this plugin provides.

        An encoder maps a batch of 1D profiles to feature vectors (for example
        a 1D ResNet). Its factory returns the (untrained) module.

        :returns: an iterable of :class:`~xrdframe.component.Component`.

        Called once per plugin when the registry is built.

        .. versionadded:: 0.1
        """

    @hookspec
    def xrdframe_representation_losses(self) -> Iterable[Component]:
        """Return the ``representation_loss`` components this plugin provides.

        A representation loss compares the embeddings of two augmented views
        of the same structures (for example Barlow Twins or NT-Xent). Its
        factory returns a callable ``loss(z_a, z_b) -> scalar``.

        :returns: an iterable of :class:`~xrdframe.component.Component`.

        Called once per plugin when the registry is built.

        .. versionadded:: 0.1
        """

    # -------------------------------------------------------------------------
    # Methods: indexers
    # -------------------------------------------------------------------------

    @hookspec
    def xrdframe_indexers(self) -> Iterable[Component]:
        """Return the ``indexer`` components this plugin provides.

        An indexer predicts crystal system, extinction group, space group
        and/or unit cell from a pattern or a peak list (classical indexing,
        decision trees, neural networks). Its factory returns the indexer, an
        :class:`xrdframe.indexing.Indexer`: ``predict(data) -> Prediction`` for a
        :class:`~xrdframe.pattern.Pattern` or :class:`~xrdframe.pattern.ObservedPeaks`,
        never raising for a pattern it cannot handle.

        :returns: an iterable of :class:`~xrdframe.component.Component`.

        Called once per plugin when the registry is built.

        .. versionadded:: 0.1
        """

    # -------------------------------------------------------------------------
    # Data: structure and pattern sources
    # -------------------------------------------------------------------------

    @hookspec
    def xrdframe_structure_sources(self) -> Iterable[Component]:
        """Return the ``structure_source`` components this plugin provides.

        A structure source yields crystal structures (read from CIF files,
        generated at random, ...). Its factory returns the source.

        :returns: an iterable of :class:`~xrdframe.component.Component`.

        Called once per plugin when the registry is built.

        .. versionadded:: 0.1
        """

    @hookspec
    def xrdframe_pattern_sources(self) -> Iterable[Component]:
        """Return the ``pattern_source`` components this plugin provides.

        A pattern source yields measured or simulated powder patterns, with
        their labels where known. Its factory returns the source.

        :returns: an iterable of :class:`~xrdframe.component.Component`.

        Called once per plugin when the registry is built.

        .. versionadded:: 0.1
        """

    # -------------------------------------------------------------------------
    # Pipelines: tasks
    # -------------------------------------------------------------------------

    @hookspec
    def xrdframe_tasks(self) -> Iterable[Component]:
        """Return the ``task`` components this plugin provides.

        A task is what a spec's ``task:`` key names (``simulate``, ``train``,
        ``evaluate``, ``predict``, ...). Its params class holds the spec's
        task-specific top-level keys; its factory returns an object with a
        method ``run(context: xrdframe.run.RunContext) -> None`` that writes
        every artifact into ``context.output``.

        :returns: an iterable of :class:`~xrdframe.component.Component`.

        Called once per plugin when the registry is built.

        .. versionadded:: 0.1
        """
