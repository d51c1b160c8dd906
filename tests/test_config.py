"""The one config walker and the params schema (``rdd.config``): declarations in, checks,
defaults and the generated reference out."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from rdd.config import params as P
from rdd.config.walker import ConfigError, as_dict, build, param, short

REPO = Path(__file__).resolve().parents[1]
RAW = yaml.safe_load((REPO / "params.yaml").read_text())


def test_reference_is_generated_from_the_schema():
    """docs/PARAMS.md is exactly what `python -m pipeline.params --doc` prints."""
    from pipeline.params import main

    res = CliRunner().invoke(main, ["--doc"])
    assert res.exit_code == 0
    assert res.output == P.doc_markdown() == (REPO / "docs" / "PARAMS.md").read_text()
    for key in (
        "`student.optim.iters`",
        "`rdd.tfe_frac`",
        "`export.int8.max_miou_drop`",
        "`prepare.synthetic.n_train`",
        "`study.arms.<name>.rdd`",
    ):
        assert key in res.output


def test_a_new_knob_is_declared_once_and_shows_up_everywhere(monkeypatch):
    """A knob added to the schema only is checked, defaulted and documented."""

    @dataclasses.dataclass(frozen=True)
    class Evaluate2(P.EvaluateConfig):
        new_knob: int = param(3, gt=0, doc="a knob added in one place")

    monkeypatch.setattr(P, "EvaluateConfig", Evaluate2)  # what editing the class would do
    params = P.parse_params(RAW)
    assert params.evaluate.new_knob == 3  # default
    bad = {**RAW, "evaluate": {**RAW["evaluate"], "new_knob": -1}}
    with pytest.raises(P.ParamsError, match=r"^params\.yaml: evaluate\.new_knob must be > 0, got -1$"):
        P.parse_params(bad)
    typo = {**RAW, "evaluate": {**RAW["evaluate"], "new_knbo": 4}}
    with pytest.raises(P.ParamsError, match=r"unknown key 'evaluate\.new_knbo' \(did you mean 'new_knob'\?"):
        P.parse_params(typo)
    assert P.parse_params({**RAW, "evaluate": {"new_knob": 5}}).evaluate.new_knob == 5
    assert "| `evaluate.new_knob` | int | `3` | > 0 | a knob added in one place |" in P.doc_markdown()


def test_kd_and_rdd_sections_cross_into_the_engine_field_by_field():
    """Issue #33 item 12: the ``kd`` / ``rdd`` sections become the engine's ``KDConfig`` /
    ``RDDConfig`` through one conversion built from the engine dataclass's fields: every field is
    carried (each set to a non-default value here), and a field the engine gains without a
    source in the section is an error, never silently dropped."""
    from rdd.config.sections import KDConfig, RDDConfig

    kd = P.parse_params({**RAW, "kd": {"type": "pixel", "weight": 0.25, "temperature": 4.0}}).kd
    assert kd.to_engine() == KDConfig(type="pixel", weight=0.25, temperature=4.0)
    rdd = P.parse_params(
        {
            **RAW,
            "rdd": {
                "tfe": True,
                "tse": True,
                "tfe_frac": 0.25,
                "threshold": 0.6,
                "min_kept": 0.1,
                "mode": "or",
                "reduction": "all",
            },
        }
    ).rdd
    assert rdd.to_engine(100) == RDDConfig(
        tfe=True, tse=True, tfe_iters=25, threshold=0.6, min_kept=0.1, mode="or", reduction="all"
    )
    shared = {f.name for f in dataclasses.fields(RDDConfig)} - {"tfe_iters"}
    assert shared <= {f.name for f in dataclasses.fields(P.RDDSection)}

    @dataclasses.dataclass(frozen=True)
    class RDDConfig2(RDDConfig):
        new_knob: int = param(3, doc="added to the engine only")

    with pytest.raises(TypeError, match="RDDSection has no field for RDDConfig2.new_knob"):
        P._engine(RDDConfig2, rdd, tfe_iters=1)


def test_every_committed_params_file_is_valid_and_round_trips():
    files = [
        REPO / "params.yaml",
        *sorted((REPO / "params").glob("*.yaml")),
        *sorted((REPO / "studies").glob("*/params.yaml")),
    ]
    for f in files:
        p = P.load_params(f)
        again = P.parse_params(
            {k: v for k, v in p.to_dict().items() if v is not None and k not in ("teacher", "student")}
            | {k: getattr(p, k).raw() for k in ("teacher", "student")}
        )
        assert again == p, f


def test_schema_imports_without_torch():
    code = (
        "import sys; import rdd.config; from rdd.config.params import doc_markdown; "
        "doc_markdown(); assert 'torch' not in sys.modules, 'torch imported'"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_the_torch_free_constants_are_the_losses():
    from rdd.config.sections import RDD_MODES, TFE_REDUCTIONS
    from rdd.losses import TFE_REDUCTIONS as T
    from rdd.losses import TSE_MODES

    assert RDD_MODES is TSE_MODES and TFE_REDUCTIONS is T


@dataclasses.dataclass(frozen=True)
class _Inner:
    k: float = param(0.5, ge=0, le=1, doc="a fraction")


@dataclasses.dataclass(frozen=True)
class _Outer:
    n: int = param(doc="required")
    size: tuple[int, int] | None = param(None)
    inner: _Inner = param(factory=_Inner)
    items: tuple[_Inner, ...] = param(())
    names: list[str] = param([], choices=("a", "b"))


@pytest.mark.parametrize(
    "d,message",
    [
        ({}, "missing required key 'x.n'"),
        ({"n": "3"}, "x.n must be an integer, got '3'"),
        ({"n": True}, "x.n must be an integer, got True"),
        ({"n": 1, "size": [0, 2]}, "x.size must be a positive size [H, W] (or H) or null, got [0, 2]"),
        ({"n": 1, "size": [2.5, 2]}, "x.size must be a positive size"),
        ({"n": 1, "inner": {"k": 2}}, "x.inner.k must be in [0, 1], got 2"),
        ({"n": 1, "inner": 3}, "x.inner must be a mapping, got int: 3"),
        ({"n": 1, "items": [{"k": -1}]}, "x.items[0].k must be in [0, 1], got -1"),
        ({"n": 1, "names": ["a", "c"]}, "x.names[1] must be one of a, b; got 'c'"),
        ({"n": 1, "inner": {"kk": 1}}, "unknown key 'x.inner.kk' (did you mean 'k'? expected one of: k)"),
        ({"n": 1, "nn": 1}, "unknown key 'x.nn' (did you mean 'n'?"),
    ],
)
def test_walker_messages(d, message):
    with pytest.raises(ConfigError) as e:
        build(_Outer, d, "x")
    assert str(e.value).startswith(message), str(e.value)


def test_walker_converts_and_defaults():
    o = build(_Outer, {"n": 2.0, "size": 4, "items": {"k": 1}}, "x")
    assert o == _Outer(n=2, size=(4, 4), inner=_Inner(), items=(_Inner(k=1.0),))
    assert as_dict(o) == {"n": 2, "size": [4, 4], "inner": {"k": 0.5}, "items": [{"k": 1.0}], "names": []}


# --------------------------------------------------------------------------- reading the file
_BOMB = """\
data:
  dataset: synthetic
  kwargs:
    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
    h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
    i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def _one_line_params_error(path: Path) -> str:
    """``python -m pipeline.params`` and :func:`load_params` refuse ``path`` in one line."""
    from pipeline.params import main

    with pytest.raises(P.ParamsError) as e:
        P.load_params(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(path)) and len(msg) < 300, msg
    res = CliRunner().invoke(main, ["--params", str(path)])
    assert res.exit_code == 2 and res.output.strip() == f"Error: {msg}", res.output
    return msg


