"""Student studies: aggregate arm × seed runs into a summary, figures and a markdown report.

A study (``studies/<name>/``, run by :mod:`pipeline.study`) trains every *arm* (baseline, KD, RDD,
ablations) with several seeds into :func:`run_dir` ``(out_root, arm, seed)``. This package only
reads those runs (plus, for the difficulty diagnostics, the teacher's and students' weights):

* :mod:`rdd.study.aggregate` (torch-free) — runs → per-arm statistics and paired gains; each
  arm's settings (its TSE mask mode) come from the configuration the run logged;
* :mod:`rdd.study.diagnostics` (torch) — RDD's difficulty maps on labelled frames;
* :mod:`rdd.study.figures`, :mod:`rdd.study.report` (a study; its markdown:
  :mod:`rdd.study.sections` and :mod:`rdd.study.gaps`) and :mod:`rdd.study.sweep` (the
  label-noise sweep) — the figures, the markdown and the writers :func:`write_study_report` /
  :func:`write_sweep_report` (:mod:`rdd.study.markdown`: their table cells).

Importing this package does not import torch or matplotlib.
"""

from rdd.study.aggregate import (
    load_run,
    mean_std,
    paired_diff,
    read_json,
    read_run_config,
    read_tsv,
    run_dir,
    summarize_study,
)
from rdd.study.diagnostics import diagnose_noise, diagnose_study, difficulty_diagnostics
from rdd.study.report import write_study_report
from rdd.study.sections import markdown_report
from rdd.study.sweep import sweep_markdown, write_sweep_report

__all__ = [
    "run_dir",
    "read_tsv",
    "read_json",
    "read_run_config",
    "load_run",
    "summarize_study",
    "mean_std",
    "paired_diff",
    "difficulty_diagnostics",
    "diagnose_study",
    "diagnose_noise",
    "markdown_report",
    "sweep_markdown",
    "write_study_report",
    "write_sweep_report",
]
