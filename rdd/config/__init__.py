"""Configuration: one typed schema and one walker (torch-free; PyYAML only to read a file).

* :mod:`rdd.config.walker` – :func:`param` declarations, :func:`build` (the one validator),
  :func:`doc_rows` (the generated reference); standard library only, so the edge runtime's
  options (:mod:`rdd.runtime.options`) use it on a device without PyYAML;
* :mod:`rdd.config.sections` – the training recipe's sections (model, data, optim, loss, engine);
* :mod:`rdd.config.params` – ``params.yaml`` section by section, :func:`load_params`;
* :mod:`rdd.config.export` – its ``export`` section (:class:`~rdd.config.export.ExportConfig`);
* :mod:`rdd.config.yamlfile` – the bounded YAML reader under it (:func:`read_yaml`).

The names below are loaded on first use (PEP 562): importing ``rdd.config.walker`` loads no
other module of the package.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "STUDENT_STAGES": "params",
    "TRAIN_STAGES": "params",
    "Params": "params",
    "ParamsError": "params",
    "load_params": "params",
    "parse_params": "params",
    "ConfigError": "walker",
    "as_dict": "walker",
    "build": "walker",
    "param": "walker",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'rdd.config' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"rdd.config.{mod}"), name)
    globals()[name] = value
    return value
