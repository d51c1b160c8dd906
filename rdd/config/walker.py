"""One walker for every configuration mapping: typed dataclasses in, typed dataclasses out.

A configuration section is a frozen dataclass whose fields are declared with :func:`param`
(default, bounds, choices, one-line doc). :func:`build` walks a plain mapping (e.g. a section of
``params.yaml``) against it and returns the dataclass, checking on the way:

* types (``int``, ``float``, ``bool``, ``str``, sizes ``tuple[int, int]``, pairs
  ``tuple[float, float]``, free mappings ``dict``, ``list[str]``, nested sections, lists of
  sections ``tuple[Section, ...]``, ``X | None``);
* ranges (``gt``/``ge``/``lt``/``le``) and choices (a tuple, or :class:`Names` for a registry
  read lazily, so this module stays torch-free);
* unknown keys (with a did-you-mean) and missing required keys;
* a section's own cross-field rules (its ``_validate`` method raising :func:`invalid`).

Errors are :class:`ConfigError` (a ``ValueError``) whose message starts with the key path as
given by ``path`` (``student.optim.iters must be > 0, got -5``). The same walker serves the
engine (:meth:`rdd.engine.TrainConfig.from_dict`) and ``params.yaml`` (:mod:`rdd.config.params`),
and :func:`doc_rows` turns the declarations into the parameter reference (``docs/PARAMS.md``).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import MISSING, dataclass
from typing import Any

__all__ = [
    "ConfigError",
    "Names",
    "param",
    "build",
    "build_partial",
    "check",
    "invalid",
    "as_dict",
    "doc_rows",
    "did_you_mean",
    "short",
    "clip",
]


class ConfigError(ValueError):
    """A bad configuration value; the message starts with the key path."""


class _Invalid(Exception):
    def __init__(self, key: str, msg: str) -> None:
        super().__init__(key, msg)
        self.key, self.msg = key, msg


def invalid(key: str, msg: str) -> _Invalid:
    """From a section's ``_validate``: ``raise invalid("warmup_iters", "must be < ...")``.

    ``key`` is relative to the section ("" for the section itself); a ``msg`` that starts with
    ``":"`` is joined without a space (``model.name: unknown model 'x'``)."""
    return _Invalid(key, msg)


@dataclass(frozen=True)
class Names:
    """Registry-backed choices: ``names()`` is called only when a value is checked."""

    what: str  # "model" → "unknown model 'x' (known: ...)"
    names: Callable[[], Iterable[str]]

    def __repr__(self) -> str:
        return f"a registered {self.what} name"


def param(
    default: Any = MISSING,
    *,
    doc: str = "",
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    choices: tuple | Names | None = None,
    check: Callable[[Any], str | None] | None = None,
    coerce: Callable[[Any], Any] | None = None,
    partial_of: type | None = None,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field with its constraints and a one-line ``doc``.

    ``check(value)`` returns an error text (``"must be ..."``) or ``None``; ``coerce`` maps a
    raw value before checking (e.g. ``False`` → ``"false"``); ``partial_of=Section`` makes a
    ``dict`` field hold overrides of some of ``Section``'s keys (each checked as there)."""
    md = {
        "doc": doc,
        "gt": gt,
        "ge": ge,
        "lt": lt,
        "le": le,
        "choices": choices,
        "check": check,
        "coerce": coerce,
        "partial_of": partial_of,
    }
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=md)
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda d=default: copy.deepcopy(d), metadata=md)
    return dataclasses.field(default=default, metadata=md)


