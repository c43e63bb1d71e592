"""The one convention every online state object follows: its state is a set of named numpy arrays.

A :class:`Stateful` subclass lists the attributes that make up its state in ``_state``; everything
else about it is rebuilt from the configuration. That is what makes :meth:`FeatureState.snapshot`
a plain ``.npz`` of arrays (never pickle) and a restore an exact continuation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import ClassVar

import numpy as np


class Stateful:
    """An object whose mutable state is the numpy arrays named in ``_state`` (and its ``_children``')."""

    _state: ClassVar[tuple[str, ...]] = ()
    _children: ClassVar[tuple[str, ...]] = ()

    def state_items(self, prefix: str) -> Iterator[tuple[str, np.ndarray]]:
        """(key, array) for every state array of this object and its children, keys prefixed."""
        for name in self._state:
            yield f"{prefix}{name}", np.asarray(getattr(self, name))
        for child in self._children:
            obj = getattr(self, child)
            if obj is not None:
                yield from obj.state_items(f"{prefix}{child}.")

    def load_state(self, arrays: Mapping[str, np.ndarray], prefix: str) -> None:
        """Set every state array from ``arrays``; shapes and dtypes must match the configuration's."""
        for name in self._state:
            key = f"{prefix}{name}"
            if key not in arrays:
                raise ValueError(f"snapshot lacks state array {key!r}")
            current = np.asarray(getattr(self, name))
            value = np.asarray(arrays[key])
            if value.shape != current.shape or value.dtype != current.dtype:
                raise ValueError(
                    f"snapshot array {key!r} has shape {value.shape} {value.dtype}, this configuration needs "
                    f"{current.shape} {current.dtype}"
                )
            setattr(self, name, value.copy())
        for child in self._children:
            obj = getattr(self, child)
            if obj is not None:
                obj.load_state(arrays, f"{prefix}{child}.")
