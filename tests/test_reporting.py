"""rdd.reporting: latency and model profile, the comparison table, RDD's maps and figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


def test_cpu_latency_and_profile():
    from rdd.reporting import cpu_latency, model_profile

    m = torch.nn.Conv2d(3, 2, 1)
    lat = cpu_latency(m, 8, warmup=0, runs=3, threads=1)
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] and lat["mean"] > 0
    prof = model_profile(m, (4, 6), latency_runs=0)
    assert prof == {
        "params": 8,
        "flops": 2 * 3 * 2 * 24,
        "gflops": 2 * 3 * 2 * 24 / 1e9,
        "input_size": [4, 6],
        "cpu_latency_ms": None,
    }
    with pytest.raises(ValueError, match="runs must be >= 1"):
        cpu_latency(m, 8, runs=0)


def test_comparison_table_golden():
    from rdd.reporting import comparison_table, miou_plot_rows

    results = {
        "teacher": {
            "model": "big",
            "miou": 0.5,
            "pixel_acc": 0.9,
            "iou": [0.25, None],
            "params": 2_500_000,
            "gflops": 1.5,
            "cpu_latency_ms": {"mean": 12.34},
        },
        "student": {"model": "small", "miou": 0.125, "pixel_acc": 0.5},
    }
    assert comparison_table(results, ["a", "b"]) == (
        "| model | architecture | mIoU (%) | pixel acc. (%) | params (M) | GFLOPs "
        "| CPU latency (ms) |\n"
        "|---|---|---:|---:|---:|---:|---:|\n"
        "| teacher | big | 50.00 | 90.00 | 2.50 | 1.5 | 12.3 |\n"
        "| student | small | 12.50 | 50.00 | – | – | – |\n"
        "\nPer-class IoU (%):\n\n| model | a | b |\n|---|---:|---:|\n"
        "| teacher | 25.0 | – |\n| student | – | – |\n"
    )
    assert miou_plot_rows(results) == [{"model": "teacher", "miou": 50.0}, {"model": "student", "miou": 12.5}]
    with pytest.raises(ValueError, match="has 2 values for 3 classes"):
        comparison_table(results, ["a", "b", "c"])
    with pytest.raises(ValueError, match="no 'miou'"):
        comparison_table({"x": {}})


def _png_size(path: Path) -> tuple[int, int]:
    import cv2

    img = cv2.imread(str(path))
    assert img is not None
    return img.shape[:2]


def test_rdd_maps_and_figure(tmp_path):
    from rdd.models import create_model
    from rdd.reporting import rdd_maps, save_bar_chart, save_rdd_figure
    from rdd.spec import CAMVID_CLASSES

    teacher = create_model("deeplabv3_resnet18", 11, width_mult=0.125, aux=True)
    student = create_model("lraspp_mobilenetv2", 11, width_mult=0.125)
    x = torch.randn(2, 3, 32, 48)
    y = torch.randint(0, 11, (2, 32, 48))
    y[:, :4] = 255
    maps = rdd_maps(teacher, student, x, y, threshold=0.7, min_kept=0.1, mode="xor")
    assert teacher.training and student.training  # modes restored
    assert maps["teacher_pred"].shape == maps["tse_mask"].shape == (2, 32, 48)
    w = maps["tfe_weights"]
    assert w.dtype == np.float32 and (w > 0).all() and (w <= 1).all()
    assert maps["tse_mask"].dtype == bool and not maps["tse_mask"][:, :4].any()  # ignore never hard
    # xor = exactly one of the two OHEM masks: never more than their union
    both = rdd_maps(teacher, student, x, y, min_kept=0.1, mode="or")["tse_mask"]
    assert not (maps["tse_mask"] & ~both).any()
    with pytest.raises(ValueError, match="no auxiliary head"):
        rdd_maps(student, student, x, y)

    image = np.zeros((32, 48, 3), np.uint8)
    path = save_rdd_figure(
        tmp_path / "f.png",
        image=image,
        gt=y[0].numpy(),
        teacher_pred=maps["teacher_pred"][0],
        student_pred=maps["student_pred"][0],
        tfe_weights=w[0],
        tse_mask=maps["tse_mask"][0],
        classes=CAMVID_CLASSES,
    )
    h, wd = _png_size(path)
    assert wd == 1200 and h > 300
    with pytest.raises(ValueError, match="tse_mask has shape"):
        save_rdd_figure(
            tmp_path / "g.png",
            image=image,
            gt=y[0].numpy(),
            teacher_pred=maps["teacher_pred"][0],
            student_pred=maps["student_pred"][0],
            tfe_weights=w[0],
            tse_mask=maps["tse_mask"][0, :5],
            classes=CAMVID_CLASSES,
        )
    assert not (tmp_path / "g.png").exists()
    bar = save_bar_chart({"a": {"miou": 0.3}, "b": {"miou": 0.6}}, tmp_path / "bar.png")
    assert _png_size(bar)[1] == 600
