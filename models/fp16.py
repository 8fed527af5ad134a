"""The half-precision variant of a detector, for GPUs with fast FP16 arithmetic.

Weights and activations become float16 while the graph's inputs and outputs stay float32,
so the same pre- and post-processing feeds either variant. The conversion is onnxruntime's
own converter (``onnxruntime.transformers.float16``), deterministic for a pinned
onnxruntime, so the result is verified by sha256 like every other manifest entry.
"""

from __future__ import annotations

import onnx


class Fp16Error(ValueError):
    """The graph cannot be converted to half precision."""


def make_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` computing in float16, with float32 inputs and outputs."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        converted = convert_float_to_float16(model, keep_io_types=True)
    except Exception as exc:  # the converter raises plain exceptions of several kinds
        raise Fp16Error(f"cannot convert to float16: {exc}") from exc
    _sort_nodes(converted.graph)
    onnx.checker.check_model(converted)
    out: onnx.ModelProto = converted
    return out


def _sort_nodes(graph: onnx.GraphProto) -> None:
    """Order the nodes so each comes after its inputs' producers (the converter appends the
    input casts at the end, which the ONNX checker refuses)."""
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        rest = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise Fp16Error(f"the graph has a cycle or a dangling input at {rest[0].name!r}")
        pending = rest
    copies = [onnx.NodeProto() for _ in ordered]
    for copy, node in zip(copies, ordered, strict=True):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)


def make_fp16_bytes(data: bytes) -> bytes:
    out: bytes = make_fp16(onnx.load_from_string(data)).SerializeToString()
    return out