def short(v: Any, limit: int = 80) -> str:
    """``repr(v)`` cut to ``limit`` characters, without rendering the rest: an error message never
    holds (or spends time and memory building) a huge value, e.g. a list of a million items."""
    parts: list[str] = []
    room = [limit + 1]

    def put(text: str) -> None:
        parts.append(text[: room[0]])
        room[0] -= len(parts[-1])

    def walk(x: Any, depth: int) -> None:
        if room[0] <= 0:
            return
        if isinstance(x, (dict, list, tuple)) and type(x) in (dict, list, tuple):
            if depth > 8:
                return put("...")
            items = x.items() if isinstance(x, dict) else x
            put("{" if isinstance(x, dict) else "[" if isinstance(x, list) else "(")
            for i, item in enumerate(items):
                if room[0] <= 0:
                    return
                if i:
                    put(", ")
                if isinstance(x, dict):
                    walk(item[0], depth + 1)
                    put(": ")
                    item = item[1]
                walk(item, depth + 1)
            put("}" if isinstance(x, dict) else "]" if isinstance(x, list) else ",)" if len(x) == 1 else ")")
        elif isinstance(x, str):
            put(repr(x[: room[0]]) if len(x) > room[0] else repr(x))
        else:
            put(repr(x))

    walk(v, 0)
    text = "".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clip(text: str, limit: int = 200) -> str:
    """``text`` on one line, at most ``limit`` characters (a library's message quoting a value)."""
    text = " ".join(str(text)[: 4 * limit].split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def did_you_mean(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(key)[:200], [str(k) for k in known], n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def _join(path: str, key: str) -> str:
    if not key:
        return path
    if key.startswith("["):
        return f"{path}{key}"
    return f"{path}.{key}" if path else key


def _fail(path: str, msg: str) -> ConfigError:
    path = path or "config"
    if len(path) > 200:  # a key path through a huge free-form key
        path = path[:197] + "..."
    if msg.startswith(":"):
        return ConfigError(f"{path}{msg}")
    return ConfigError(f"{path} {msg}")


# --------------------------------------------------------------------------- types
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _split_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), True  # noqa: UP007
    return tp, False


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _fmt(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _bounds(md: Mapping[str, Any]) -> str:
    lo = (
        ("(", md.get("gt"))
        if md.get("gt") is not None
        else ("[", md.get("ge"))
        if md.get("ge") is not None
        else None
    )
    hi = (
        (")", md.get("lt"))
        if md.get("lt") is not None
        else ("]", md.get("le"))
        if md.get("le") is not None
        else None
    )
    if lo and hi:
        return f"in {lo[0]}{_fmt(lo[1])}, {_fmt(hi[1])}{hi[0]}"
    if lo:
        return f"{'>' if lo[0] == '(' else '>='} {_fmt(lo[1])}"
    if hi:
        return f"{'<' if hi[0] == ')' else '<='} {_fmt(hi[1])}"
    return ""


def _in_bounds(v: float, md: Mapping[str, Any]) -> bool:
    return not (
        (md.get("gt") is not None and not v > md.get("gt"))
        or (md.get("ge") is not None and not v >= md.get("ge"))
        or (md.get("lt") is not None and not v < md.get("lt"))
        or (md.get("le") is not None and not v <= md.get("le"))
    )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _value(tp: Any, md: Mapping[str, Any], v: Any, path: str) -> Any:
    """Check and convert one value of declared type ``tp``."""
    if md.get("coerce") is not None:
        v = md["coerce"](v)
    tp, nullable = _split_optional(tp)
    if v is None and nullable:
        return None
    null = " or null" if nullable else ""
    if md.get("partial_of") is not None:
        return build_partial(md["partial_of"], v, path)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _is_section(tp):
        out = build(tp, v, path)
    elif tp is bool:
        if not isinstance(v, bool):
            raise _fail(path, f"must be true or false{null}, got {short(v)}")
        out = v
    elif tp is int or tp is float:
        ok = _is_int(v) or (tp is float and _is_num(v))
        if tp is int and isinstance(v, float) and v.is_integer():
            v, ok = int(v), True
        what = "an integer" if tp is int else "a number"
        if not ok:
            raise _fail(path, f"must be {what}{null}, got {short(v)}")
        if tp is float:
            v = float(v)
            if not math.isfinite(v):
                raise _fail(path, f"must be finite, got {v}")
        if not _in_bounds(v, md):
            raise _fail(path, f"must be {_bounds(md)}{null}, got {short(v)}")
        out = v
    elif tp is str:
        if not isinstance(v, str) or (not v and md.get("choices") is None):
            raise _fail(path, f"must be a non-empty string{null}, got {short(v)}")
        out = v
    elif tp is dict:
        if v is None:
            v = {}
        if not isinstance(v, Mapping):
            raise _fail(path, f"must be a mapping{null}, got {short(v)}")
        out = copy.deepcopy(dict(v))
    elif origin is tuple and args == (int, int):
        items = v if isinstance(v, (list, tuple)) else [v]
        if not 1 <= len(items) <= 2 or not all(_is_int(x) and x > 0 for x in items):
            raise _fail(path, f"must be a positive size [H, W] (or H){null}, got {short(v)}")
        out = (items[0], items[-1])
    elif origin is tuple and args == (float, float):
        if not isinstance(v, (list, tuple)) or len(v) != 2 or not all(_is_num(x) for x in v):
            raise _fail(path, f"must be a pair [a, b] of numbers{null}, got {short(v)}")
        out = (float(v[0]), float(v[1]))
    elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        items = [v] if isinstance(v, Mapping) else v
        if items is None:
            items = []
        if not isinstance(items, (list, tuple)):
            raise _fail(path, f"must be a list{null}, got {short(v)}")
        out = tuple(_value(args[0], {}, x, f"{path}[{i}]") for i, x in enumerate(items))
    elif origin is dict and len(args) == 2 and _is_section(args[1]):
        if not isinstance(v, Mapping):
            raise _fail(path, f"must be a mapping{null}, got {short(v)}")
        out = {k: build(args[1], x, _join(path, str(k))) for k, x in v.items()}
    elif origin is list:
        if not isinstance(v, (list, tuple)):
            raise _fail(path, f"must be a list{null}, got {short(v)}")
        item_md = {"choices": md.get("choices")}
        out = [
            _value(args[0], item_md, x, f"{path}[{i}]") if args else copy.deepcopy(x) for i, x in enumerate(v)
        ]
        if not out and md.get("ge") is not None:
            raise _fail(path, f"must be a non-empty list, got {short(v)}")
        return out
    elif tp is Any:
        out = copy.deepcopy(v)
    else:  # pragma: no cover - a declaration error, not a user error
        raise TypeError(f"{path}: unsupported declared type {tp!r}")
    choices = md.get("choices")
    if choices is not None and origin is not list:
        if isinstance(choices, Names):
            known = list(choices.names())
            if out not in known:
                raise _fail(
                    path,
                    f": unknown {choices.what} {short(out)} "
                    f"({did_you_mean(out, known)}known: {', '.join(sorted(known))})",
                )
        elif out not in choices:
            raise _fail(path, f"must be one of {', '.join(map(str, choices))}; got {short(out)}")
    if md.get("check") is not None:
        msg = md["check"](out)
        if msg:
            raise _fail(path, f"{msg}, got {short(v)}")
    return out


# --------------------------------------------------------------------------- sections
def _fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init]


def _extra(cls: type) -> tuple[str, type] | None:
    """``_EXTRA = ("overrides", Section)``: unknown keys that are ``Section`` keys are collected
    (checked as there) into the ``overrides`` field."""
    return getattr(cls, "_EXTRA", None)


def _unknown(cls: type, key: Any, path: str, known: list[str]) -> ConfigError:
    full = _join(path, str(key))
    return ConfigError(
        f"unknown key {short(full)} ({did_you_mean(key, known)}expected one of: {', '.join(known)})"
    )


def build(cls: type, d: Any, path: str = "") -> Any:
    """Walk mapping ``d`` against section ``cls``; return the checked ``cls`` instance."""
    if hasattr(cls, "_coerce"):
        d = cls._coerce(d)
    if d is None:
        d = {}
    if not isinstance(d, Mapping):
        raise _fail(path, f"must be a mapping, got {type(d).__name__}: {short(d)}")
    hints = _hints(cls)
    fields = _fields(cls)
    names = [f.name for f in fields]
    extra = _extra(cls)
    extra_names = [
        n
        for n in ([f.name for f in _fields(extra[1])] if extra else [])
        if n not in getattr(cls, "_EXTRA_EXCLUDE", ())
    ]
    out: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    for k, v in d.items():
        if k in names and not (extra and k == extra[0]):
            continue
        if k in extra_names:
            overrides[k] = v
            continue
        raise _unknown(cls, k, path, [n for n in names if not (extra and n == extra[0])] + extra_names)
    for f in fields:
        if extra and f.name == extra[0]:
            continue
        fpath = _join(path, f.name)
        if f.name in d:
            out[f.name] = _value(hints[f.name], f.metadata, d[f.name], fpath)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"missing required key {short(fpath)}")
        elif _is_section(_split_optional(hints[f.name])[0]) and f.default_factory is not MISSING:
            out[f.name] = build(_split_optional(hints[f.name])[0], {}, fpath)
    if extra:
        out[extra[0]] = build_partial(extra[1], overrides, path)
    obj = cls(**out)
    check(obj, path)
    return obj


