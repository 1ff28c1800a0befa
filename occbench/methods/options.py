"""Method options: what a method's ``Options`` dataclass declares, and ``key=value`` strings parsed against it.

``occbench methods`` lists :func:`option_infos` of every method; ``occbench evaluate -O key=value`` goes through
:func:`parse_options`, which converts each value to the declared type and names the option when it cannot.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from typing import Any

from occbench.errors import OccbenchError, UnknownNameError

_NONE = ("null", "none")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


class OptionError(OccbenchError, ValueError):
    """A method option's value does not parse as the type the method declares."""


@dataclass(frozen=True)
class OptionInfo:
    """One field of a method's ``Options``: name, declared type (as text) and default."""

    name: str
    type: str
    default: Any
    annotation: Any = None  # the resolved type, or None when it could not be resolved


def option_infos(cls: type) -> list[OptionInfo]:
    """The options a method class declares (``cls.Options``, a dataclass), in declaration order."""
    opts = getattr(cls, "Options", None)
    if opts is None or not dataclasses.is_dataclass(opts):
        return []
    try:
        hints = typing.get_type_hints(opts)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: show it as written, parse as JSON
        hints = {}
    out = []
    for f in dataclasses.fields(opts):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        tp = hints.get(f.name)
        out.append(OptionInfo(f.name, type_name(tp) if tp is not None else str(f.type), default, tp))
    return out


def format_default(value: Any) -> str:
    return (
        "(required)"
        if value is dataclasses.MISSING
        else json.dumps(value)
        if isinstance(value, (bool, type(None)))
        else repr(value)
    )


def type_name(tp: Any) -> str:
    """``int``, ``str | None``, ``tuple[float, float, float]``, ``one of 'a', 'b'``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


def parse_options(
    pairs: tuple[str, ...] | list[str], cls: type | None = None, method: str | None = None
) -> dict[str, Any]:
    """Parse ``key=value`` strings (``-`` in keys read as ``_``).

    With a method class whose ``Options`` dataclass declares the key's type, the value is converted to that
    type (``int``, ``float``, ``bool``: true/false, ``str``, ``X | None``: null/none, tuples: ``1,2,3`` or a JSON
    list, ``Literal``); an unknown key or a value that does not convert raises an error naming the option and the
    expected type. Otherwise values are JSON when they parse as JSON, else strings.
    """
    infos = {i.name: i for i in option_infos(cls)} if cls is not None else {}
    who = f"method {method or getattr(cls, 'name', '') or getattr(cls, '__name__', '?')!r}"
    out: dict[str, Any] = {}
    for p in pairs:
        if "=" not in p:
            raise OptionError(f"method option {p!r} must look like key=value")
        k, v = p.split("=", 1)
        k = k.strip().replace("-", "_")
        if cls is not None and getattr(cls, "Options", None) is not None and k not in infos:
            raise UnknownNameError("option", k, list(infos), "see `occbench methods`", where=f"of {who}")
        if cls is not None and getattr(cls, "Options", None) is None:
            raise OptionError(f"{who} takes no options, got {k!r}")
        info = infos.get(k)
        if info is None or info.annotation is None:
            out[k] = _json_or_str(v)
            continue
        try:
            out[k] = convert(v, info.annotation)
        except (TypeError, ValueError):
            raise OptionError(f"option {k!r} of {who} expects {info.type}, got {v!r}") from None
    return out


def _json_or_str(v: str) -> Any:
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def convert(raw: str, tp: Any) -> Any:
    """``raw`` (text from the command line) as a value of type ``tp``; ``ValueError`` when it is not one."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    s = raw.strip()
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and s.lower() in _NONE:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return convert(raw, a)
            except (TypeError, ValueError):
                pass
        raise ValueError(raw)
    if origin is typing.Literal:
        for a in args:
            if str(a) == s:
                return a
        raise ValueError(raw)
    if origin in (tuple, list):
        items = json.loads(s) if s.startswith("[") else [x for x in s.strip("()").split(",") if x.strip()]
        if not isinstance(items, list):
            raise ValueError(raw)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise ValueError(raw)
            return tuple(convert(str(x), a) for x, a in zip(items, args))
        elem = args[0] if args else str
        vals = [convert(str(x), elem) for x in items]
        return tuple(vals) if origin is tuple else vals
    if tp is bool:
        if s.lower() in _TRUE:
            return True
        if s.lower() in _FALSE:
            return False
        raise ValueError(raw)
    if tp is int:
        return int(s)
    if tp is float:
        return float(s)
    if tp is str:
        return raw
    return _json_or_str(raw)  # a type without a text form here (Any, a class): JSON, else the string