def test_alias_bombs_are_refused_before_anything_expands_them(tmp_path):
    """Issue #33 item 3: nested aliases that expand to 387 million values (here in
    ``data.kwargs``, whose error message used to render them) are one line, at once."""
    import time

    path = tmp_path / "bomb.yaml"
    path.write_text(_BOMB)
    t0 = time.perf_counter()
    msg = _one_line_params_error(path)
    assert time.perf_counter() - t0 < 10
    assert re.search(r"line \d+: 'data\.kwargs\.[a-i]' expands to more than 100000 values", msg)
    path.write_text("data: {dataset: synthetic}\nstudy: &s {arms: {a: *s}}\n")  # recursive
    assert "refers to a node that contains it" in _one_line_params_error(path)
    # small anchors, as the committed study files use them (&x16 / *x16, &at_w / *at_w), are fine
    study = P.load_params(REPO / "studies" / "camvid_converged" / "params.yaml").study
    assert study.arms["kd_16x"].student == study.arms["or_16x"].student != {}
    assert study.arms["at_16x"].extra_kd[0].weight == study.arms["at_rdd_16x"].extra_kd[0].weight


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "data: {dataset: synthetic}\ntrain: {seed: 1}\nkd: {}\ntrain: {seed: 2}\n",
            "line 4: duplicate key 'train' (first given at line 2",
        ),
        (
            "data: {dataset: synthetic}\nstudent:\n  model: lraspp_mobilenetv2\n  optim:\n    lr: 0.1\n"
            "    iters: 5\n    lr: 0.2\n",
            "line 7: duplicate key 'student.optim.lr' (first given at line 5",
        ),
        (
            "data: {dataset: synthetic, kwargs: {a: 1, a: 2}}\n",
            "line 1: duplicate key 'data.kwargs.a' (first given at line 1",
        ),
    ],
)
def test_a_key_given_twice_is_an_error_naming_it_and_its_line(tmp_path, text, message):
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    assert message in _one_line_params_error(path)
    # a merge key and the keys that override it are not duplicates
    from rdd.config.yamlfile import read_yaml

    path.write_text("a: &a {x: 1, y: 2}\nb:\n  <<: *a\n  x: 3\n")
    assert read_yaml(path) == {"a": {"x": 1, "y": 2}, "b": {"x": 3, "y": 2}}