def check(obj: Any, path: str = "") -> Any:
    """Run ``obj._validate()`` (a section's cross-field rules), naming keys under ``path``."""
    if hasattr(obj, "_validate"):
        try:
            obj._validate()
        except _Invalid as e:
            raise _fail(_join(path, e.key), e.msg) from None
    return obj


def build_partial(cls: type, d: Any, path: str) -> dict[str, Any]:
    """Overrides of some keys of section ``cls``: each checked as in ``cls``; no defaults added."""
    if d is None:
        return {}
    if not isinstance(d, Mapping):
        raise _fail(path, f"must be a mapping, got {short(d)}")
    hints = _hints(cls)
    by_name = {f.name: f for f in _fields(cls)}
    out = {}
    for k, v in d.items():
        if k not in by_name:
            raise _unknown(cls, k, path, list(by_name))
        out[k] = _value(hints[k], by_name[k].metadata, v, _join(path, k))
    return out


def as_dict(obj: Any) -> Any:
    """Plain (JSON-able) nested dicts/lists of a section."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: as_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [as_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): as_dict(v) for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------- docs
def _type_name(tp: Any, md: Mapping[str, Any]) -> str:
    tp, nullable = _split_optional(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if md.get("partial_of") is not None:
        name = f"overrides of `{md['partial_of'].__name__}`"
    elif _is_section(tp):
        name = "section"
    elif origin is tuple and args == (int, int):
        name = "size [H, W]"
    elif origin is tuple and args == (float, float):
        name = "[a, b]"
    elif origin is tuple:
        name = f"list of {args[0].__name__}"
    elif origin is dict:
        name = f"mapping of name → {args[1].__name__}"
    elif origin is list:
        name = f"list of {args[0].__name__}" if args else "list"
    else:
        name = getattr(tp, "__name__", str(tp))
    return name + (" or null" if nullable else "")


def _default_text(f: dataclasses.Field) -> str:
    if f.default is not MISSING:
        v = f.default
    elif f.default_factory is not MISSING:
        v = f.default_factory()
        if dataclasses.is_dataclass(v):
            return ""
    else:
        return "required"
    v = as_dict(v)
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def doc_rows(cls: type, prefix: str = "") -> Iterator[tuple[str, str, str, str, str]]:
    """``(key path, type, default, allowed values, doc)`` for every key of ``cls``, recursively."""
    hints = _hints(cls)
    for f in _fields(cls):
        path = _join(prefix, f.name)
        md, tp = f.metadata, hints[f.name]
        allowed = _bounds(md) if md else ""
        if md and md.get("choices") is not None:
            ch = md["choices"]
            allowed = repr(ch) if isinstance(ch, Names) else " \\| ".join(map(str, ch))
        yield (path, _type_name(tp, md), _default_text(f), allowed, (md or {}).get("doc", ""))
        inner = _split_optional(tp)[0]
        if _is_section(inner) and not (md and md.get("partial_of")):
            yield from doc_rows(inner, path)
        elif typing.get_origin(inner) is tuple and _is_section(typing.get_args(inner)[0]):
            yield from doc_rows(typing.get_args(inner)[0], f"{path}[i]")
        elif typing.get_origin(inner) is dict and _is_section(typing.get_args(inner)[-1]):
            yield from doc_rows(typing.get_args(inner)[-1], f"{path}.<name>")
