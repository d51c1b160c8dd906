"""Options declared as dataclass fields, made into command lines, checked objects and tables.

Generic over any frozen dataclass whose fields are declared with :func:`option` (the walker's
:func:`rdd.config.walker.param` plus ``metavar``, ``nargs``, ``parse``); the declarations of
``rdd-infer`` and ``rdd-bench`` are :mod:`rdd.runtime.options`:

* :func:`build_parser`: an argparse parser, flag = ``--`` + key with ``-`` for ``_``; each value
  checked by the walker as it is parsed, a bad one is a one-line usage error naming the flag;
* :func:`options` / :func:`parse_options`: the one checked options object, from keyword values
  or a command line (a rule between options that fails names the flag too);
* :func:`doc_markdown`: the option table of a command (``docs/DEPLOY.md``, generated, tested).

Standard library only (the walker is too), so the torch-free, PyYAML-free base install loads it.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING
from typing import Any

from rdd.config.walker import ConfigError, Names, build, build_partial, doc_rows, param
from rdd.runtime.errors import flag

__all__ = ["option", "options", "parse_options", "build_parser", "doc_markdown"]


def option(
    default: Any = MISSING,
    *,
    metavar: str | None = None,
    nargs: str | None = None,
    parse: Callable[[str], Any] | None = None,
    **kw: Any,
) -> Any:
    """:func:`rdd.config.walker.param` plus how the command line reads it: ``metavar``,
    ``nargs`` (``"+"`` for a list) and ``parse`` (text → value, before the walker checks it;
    default: by the declared type)."""
    f = param(default, **kw)
    f.metadata = type(f.metadata)({**f.metadata, "metavar": metavar, "nargs": nargs, "parse": parse})
    return f


# --------------------------------------------------------------------------- building
def parse_options(parser: argparse.ArgumentParser, cls: type, argv: list[str] | None) -> Any:
    """``parser.parse_args(argv)`` → the checked ``cls`` options; a rule between options
    (``_validate``) that fails is a usage error naming the flag, like a bad value."""
    from rdd.runtime.errors import OptionError

    args = parser.parse_args(argv)
    try:
        return options(cls, vars(args))
    except OptionError as e:
        text = e.as_flags()
        flag_, _, msg = text.partition(" ")
        parser.error(f"argument {flag_}: {msg}" if flag_.startswith("--") else text)


def options(cls: type, values: dict[str, Any] | None = None, **kw: Any) -> Any:
    """The checked options object from keyword values (keys as declared); a bad value is a
    :class:`~rdd.runtime.errors.OptionError` naming the key."""
    from rdd.runtime.errors import OptionError, literal

    raw = {**(values or {}), **kw}
    try:
        return build(cls, raw)
    except ConfigError as e:
        key, _, msg = str(e).partition(" ")
        if key in {f.name for f in dataclasses.fields(cls)}:
            raise OptionError(key, literal(msg)) from None
        raise OptionError("options", literal(str(e).lstrip(":"))) from None


def _convert(tp: Any, text: str) -> Any:
    tp = (
        typing.get_args(tp)[0]
        if typing.get_origin(tp) in (typing.Union, type(int | None)) and type(None) in typing.get_args(tp)
        else tp
    )
    if typing.get_origin(tp) is list:
        tp = (typing.get_args(tp) or (str,))[0]
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
    return text


def _arg_type(cls: type, f: dataclasses.Field, tp: Any) -> Callable[[str], Any]:
    md = f.metadata
    one = tp if md.get("nargs") is None else _item(tp)

    def parse(text: str) -> Any:
        try:
            v = md["parse"](text) if md.get("parse") else _convert(one, text)
            if md.get("nargs") is None:
                build_partial(cls, {f.name: v}, "")
            else:  # one item of a list: checked against the list's bounds and choices
                build_partial(cls, {f.name: [v]}, "")
        except (ValueError, ConfigError) as e:
            msg = str(e)
            if isinstance(e, ConfigError) and msg.startswith(f.name + " "):
                msg = msg[len(f.name) + 1 :]
            raise argparse.ArgumentTypeError(msg) from None
        return v

    return parse


def _item(tp: Any) -> Any:
    inner = typing.get_args(tp)
    tp = inner[0] if inner and type(None) in inner else tp
    return (typing.get_args(tp) or (str,))[0] if typing.get_origin(tp) is list else tp


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (``error: argument --fps: ...``), exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        from rdd.runtime.errors import printable

        self.exit(2, f"error: {printable(message)} (see {self.prog} --help)\n")


class _Help(argparse.RawDescriptionHelpFormatter):
    """Defaults shown only where there is one (never ``(default: None)``)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        h = action.help or ""
        if (
            action.default not in (None, False, [], "", argparse.SUPPRESS)
            and "%(default)" not in h
            and action.option_strings
        ):
            d = action.default
            h += f" (default: {' '.join(map(str, d)) if isinstance(d, list) else d})"
        return h


def build_parser(
    cls: type,
    prog: str,
    *,
    description: str = "",
    epilog: str = "",
    groups: Sequence[Sequence[str]] = (),
    version: str | None = None,
) -> argparse.ArgumentParser:
    """An argparse parser of ``cls``'s declarations: one ``--flag`` per field; ``groups`` are
    fields of which exactly one is required (``video``/``camera``/``images``)."""
    p = _Parser(prog=prog, description=description, epilog=epilog, formatter_class=_Help)
    if version:
        p.add_argument("--version", action="version", version=f"%(prog)s {version}")
    hints = typing.get_type_hints(cls)
    in_group = {k: g for g in groups for k in g}
    made: dict[tuple, Any] = {}
    for f in dataclasses.fields(cls):
        md, tp = f.metadata, hints[f.name]
        target = p
        if f.name in in_group:
            key = tuple(in_group[f.name])
            if key not in made:
                made[key] = p.add_mutually_exclusive_group(required=True)
            target = made[key]
        kw: dict[str, Any] = {"help": md.get("doc", "").replace("%", "%%")}
        if tp is bool:
            target.add_argument(flag(f.name), action="store_true", **kw)
            continue
        kw["type"] = _arg_type(cls, f, tp)
        choices = md.get("choices")
        if isinstance(choices, Names):  # checked by the walker as parsed; listed in the usage
            kw["metavar"] = "{" + ",".join(choices.names()) + "}"
        elif choices is not None and md.get("nargs") is None:
            kw["choices"] = list(choices)
            kw.pop("type")
        if md.get("nargs"):
            kw["nargs"] = md["nargs"]
        if md.get("metavar") and "choices" not in kw and "metavar" not in kw:
            kw["metavar"] = md["metavar"]
        required = f.default is MISSING and f.default_factory is MISSING
        default = None if required else (f.default if f.default is not MISSING else f.default_factory())
        target.add_argument(flag(f.name), required=required, default=default, **kw)
    return p


def doc_markdown(cls: type, command: str) -> str:
    """The option table of ``command`` (a ``docs/DEPLOY.md`` section, generated and tested)."""
    lines = [f"| `{command}` option | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for key, typ, default, allowed, doc in doc_rows(cls):
        cells = [f"`{flag(key)}`", typ, f"`{default}`" if default else "", allowed, doc]
        lines.append(
            "| " + " | ".join(c.replace("|", "\\|") if c is not allowed else c for c in cells) + " |"
        )
    return "\n".join(lines) + "\n"
