"""The web deployment path in a real headless Chromium: kernels/deploy/web.py with ORT Web.

The model is built here as ONNX bytes (protobuf written by hand, field numbers from onnx.proto,
so the test needs no onnx package; when onnx is installed its checker validates the bytes
too): a dense layer with ReLU, an ArgMax (int64 output) and a Gather over an int64 input,
so float32 and int64 cross the WebDriver boundary both ways. Its outputs in the browser must
equal numpy's.

Needs ``scripts/setup_web.sh`` (onnxruntime-web in kernels/deploy/web/node_modules) and
Debian's chromium + chromium-driver: without them the browser test fails, like
tests/test_browser.py; ``FWSURVEY_SKIP_BROWSER=1`` skips it on purpose.
"""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from fwsurvey.kernels.deploy import web

FLOAT, INT64 = 1, 7  # TensorProto.DataType


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _bytes(field: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _tensor(name: str, array: np.ndarray) -> bytes:  # TensorProto
    kind = {np.dtype("float32"): FLOAT, np.dtype("int64"): INT64}[array.dtype]
    return (b"".join(_int(1, d) for d in array.shape) + _int(2, kind) + _bytes(8, name)
            + _bytes(9, array.astype(array.dtype.newbyteorder("<")).tobytes()))


def _value_info(name: str, kind: int, dims: list[int | str]) -> bytes:  # ValueInfoProto
    shape = b"".join(_bytes(1, _int(1, d) if isinstance(d, int) else _bytes(2, d))
                     for d in dims)
    return _bytes(1, name) + _bytes(2, _bytes(1, _int(1, kind) + _bytes(2, shape)))


def _node(op: str, inputs: list[str], outputs: list[str], **ints: int) -> bytes:  # NodeProto
    attrs = b"".join(_bytes(5, _bytes(1, k) + _int(3, v) + _int(20, 2))  # type INT
                     for k, v in ints.items())
    return (b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs)
            + _bytes(4, op) + attrs)


def tiny_model(w: np.ndarray, b: np.ndarray, table: np.ndarray) -> bytes:
    """ONNX ModelProto: y = Relu(x @ w + b), cls = ArgMax(x @ w + b), emb = table[idx]."""
    graph = b"".join([
        _bytes(1, _node("MatMul", ["x", "w"], ["xw"])),
        _bytes(1, _node("Add", ["xw", "b"], ["z"])),
        _bytes(1, _node("Relu", ["z"], ["y"])),
        _bytes(1, _node("ArgMax", ["z"], ["cls"], axis=1, keepdims=0)),
        _bytes(1, _node("Gather", ["table", "idx"], ["emb"], axis=0)),
        _bytes(2, "tiny"),
        _bytes(5, _tensor("w", w)), _bytes(5, _tensor("b", b)),
        _bytes(5, _tensor("table", table)),
        _bytes(11, _value_info("x", FLOAT, ["N", w.shape[0]])),
        _bytes(11, _value_info("idx", INT64, ["N"])),
        _bytes(12, _value_info("y", FLOAT, ["N", w.shape[1]])),
        _bytes(12, _value_info("cls", INT64, ["N"])),
        _bytes(12, _value_info("emb", FLOAT, ["N", table.shape[1]])),
    ])
    opset = _bytes(1, "") + _int(2, 17)
    return _int(1, 8) + _bytes(2, "fwsurvey-test") + _bytes(7, graph) + _bytes(8, opset)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(14)
    w = rng.standard_normal((6, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    table = rng.standard_normal((10, 3)).astype(np.float32)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    idx = np.array([3, 0, 9, 3, 7], dtype=np.int64)
    path = tmp_path_factory.mktemp("web") / "tiny.onnx"
    path.write_bytes(tiny_model(w, b, table))
    try:
        import onnx
    except ImportError:
        pass
    else:
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    z = x @ w + b
    expected = [np.maximum(z, 0), z.argmax(axis=1).astype(np.int64), table[idx]]
    return path, {"x": x, "idx": idx}, expected


@pytest.mark.browser
def test_ort_web_in_chromium_matches_numpy(model, tmp_path):
    if os.environ.get("FWSURVEY_SKIP_BROWSER") == "1":
        pytest.skip("FWSURVEY_SKIP_BROWSER=1")
    path, inputs, expected = model
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x08not an onnx model")
    # One browser for all three: the good model, a missing file, bytes ORT cannot parse.
    good, missing, bad = web.run_onnx_many(
        [(path, inputs), (tmp_path / "absent.onnx", inputs), (corrupt, inputs)], repeats=4)

    assert good.error is None, good.error
    assert good.output_names == ["y", "cls", "emb"]
    assert [o.dtype for o in good.outputs] == [np.float32, np.int64, np.float32]
    for got, want in zip(good.outputs, expected, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert np.array_equal(good.outputs[1], expected[1])
    assert len(good.latency_ms) == 4 and all(t >= 0 for t in good.latency_ms)
    assert good.session_ms is not None and good.first_run_ms is not None
    assert good.browser_start_ms is not None and good.browser_start_ms > 0
    assert good.runtime_init_ms is not None and good.runtime_init_ms > 0
    assert good.versions["onnxruntime-web"] == good.versions["onnxruntime-web(page)"] == "1.30.0"
    assert good.versions["chromium"].split(".")[0].isdigit()
    assert good.versions["execution_provider"] == "wasm"

    assert missing.outputs is None and missing.error.startswith("model not found:")
    assert bad.outputs is None and bad.error.startswith("session:"), bad.error
    assert not bad.latency_ms
    # The local server's thread is stopped on the way out.
    assert not [t for t in threading.enumerate() if t.name == "fwsurvey-web"]


def test_missing_node_modules_is_unavailable_not_a_raise(model, tmp_path):
    path, inputs, _ = model
    run = web.run_onnx(path, inputs, node_modules=tmp_path / "node_modules")
    assert run.outputs is None and run.latency_ms == []
    assert run.error.startswith("unavailable: onnxruntime-web is missing"), run.error
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / ".setup-failed").write_text("npm ci failed: ENOTFOUND\n")
    run = web.run_onnx(path, inputs, node_modules=tmp_path / "node_modules")
    assert "npm ci failed: ENOTFOUND" in run.error


def test_float_bytes_survive_the_round_trip():
    # What crosses the WebDriver boundary: raw little-endian bytes, not JSON numbers.
    values = np.array([[1.0000001, -0.0, 3.4e38], [1e-45, np.pi, -2.5]], dtype=np.float32)
    back = web._decode(web._encode(values))
    assert back.dtype == np.float32 and back.shape == (2, 3)
    assert back.tobytes() == values.tobytes()
    big = np.array([2**62 + 1, -(2**40)], dtype=np.int64)
    assert web._decode(web._encode(big)).tolist() == big.tolist()
    assert struct.unpack("<f", bytes(web._decode(web._encode(values))[0, :1].data))[0] \
        == np.float32(1.0000001)