def test_deep_nesting_is_a_one_line_error(tmp_path):
    path = tmp_path / "deep.yaml"
    deep = "[" * 50_000 + "]" * 50_000
    path.write_text("data: {dataset: synthetic, kwargs: {x: " + deep + "}}\n")
    assert "nested deeper than 64 levels at 'data.kwargs.x[0][0]" in _one_line_params_error(path)


def test_messages_never_render_a_huge_value():
    huge = list(range(10**6))
    for d in ({"n": 1, "size": huge}, {"n": 1, "inner": {"k": huge}}, {"n": huge}):
        with pytest.raises(ConfigError) as e:
            build(_Outer, d, "x")
        assert len(str(e.value)) < 200 and str(e.value).endswith("...")
    with pytest.raises(P.ParamsError) as e:  # unknown dataset arguments quote what was given
        P.parse_params({**RAW, "data": {**RAW["data"], "kwargs": {"bogus": huge}}})
    assert len(str(e.value)) < 400 and "data.kwargs has arguments" in str(e.value)
    assert short({"a": [1, (2,), "x" * 500]}, 30) == "{'a': [1, (2,), 'xxxxxxxxxx..."
    assert short({"a": [1, (2,)]}) == repr({"a": [1, (2,)]})


def test_model_kwargs_in_params_are_bounded():
    """Issue #33 item 8: the builders' one bound applies to a params file too (the dry build on
    torch's meta device allocated nothing, so ``width_mult: 1000`` used to pass)."""
    student = {**RAW["student"], "model": {"name": "lraspp_mobilenetv2", "kwargs": {"width_mult": 1000}}}
    with pytest.raises(
        P.ParamsError,
        match=r"^params\.yaml: student\.model\.kwargs: width_mult "
        r"must be <= 2, got 1000$",
    ):
        P.parse_params({**RAW, "student": student})
