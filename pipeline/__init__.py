"""Thin ``click`` entry points, one per DVC stage (see ``dvc.yaml``).

=============  =========================  ================================================
stage          command                    library call
=============  =========================  ================================================
data           ``python -m pipeline.data``       ``rdd.data`` (synthetic generator / checks)
teacher …      ``python -m pipeline.train STAGE`` ``rdd.engine.train(TrainConfig.from_dict(...))``
evaluate       ``python -m pipeline.evaluate``   ``rdd.evaluation`` + ``rdd.reporting``
export         ``python -m pipeline.export``     ``rdd.export.run_export``
=============  =========================  ================================================

Each stage reads its sections of ``params.yaml`` (``pipeline.config`` maps them onto the
library's configuration) and writes under ``outputs/<stage>/``. ``python -m pipeline.preset``
switches ``params.yaml`` to one of the presets in ``params/``.
"""
