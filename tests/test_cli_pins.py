"""The runner's and the benchmark's command lines and report fields are kept (issue #31): every
flag of ``rdd-infer`` / ``rdd-bench`` as of the redesign's start (``tests/fixtures/*_before.json``)
still exists with the same default, choices and arity, and every report key of then is still
written (new flags and keys may be added)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FIX = REPO / "tests" / "fixtures"
MODEL = REPO / "studies" / "camvid_converged" / "models" / "rdd_16x-s0.onnx"


def _flags(parser) -> dict:
    return {a.option_strings[-1]: a for a in parser._actions if a.option_strings}


#: defaults the snapshot read off the machine that took it, now resolved when the command runs
#: (the same value: ``rdd-bench --threads`` is this machine's core count either way)
RUN_TIME_DEFAULTS = {"--threads": [os.cpu_count() or 1]}
#: unset, spelled ``None`` now where it was an empty text (the plot's title: the device line)
UNSET = {"--title": ""}


def _check_flags(parser, before: dict) -> None:
    now = _flags(parser)
    for flag, old in before.items():
        assert flag in now, f"{flag} was removed"
        a = now[flag]
        default = (
            a.default if isinstance(a.default, (int, float, str, list, type(None), bool)) else repr(a.default)
        )
        if default is None and RUN_TIME_DEFAULTS.get(flag) is not None and isinstance(old["default"], list):
            default = old["default"]  # machine-derived in the snapshot
        if default is None and flag in UNSET:
            default = UNSET[flag]
        assert default == old["default"], (flag, default, old["default"])
        assert a.nargs == old["nargs"] and a.required == old["required"], flag
        if old["choices"]:
            choices = list(a.choices) if a.choices else a.metavar.strip("{}").split(",")
            assert set(old["choices"]) <= set(choices), (flag, choices)


def test_rdd_infer_keeps_every_flag():
    from rdd.runtime.cli import build_parser

    _check_flags(build_parser(), json.loads((FIX / "runner_cli_before.json").read_text())["flags"])


def test_rdd_bench_keeps_every_flag():
    from rdd.runtime.bench_cli import build_parser

    _check_flags(build_parser(), json.loads((FIX / "bench_cli_before.json").read_text())["flags"])


def _keys(d: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        out.add(prefix + k)
        if isinstance(v, dict) and k not in ("device", "iou"):
            out |= _keys(v, prefix + k + ".")
    return out


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Labelled images and a labelled video at the study model's size (content is irrelevant)."""
    d = tmp_path_factory.mktemp("pins")
    rng = np.random.default_rng(0)
    for sub in ("imgs", "labs", "vm"):
        (d / sub).mkdir()
    w = cv2.VideoWriter(str(d / "v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (240, 180))
    for i in range(8):
        img = rng.integers(0, 256, (180, 240, 3), dtype=np.uint8)
        lab = rng.integers(0, 12, (180, 240)).astype(np.uint8)
        if i < 6:
            cv2.imwrite(str(d / "imgs" / f"f{i}.png"), img)
            cv2.imwrite(str(d / "labs" / f"f{i}.png"), lab)
        w.write(img)
        cv2.imwrite(str(d / "vm" / f"frame_{i:06d}.png"), lab)
    w.release()
    return d


def test_rdd_infer_report_keeps_every_field(clip, tmp_path):
    from rdd.runtime.cli import main

    if not MODEL.is_file():
        pytest.skip("the committed study model is not in this checkout")
    before = json.loads((FIX / "runner_cli_before.json").read_text())["report_keys"]
    d = clip
    runs = {
        "images_labels": ["--images", d / "imgs", "--labels", d / "labs"],
        "images_labels_compare": ["--images", d / "imgs", "--labels", d / "labs", "--compare", "ort"],
        "video_labels_out_masks": [
            "--video",
            d / "v.mp4",
            "--labels",
            d / "vm",
            "--out",
            tmp_path / "o.mp4",
            "--save-masks",
            tmp_path / "m",
        ],
        "video_realtime": ["--video", d / "v.mp4", "--realtime"],
        "images_batch": ["--images", d / "imgs", "--batch", "2"],
    }
    for name, args in runs.items():
        rep = tmp_path / f"{name}.json"
        assert (
            main(
                [
                    "--model",
                    str(MODEL),
                    *map(str, args),
                    "--warmup",
                    "1",
                    "--report",
                    str(rep),
                    "--no-progress",
                ]
            )
            == 0
        ), name
        missing = set(before[name]) - _keys(json.loads(rep.read_text()))
        assert not missing, (name, sorted(missing))


def test_rdd_bench_rows_keep_every_field(clip, tmp_path):
    from rdd.runtime.bench_cli import main

    if not MODEL.is_file():
        pytest.skip("the committed study model is not in this checkout")
    before = json.loads((FIX / "bench_cli_before.json").read_text())
    assert (
        main(
            [
                "--model",
                str(MODEL),
                "--images",
                str(clip / "imgs"),
                "--labels",
                str(clip / "labs"),
                "--duration",
                "0.1",
                "--rounds",
                "1",
                "--min-runs",
                "2",
                "--e2e-frames",
                "4",
                "--threads",
                "1",
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 0
    )
    rep = json.loads((tmp_path / "b" / "bench.json").read_text())
    ok = [r for r in rep["results"] if r["status"] == "ok"]
    skipped = [r for r in rep["results"] if r["status"] != "ok"]
    assert set(before["top_keys"]) <= set(rep)
    assert set(before["protocol_keys"]) <= set(rep["protocol"])
    assert set(before["ok_row_keys"]) <= set().union(*map(set, ok))
    assert set(before["skipped_row_keys"]) <= set().union(*map(set, skipped))
    assert all(not os.path.isabs(r.get("model_path") or "") for r in rep["results"])


def test_deploy_doc_option_tables_are_generated_from_the_declarations():
    """docs/DEPLOY.md's option tables are exactly what `python -m rdd.runtime.options` prints."""
    from rdd.runtime.options import DOC_BEGIN, DOC_END, doc_section

    text = (REPO / "docs" / "DEPLOY.md").read_text()
    start, end = text.index(DOC_BEGIN), text.index(DOC_END) + len(DOC_END) + 1
    assert text[start:end] == doc_section()
