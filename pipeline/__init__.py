"""Thin ``click`` entry points, one per DVC stage (see ``dvc.yaml`` and ``studies/*/dvc.yaml``).

``pipeline`` here is the DVC stage package; inside the library, ``rdd.runtime.stream`` is the
edge runner's threaded frame stream (decode → preprocess → inference → outputs), and the
export orchestrator is :func:`rdd.export.run_export` (``rdd/export/run.py``).

==============  ===========================================  ===========================================
stage           command                                      library call
==============  ===========================================  ===========================================
data            ``python -m pipeline.data``                  ``rdd.data`` (synthetic generator / checks)
video           ``python -m pipeline.video``                 ``rdd.data`` (demo clip + its masks)
teacher …       ``python -m pipeline.train STAGE``           ``rdd.engine.train(TrainConfig)``
evaluate        ``python -m pipeline.evaluate``              ``rdd.comparison.compare_models``
export          ``python -m pipeline.export``                ``rdd.export.run_export``
noisy_data      ``python -m pipeline.noisy_data --rate R``   ``rdd.label_noise.corrupt_split`` (studies)
study runs      ``python -m pipeline.study run ARM SEED``    ``rdd.engine.train`` + ``rdd.export.run_export``
study report    ``python -m pipeline.study_report``          ``rdd.study.write_study_report``
noise report    ``python -m pipeline.noise_report``          ``rdd.study.write_sweep_report``
(not a stage)   ``python -m pipeline.preset NAME``           switches ``params.yaml`` to ``params/NAME.yaml``
==============  ===========================================  ===========================================

Each stage reads its sections of ``params.yaml`` (``pipeline.config`` maps them onto the
library's configuration) and writes under ``outputs/<stage>/``.
"""
