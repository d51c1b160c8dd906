"""A resumed run's DVCLive curves (issue #33 item 10): the steps a stopped run logged after its
last checkpoint are logged again by the resumed run, once."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_engine import cfg_dict, make_folder_dataset

from rdd.engine import Trainer, train


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return make_folder_dataset(tmp_path_factory.mktemp("folder"))


def _curves(out: Path) -> dict[str, str]:
    plots = out / "dvclive" / "plots" / "metrics"
    return {str(p.relative_to(plots)): p.read_text() for p in sorted(plots.rglob("*.tsv"))}


def test_a_resumed_run_logs_each_step_once(tmp_path, data_root, monkeypatch):
    """Killed during step 6 of 6 (steps 1-5 logged, the checkpoint at step 4), then started
    again: it resumes at step 4 and the curves hold each step once, exactly those of a run that
    was never stopped."""
    over = dict(optim={"iters": 6, "lr": 0.02}, eval_interval=2, log_interval=1)
    train(cfg_dict(tmp_path / "full", data_root, **over))
    run = tmp_path / "run"
    check = Trainer._check_finite

    def crash_at_step_6(self, it, loss, terms):
        if it == 5:
            raise KeyboardInterrupt("killed")
        return check(self, it, loss, terms)

    with monkeypatch.context() as m:
        m.setattr(Trainer, "_check_finite", crash_at_step_6)
        with pytest.raises(KeyboardInterrupt):
            train(cfg_dict(run, data_root, **over))
    logged = _curves(run)["train/loss.tsv"].splitlines()
    assert [r.split("\t")[0] for r in logged[1:]] == ["1", "2", "3", "4", "5"]
    train(cfg_dict(run, data_root, **over))
    assert f"resumed {run / 'checkpoint.pt'} at iteration 4" in (run / "train.log").read_text()
    curves = _curves(run)
    assert [r.split("\t")[0] for r in curves["train/loss.tsv"].splitlines()[1:]] == [
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
    ]
    assert curves == _curves(tmp_path / "full")
