"""Configuration: one typed schema and one walker (torch-free).

* :mod:`rdd.config.walker` – :func:`param` declarations, :func:`build` (the one validator),
  :func:`doc_rows` (the generated reference);
* :mod:`rdd.config.sections` – the training recipe's sections (model, data, optim, loss, engine);
* :mod:`rdd.config.params` – ``params.yaml`` section by section, :func:`load_params`;
* :mod:`rdd.config.yamlfile` – the bounded YAML reader under it (:func:`read_yaml`).
"""
from rdd.config.params import (STUDENT_STAGES, TRAIN_STAGES, Params, ParamsError, load_params,
                               parse_params)
from rdd.config.walker import ConfigError, as_dict, build, param

__all__ = ["ConfigError", "ParamsError", "Params", "load_params", "parse_params", "build",
           "as_dict", "param", "TRAIN_STAGES", "STUDENT_STAGES"]
