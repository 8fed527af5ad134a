"""Make a fixed-batch ONNX detector accept any batch size.

Ultralytics exports with ``dynamic=False`` bake the batch size 1 into the graph's input
and output shapes and into the shape constants of its Reshape nodes. Reshape treats a 0
in its target shape as "copy this dimension from the input" (with ``allowzero`` unset),
so rewriting the leading 1 of those constants to 0 and naming the batch dimension makes
the same weights run on a batch of N images in one call.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

BATCH_DIM = "batch"


class TransformError(ValueError):
    """The graph does not have the shape this transform expects."""


def _reshape_shape_inputs(graph: onnx.GraphProto) -> set[str]:
    names: set[str] = set()
    for node in graph.node:
        if node.op_type == "Reshape":
            allowzero = next((a.i for a in node.attribute if a.name == "allowzero"), 0)
            if allowzero:
                raise TransformError(f"Reshape {node.name!r} sets allowzero; cannot rewrite")
            names.add(node.input[1])
    return names


def make_batch_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose first input and output dimension is symbolic."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    shape_inputs = _reshape_shape_inputs(graph)
    rewritten = 0
    for init in graph.initializer:
        if init.name in shape_inputs:
            shape = numpy_helper.to_array(init).copy()
            if shape.ndim == 1 and shape.size > 1 and shape[0] == 1:
                shape[0] = 0
                init.CopyFrom(numpy_helper.from_array(shape.astype(np.int64), init.name))
                rewritten += 1
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] in shape_inputs:
            for attr in node.attribute:
                if attr.name == "value":
                    shape = numpy_helper.to_array(attr.t).copy()
                    if shape.ndim == 1 and shape.size > 1 and shape[0] == 1:
                        shape[0] = 0
                        attr.t.CopyFrom(numpy_helper.from_array(shape.astype(np.int64)))
                        rewritten += 1
    for value in [*graph.input, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if not dims:
            raise TransformError(f"{value.name!r} has no shape")
        if dims[0].HasField("dim_value") and dims[0].dim_value != 1:
            raise TransformError(f"{value.name!r} has batch {dims[0].dim_value}, expected 1")
        dims[0].Clear()
        dims[0].dim_param = BATCH_DIM
    # Intermediate shapes recorded for batch 1 would now be wrong; let the runtime infer them.
    del graph.value_info[:]
    for prop in out.metadata_props:
        if prop.key == "batch":
            prop.value = "-1"
    onnx.checker.check_model(out)
    if rewritten == 0 and shape_inputs:
        raise TransformError("no Reshape shape constant with a leading 1 was found")
    return out


def make_batch_dynamic_bytes(data: bytes) -> bytes:
    out: bytes = make_batch_dynamic(onnx.load_from_string(data)).SerializeToString()
    return out
