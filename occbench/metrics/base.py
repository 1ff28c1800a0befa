"""The base of every metric: declared integer states, from which merging, the compatibility check, ``reset``,
``copy`` and ``state_dict`` follow (in the spirit of torchmetrics' ``Metric``).

A metric is built from the dataset's :class:`~occbench.metrics.Protocol` (``cls(protocol)``), declares its states
in ``__init__`` with :meth:`Metric.add_state`, takes every scored frame through :meth:`Metric.update_frame`, its one
way in (``pred``: the method's train-id grid; ``frame``: a :class:`occbench.metrics.FrameArrays`, the frame's ground
truth, invalid mask and pose as arrays: metrics read no files) and turns its states into a JSON-able dict in
:meth:`Metric.compute`. States of disjoint frames add
up, so the frames of a split may be counted in several processes and merged; states travel by pickle.

What a state means besides its numbers (the protocol, the range crops, a voxel size: whatever two states must
share to be added) is the metric's :meth:`Metric.settings`; states of different settings or shapes are refused.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, NamedTuple

import numpy as np

from occbench.errors import FormatError
from occbench.metrics.frame import FrameArrays
from occbench.metrics.protocol import EvalProtocol, get_protocol

_STATE_FORMAT = "occbench.Metric.state"
_STATE_VERSION = 1


class _Zeros(NamedTuple):
    """The default of an array state of zeros, kept as its shape and dtype (states travel by pickle)."""

    shape: tuple[int, ...]
    dtype: str


def _array_default(default: Any) -> np.ndarray | None:
    """The default array of an array state, None for an integer state."""
    if isinstance(default, _Zeros):
        return np.zeros(default.shape, default.dtype)
    return default if isinstance(default, np.ndarray) else None


class Metric(ABC):
    """A streaming metric over integer states (see the module docstring).

    Subclasses call ``super().__init__(protocol)``, declare their states with :meth:`add_state` and implement
    :meth:`update_frame` and :meth:`compute`; :meth:`settings` names what else two mergeable states share.
    ``higher_is_better``: whether a larger headline number is better (None where the metric has no single one).
    """

    higher_is_better: ClassVar[bool | None] = None

    def __init__(self, protocol: EvalProtocol | str = "semantickitti-ssc") -> None:
        self.protocol = get_protocol(protocol)
        self._defaults: dict[str, int | np.ndarray | _Zeros] = {}

    # ------------------------------------------------------------------ declared states
    def add_state(self, name: str, default: int | np.ndarray, dist_reduce_fx: str = "sum") -> None:
        """Declare the state ``name``: an integer or an integer array, ``default`` when nothing was counted.
        States of two parts of a split combine by ``dist_reduce_fx``; exact integer addition (``"sum"``) is the
        one kind there is."""
        if dist_reduce_fx != "sum":
            raise ValueError(
                f"state {name!r}: dist_reduce_fx must be 'sum' (exact integer addition), got {dist_reduce_fx!r}"
            )
        if isinstance(default, np.ndarray):
            if default.dtype.kind not in "iu":
                raise TypeError(f"state {name!r}: an integer array, got dtype {default.dtype}")
            if default.any():
                kept = default.copy()
                kept.flags.writeable = False
                self._defaults[name] = kept
            else:
                self._defaults[name] = _Zeros(default.shape, default.dtype.str)
            setattr(self, name, default.copy())
        elif isinstance(default, (int, np.integer)) and not isinstance(default, bool):
            self._defaults[name] = int(default)
            setattr(self, name, int(default))
        else:
            raise TypeError(f"state {name!r}: an integer or an integer array, got {type(default).__name__}")

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(self._defaults)

    def settings(self) -> dict[str, Any]:
        """What two states must share to be merged, besides their shapes (override to add to it)."""
        return {"protocol": self.protocol.tag}

    def reset(self) -> None:
        """Back to the state of no frame."""
        for name, default in self._defaults.items():
            arr = _array_default(default)
            if arr is not None:
                getattr(self, name)[...] = arr
            else:
                setattr(self, name, default)

    def _check_compatible(self, other: Any) -> None:
        if type(other) is not type(self):
            raise TypeError(f"can only merge a {type(self).__name__}, got {type(other).__name__}")
        if other.protocol != self.protocol:
            raise ValueError(
                f"cannot merge states of different protocols: {self.protocol.tag} and {other.protocol.tag}"
            )
        mine, theirs = self.settings(), other.settings()
        if mine != theirs:
            diff = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
            raise ValueError(
                f"cannot merge {type(self).__name__} states of different settings: "
                + "; ".join(f"{k} {mine.get(k)} and {theirs.get(k)}" for k in diff)
            )
        for name in self._defaults:
            a, b = np.shape(getattr(self, name)), np.shape(getattr(other, name))
            if a != b:
                raise ValueError(f"cannot merge {type(self).__name__} states: {name} of shape {a} and {b}")

    def merge(self, other: Any) -> Any:
        """Add ``other``'s states into this one (in place); returns self."""
        self._check_compatible(other)
        for name, default in self._defaults.items():
            if not isinstance(default, int):
                getattr(self, name)[...] += getattr(other, name)
            else:
                setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def __add__(self, other: Any) -> Any:
        return self.copy().merge(other)

    def __iadd__(self, other: Any) -> Any:
        return self.merge(other)

    def _empty_like(self) -> Any:
        """A fresh metric of the same settings (override where ``__init__`` takes more than the protocol)."""
        return type(self)(self.protocol)

    def copy(self) -> Any:
        """An independent metric of the same settings and states."""
        out = self._empty_like()
        for name, default in self._defaults.items():
            if not isinstance(default, int):
                getattr(out, name)[...] = getattr(self, name)
            else:
                setattr(out, name, getattr(self, name))
        return out

    def state_dict(self) -> dict[str, Any]:
        """The states as JSON-able integers (arrays sparse: flat index -> count), with the settings they need."""
        states: dict[str, Any] = {}
        for name, default in self._defaults.items():
            v = getattr(self, name)
            if not isinstance(default, int):
                flat = np.asarray(v).reshape(-1)
                nz = np.flatnonzero(flat)
                states[name] = {"shape": list(np.shape(v)), "index": nz.tolist(), "count": flat[nz].tolist()}
            else:
                states[name] = int(v)
        return {
            "format": _STATE_FORMAT,
            "format_version": _STATE_VERSION,
            "metric": type(self).__name__,
            "settings": self.settings(),
            "states": states,
        }

    def load_state_dict(self, d: dict[str, Any]) -> Any:
        """Set the states from :meth:`state_dict` of a metric of the same class and settings; returns self."""
        if not isinstance(d, dict) or d.get("format") != _STATE_FORMAT or d.get("format_version") != _STATE_VERSION:
            found = (
                f"format {d.get('format')!r} version {d.get('format_version')!r}"
                if isinstance(d, dict)
                else type(d).__name__
            )
            raise FormatError(None, f"an {_STATE_FORMAT} state, format_version {_STATE_VERSION}", found)
        if d.get("metric") != type(self).__name__ or d.get("settings") != self.settings():
            raise ValueError(
                f"a state of {d.get('metric')} {d.get('settings')} does not fit {type(self).__name__} {self.settings()}"
            )
        states = d.get("states")
        if not isinstance(states, dict) or set(states) != set(self._defaults):
            raise FormatError(
                None, f"states {sorted(self._defaults)}", f"{sorted(states) if isinstance(states, dict) else states!r}"
            )
        for name, default in self._defaults.items():
            s = states[name]
            if not isinstance(default, int):
                arr = getattr(self, name)
                if not isinstance(s, dict) or list(s.get("shape", ())) != list(arr.shape):
                    raise FormatError(None, f"state {name} of shape {list(arr.shape)}", f"{str(s)[:80]}")
                idx = np.asarray(s.get("index", []), np.int64)
                cnt = np.asarray(s.get("count", []), np.int64)
                if (
                    idx.shape != cnt.shape
                    or idx.ndim != 1
                    or (idx.size and (idx.min() < 0 or idx.max() >= arr.size))
                    or (cnt < 0).any()
                ):
                    raise FormatError(
                        None,
                        f"state {name}: matching index/count lists of non-negative counts within the shape",
                        "inconsistent lists",
                    )
                arr[...] = _array_default(default)
                arr.reshape(-1)[idx] = cnt
            else:
                if not isinstance(s, int) or isinstance(s, bool):
                    raise FormatError(None, f"state {name}: an integer", f"{s!r}")
                setattr(self, name, s)
        return self

    # ------------------------------------------------------------------ what each metric implements
    @abstractmethod
    def update_frame(self, pred: np.ndarray, frame: FrameArrays) -> None:
        """Add one scored frame: ``pred`` (the method's grid) against ``frame``, a :class:`FrameArrays` (the frame's
        ground truth, invalid mask and pose as arrays). The one way a metric takes frames."""

    @abstractmethod
    def compute(self) -> dict[str, Any]:
        """The scores of the frames counted so far, as a JSON-able dict."""
