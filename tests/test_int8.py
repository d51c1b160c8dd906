"""INT8 builds: float edge nodes (ORT recipe), NNCF INT8 for OpenVINO (skipped without openvino/nncf)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rdd.export.quantize import float_edge_nodes, quantize_int8


def _chain_model(with_output_resize=True):
    """image → Sub → Div → Conv(stem) → Relu → Conv(body) → Resize(up) → ArgMax → labels."""
    from onnx import TensorProto, helper, numpy_helper

    inits = [
        numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w0"),
        numpy_helper.from_array(np.zeros((2, 4, 1, 1), np.float32), "w1"),
        numpy_helper.from_array(np.ones(1, np.float32), "c"),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
    ]
    nodes = [
        helper.make_node("Sub", ["image", "c"], ["s"], name="sub"),
        helper.make_node("Div", ["s", "c"], ["d"], name="div"),
        helper.make_node("Conv", ["d", "w0"], ["a"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "w1"], ["b"], name="body"),
        helper.make_node("Resize", ["b", "", "scales"], ["up"], name="up", mode="linear"),
        helper.make_node("ArgMax", ["up" if with_output_resize else "b"], ["labels"], name="argmax", axis=1),
    ]
    if not with_output_resize:
        nodes.insert(-1, helper.make_node("Identity", ["up"], ["unused"], name="id"))
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("labels", TensorProto.INT64, None)],
        initializer=inits,
    )
    return helper.make_model(g)


def test_float_edge_nodes_golden():
    m = _chain_model()
    assert float_edge_nodes(m) == ["stem", "up"]
    assert float_edge_nodes(m, ["output_resize"]) == ["up"]
    assert float_edge_nodes(_chain_model(with_output_resize=False)) == ["stem"]  # Resize not at the end
    with pytest.raises(ValueError, match="keep_float: unknown entries"):
        float_edge_nodes(m, ["softmax"])


def test_quantize_keep_float_leaves_stem_and_logits_float(tmp_path, tiny_onnx):
    import onnx

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(2)]
    info = quantize_int8(
        tiny_onnx,
        tmp_path / "q.onnx",
        calib_frames=frames,
        calib_limit=None,
        reduce_range=False,
        keep_float=("input_conv", "output_resize"),
    )
    assert len(info["float_nodes"]) == 2 and info["keep_float"] == ["input_conv", "output_resize"]
    g = onnx.load(info["path"]).graph
    by_name = {n.name: n for n in g.node}
    producer = {o: n for n in g.node for o in n.output}
    stem, resize = (by_name[n] for n in info["float_nodes"])
    assert stem.op_type == "Conv" and resize.op_type == "Resize"
    assert producer["logits"] is resize  # logits not dequantised from uint8
    w = stem.input[1]
    assert w in {i.name for i in g.initializer} and w not in producer  # float weight, no DQ
    plain = quantize_int8(
        tiny_onnx, tmp_path / "p.onnx", calib_frames=frames, calib_limit=None, reduce_range=False
    )
    assert plain["float_nodes"] == []
    assert producer["logits"].op_type != "DequantizeLinear"
    assert {o: n for n in onnx.load(plain["path"]).graph.node for o in n.output}[
        "logits"
    ].op_type == "DequantizeLinear"


def test_openvino_nncf_int8_ir(tmp_path, tiny_onnx):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    import openvino as ov

    from rdd.export.openvino import openvino_edge_names, quantize_openvino
    from rdd.runtime import OrtBackend, open_build, preprocess
    from rdd.runtime.backends import discover_builds

    names = openvino_edge_names(ov.Core().read_model(str(tiny_onnx)))
    assert len(names) == 2 and names[0].endswith("/Conv/WithoutBiases") and names[1] == "logits"
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(3)]
    info = quantize_openvino(tiny_onnx, tmp_path / "m_int8.xml", calib_frames=frames, calib_limit=None)
    assert info["calib_frames"] == 3 and info["float_nodes"] == names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m_int8.bin", "m_int8.xml"]
    assert "FakeQuantize" in (tmp_path / "m_int8.xml").read_text()
    be = open_build(tmp_path / "m_int8.xml")
    ref = OrtBackend(tiny_onnx)
    assert be.name == "openvino" and be.meta == ref.meta
    assert discover_builds([tmp_path / "m_int8.xml"])[0].precision == "int8"
    x = preprocess(frames[0], be.meta, (48, 64))
    assert be.infer(x).shape == (1, 48, 64)
    assert np.abs(be.forward(x) - ref.forward(x)).max() < 1.0  # close to FP32, not equal
    with pytest.raises(ValueError, match="preset must be one of"):
        quantize_openvino(tiny_onnx, tmp_path / "x.xml", calib_frames=frames, preset="fast")
    assert json.loads(json.dumps(info))["preset"] == "performance"


def test_tensorrt_qdq_graph_is_symmetric_int8(tmp_path, tiny_onnx):
    """The Q/DQ graph the export stage hands TensorRT: signed INT8, zero point 0 (explicit
    quantisation); the onnxruntime default graph (uint8, asymmetric) is refused by name."""
    from rdd.export.tensorrt import TRT_QDQ_OPTIONS, check_trt_qdq, onnx_is_qdq

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(2)]
    sym = quantize_int8(
        tiny_onnx,
        tmp_path / "sym.onnx",
        calib_frames=frames,
        calib_limit=None,
        keep_float=("input_conv", "output_resize"),
        **TRT_QDQ_OPTIONS,
    )
    assert onnx_is_qdq(sym["path"]) and not onnx_is_qdq(tiny_onnx)
    check_trt_qdq(sym["path"])  # passes
    asym = quantize_int8(tiny_onnx, tmp_path / "asym.onnx", calib_frames=frames, calib_limit=None)
    with pytest.raises(ValueError, match=r"asym.onnx: node .* quantises to uint8 .*symmetric int8"):
        check_trt_qdq(asym["path"])
