"""Reading a params YAML file: plain data only, bounded, and no key given twice.

:func:`read_yaml` is ``yaml.safe_load`` (no tags that build objects or run code) plus three
checks made while the file's node graph is composed, before any Python value is built:

* nesting deeper than :data:`MAX_DEPTH` mappings / lists is refused (a crafted file would
  otherwise end in a ``RecursionError``);
* a document that, with every alias expanded, has more than :data:`MAX_NODES` nodes is refused,
  and so is an alias that refers to the node it sits in (a "billion laughs" file is a few lines
  whose aliases expand to billions of values: every later walk, copy or message would expand it);
* a key given twice in one mapping is refused (YAML keeps the last one and drops the other
  silently); a merge key (``<<: *anchor``) and the keys that override it are not duplicates.

The few small anchors a study file uses (``&x16`` / ``*x16``) expand to a few nodes each.
Every failure is a :class:`~rdd.config.walker.ConfigError` with a one-line message naming the
file and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rdd.config.walker import ConfigError, short

__all__ = ["MAX_DEPTH", "MAX_NODES", "read_yaml"]

MAX_DEPTH = 64  # nested mappings / lists
MAX_NODES = 100_000  # nodes of the document with every alias expanded
_MERGE = "tag:yaml.org,2002:merge"


class _Refused(Exception):
    def __init__(self, line: int, msg: str) -> None:
        super().__init__(line, msg)
        self.line, self.msg = line, msg


class _BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` whose composer bounds depth and expanded size and refuses duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[str] = []
        self._sizes: dict[int, int] = {}  # id(node) → nodes it expands to (aliases included)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            if id(node) not in self._sizes:  # an alias inside the node it names
                raise _Refused(
                    mark.line + 1,
                    f"the alias at {self._where(index)} refers to a "
                    "node that contains it (a recursive structure)",
                )
            return node
        if len(self._path) >= MAX_DEPTH:
            raise _Refused(
                self.peek_event().start_mark.line + 1,
                f"nested deeper than {MAX_DEPTH} levels at {self._where()}",
            )
        self._path.append(_step(index))
        try:
            node = super().compose_node(parent, index)
            self._check(node)
        finally:
            self._path.pop()
        return node

    def _where(self, index: Any = None) -> str:
        """The key path being composed (plus ``index``), as in the walker's messages."""
        steps = self._path[1:] + ([_step(index)] if index is not None else [])
        path = "".join(p if p.startswith("[") else f".{p}" for p in steps).lstrip(".")
        return short(path) if path else "the top level"

    def _check(self, node: Any) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for key, _ in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE:
                    continue
                line = key.start_mark.line + 1
                if (key.tag, key.value) in seen:
                    raise _Refused(
                        line,
                        f"duplicate key {self._where(key)} (first given at line "
                        f"{seen[key.tag, key.value]}; YAML keeps only the last)",
                    )
                seen[key.tag, key.value] = line
            children = [c for kv in node.value for c in kv]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        size = 1 + sum(self._sizes[id(c)] for c in children)
        if size > MAX_NODES:
            raise _Refused(
                node.start_mark.line + 1,
                f"{self._where()} expands to more than {MAX_NODES} values (aliases "
                "of aliases?); write the values out or use fewer aliases",
            )
        self._sizes[id(node)] = size


def _step(index: Any) -> str:
    if isinstance(index, int):
        return f"[{index}]"
    if isinstance(index, yaml.ScalarNode):
        return str(index.value)
    return "?"


def read_yaml(path: str | Path) -> Any:
    """The data of the YAML file ``path`` (see the module docstring); ``ConfigError`` naming the
    file and line on a bound, a duplicate key or invalid YAML."""
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except _Refused as e:
        raise ConfigError(f"{path}: line {e.line}: {e.msg}") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = " ".join(str(e.problem or e.context or "").split())
        raise ConfigError(f"{path}: not valid YAML: {where}{what}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    finally:
        loader.dispose()
