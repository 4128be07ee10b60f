"""ONNX file → linalg-on-tensors MLIR at IREE's `input` phase, before fusion.

The import runs in-process through IREE's ONNX importer so node names survive as MLIR locations
(`loc("/features/features.0/Conv")`), then IREE's pipeline stops at the `input` phase: one plain
entry function of tensors, convs and matmuls still separate. Weights are imported as dense
elements (not dense resources) so the native passes can read them through the C API.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import onnx
from iree.compiler import ir
from iree.compiler.extras import onnx_importer

from ..errors import QuantuneError
from ..io.output import file_sha256
from ..model.graph import ImportedModel, TensorSpec
from ..model.layer import ConvGeometry
from ..model.plan import Rescaling
from . import session as ir_session
from .normalize import flatten_weight_matmuls
from .smooth import apply_rescalings

# Above this many elements a single tensor is refused before anything is allocated.
MAX_TENSOR_ELEMENTS = 1 << 31

IMPORT_FLAGS = ("--iree-torch-emit-async-entry-points=false",)


class _DenseContextCache(onnx_importer.ContextCache):
    """Imports float initializers as DenseElementsAttr, readable through the MLIR C API."""

    def tensor_proto_to_attr(self, tp: onnx.TensorProto) -> ir.Attribute:
        if tp.HasField("raw_data") and tp.data_type in (
            onnx.TensorProto.FLOAT,
            onnx.TensorProto.DOUBLE,
            onnx.TensorProto.FLOAT16,
        ):
            array = onnx.numpy_helper.to_array(tp)
            return ir.DenseElementsAttr.get(
                np.ascontiguousarray(array), type=self.tensor_proto_to_builtin_type(tp)
            )
        return super().tensor_proto_to_attr(tp)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_onnx(path: str) -> onnx.ModelProto:
    """Reads and checks an ONNX file; every failure is one QuantuneError line."""
    if not os.path.exists(path):
        raise QuantuneError(f"{path}: no such file")
    if os.path.isdir(path):
        raise QuantuneError(f"{path}: is a directory, expected an .onnx file")
    if os.path.getsize(path) == 0:
        raise QuantuneError(f"{path}: file is empty, expected an ONNX model")
    try:
        model = onnx.load(path)
    except OSError as exc:
        raise QuantuneError(f"{path}: cannot read the model or its external data ({exc})") from None
    except onnx.checker.ValidationError as exc:  # raised while loading external tensors
        raise QuantuneError(f"{path}: cannot load its external data ({exc})") from None
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise QuantuneError(f"{path}: not an ONNX model ({type(exc).__name__}: {exc})") from None
    if not model.HasField("graph") or len(model.graph.node) == 0:
        raise QuantuneError(f"{path}: not an ONNX model (no graph or no nodes)")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QuantuneError(f"{path}: invalid ONNX model: {first}") from None
    return model


# Copies of the weights alive at the peak of an import (ONNX proto, numpy, MLIR attributes,
# bytecode), a measured bound with margin.
WEIGHT_COPIES = 5


def available_memory() -> int:
    """Bytes of memory available to this process (MemAvailable), or a large number if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def memory_estimate(model: onnx.ModelProto) -> int:
    """Bytes the import and compilation will need at least: the weights several times over."""
    total = 0
    for t in model.graph.initializer:
        count = int(np.prod(t.dims, dtype=np.float64)) if len(t.dims) else 1
        try:
            itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
        except (KeyError, TypeError):
            itemsize = 4
        total += count * itemsize
    return total * WEIGHT_COPIES


def check_memory(model: onnx.ModelProto, path: str, available: int | None = None) -> None:
    need = memory_estimate(model)
    have = available_memory() if available is None else available
    if need > have:
        raise QuantuneError(
            f"{path}: needs about {need / 2**30:.1f} GiB of memory to import, "
            f"{have / 2**30:.1f} GiB is available"
        )


def _dims(name: str, t: onnx.TypeProto) -> list[int | str]:
    if not t.HasField("tensor_type"):
        raise QuantuneError(f"'{name}' is not a tensor; only tensor inputs/outputs are supported")
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in t.tensor_type.shape.dim
    ]


def _is_static(value: onnx.ValueInfoProto) -> bool:
    return all(isinstance(d, int) and d > 0 for d in _dims(value.name, value.type))


def _spec(value: onnx.ValueInfoProto, path: str) -> TensorSpec:
    dims = _dims(value.name, value.type)
    if any(not isinstance(d, int) or d <= 0 for d in dims):
        example = ",".join(str(d) if isinstance(d, int) and d > 0 else f"<{d}>" for d in dims)
        raise QuantuneError(
            f"{path}: '{value.name}' has dynamic shape {dims}; give it a static shape "
            f"(input_shapes, or --input-shape {value.name}={example} with numbers for the <>)",
            file=path,
        )
    if int(np.prod(dims, dtype=np.float64)) > MAX_TENSOR_ELEMENTS:
        raise QuantuneError(
            f"{path}: '{value.name}' has {np.prod(dims, dtype=np.float64):.3g} elements, "
            f"over the limit of {MAX_TENSOR_ELEMENTS}"
        )
    dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
    return TensorSpec(value.name, tuple(int(d) for d in dims), np.dtype(dtype).name)


def _apply_input_shapes(
    model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]], path: str
) -> None:
    inputs = {i.name: i for i in model.graph.input}
    for name, shape in shapes.items():
        if name not in inputs:
            raise QuantuneError(
                f"{path}: an input shape is given for '{name}', which is not an input", file=path
            )
        dims = inputs[name].type.tensor_type.shape.dim
        if len(dims) != len(shape):
            raise QuantuneError(
                f"{path}: input '{name}' has rank {len(dims)}, the shape given has {len(shape)}",
                file=path,
            )
        for d, v in zip(dims, shape, strict=True):
            d.Clear()
            d.dim_value = int(v)


def _default_batch(
    model: onnx.ModelProto, given: Mapping[str, Sequence[int]], path: str
) -> list[str]:
    """Takes an unknown leading (batch) dimension of an input as 1 when no shape was given for
    it and every other dimension is known; returns a note per input so changed."""
    initializers = {t.name for t in model.graph.initializer}
    notes = []
    for value in model.graph.input:
        if value.name in initializers or value.name in given:
            continue
        if not value.type.HasField("tensor_type"):
            continue
        dims = value.type.tensor_type.shape.dim
        known = [d.HasField("dim_value") and d.dim_value > 0 for d in dims]
        if len(dims) >= 2 and not known[0] and all(known[1:]):
            name = dims[0].dim_param or "?"
            dims[0].Clear()
            dims[0].dim_value = 1
            shape = ",".join(str(d.dim_value) for d in dims)
            notes.append(
                f"input '{value.name}': unknown batch dimension '{name}' taken as 1 "
                f"(--input-shape {value.name}={shape} is the same; change it there)"
            )
    return notes


def conv_geometry(node: onnx.NodeProto) -> ConvGeometry | None:
    """A Conv node's window from its attributes (None for auto_pad other than NOTSET, whose
    padding depends on shapes)."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    kernel = attrs.get("kernel_shape")
    rank = len(kernel) if kernel else len(attrs.get("strides", ())) or 2
    return ConvGeometry(
        strides=tuple(int(v) for v in attrs.get("strides", [1] * rank)),
        pads=tuple(int(v) for v in attrs.get("pads", [0] * 2 * rank)),
        dilations=tuple(int(v) for v in attrs.get("dilations", [1] * rank)),
        group=int(attrs.get("group", 1)),
    )


def import_onnx(
    path: str,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    equalization: Sequence[Rescaling] | Callable[[onnx.ModelProto], Sequence[Rescaling]] = (),
) -> ImportedModel:
    """Imports `path` and lowers it to IREE's `input` phase (linalg on tensors, unfused).
    `equalization`: cross-layer equalization and input smoothing applied to the ONNX graph
    first, as these entries (a plan's), or as the function gives them for the graph
    (ir.equalize, ir.smooth)."""
    model = load_onnx(path)
    check_memory(model, path)
    if input_shapes:
        _apply_input_shapes(model, input_shapes, path)
    notes = _default_batch(model, input_shapes or {}, path)
    pairs = tuple(equalization(model) if callable(equalization) else equalization)
    if pairs:
        try:
            model = apply_rescalings(model, pairs)
        except ValueError as exc:
            raise QuantuneError(f"{path}: cannot equalize: {exc}", file=path) from None
    try:
        model, _ = flatten_weight_matmuls(model)
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QuantuneError(f"{path}: ONNX shape inference failed: {first}") from None

    for node in model.graph.node:
        for text in (node.name, node.op_type, *node.input, *node.output):
            if not isinstance(text, str):
                raise QuantuneError(f"{path}: a node has a name that is not valid UTF-8 ({text!r})")
    initializers = {t.name for t in model.graph.initializer}
    inputs = tuple(_spec(i, path) for i in model.graph.input if i.name not in initializers)
    # An output's shape may be unknown to ONNX's inference (a batch size that goes through
    # Shape/Gather/Concat arithmetic) yet static once lowered: taken from the lowered function.
    outputs = [_spec(o, path) if _is_static(o) else None for o in model.graph.output]
    node_ops = {n.name: n.op_type for n in model.graph.node if n.name}
    geometry = {
        n.name: conv_geometry(n) for n in model.graph.node if n.name and n.op_type == "Conv"
    }

    session = ir_session.new_session(IMPORT_FLAGS)
    try:
        info = onnx_importer.ModelInfo(model)
        module = info.create_module(context=session.context).operation
        importer = onnx_importer.NodeImporter.define_function(
            info.main_graph, module, context_cache=_DenseContextCache(session.context)
        )
        importer.import_all()
    except onnx_importer.OnnxImportError as exc:
        raise QuantuneError(f"{path}: ONNX import failed: {_one_line(exc)}") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        # IREE's importer trusts its input; a malformed graph surfaces as one of these.
        raise QuantuneError(
            f"{path}: ONNX import failed on a malformed graph ({type(exc).__name__}: "
            f"{_one_line(exc)})"
        ) from None

    ok, diags, _ = ir_session.run_pipeline(session, module, compile_to="input")
    if not ok:
        node, msg = ir_session.first_error(diags)
        if node:
            op = node_ops.get(node, "?")
            raise QuantuneError(
                f"{path}: cannot lower ONNX node '{node}' (op {op}): {msg}", node=node, file=path
            )
        raise QuantuneError(f"{path}: cannot lower the model to linalg: {msg}")
    bytecode = ir_session.to_bytecode(module)
    if None in outputs:
        outputs = _lowered_outputs(model, outputs, bytecode, session, path)
    return ImportedModel(
        path=path,
        sha256=file_sha256(path),
        bytecode=bytecode,
        inputs=inputs,
        outputs=tuple(o for o in outputs if o is not None),
        node_ops=node_ops,
        function=model.graph.name,
        notes=tuple(notes),
        conv_geometry={k: v for k, v in geometry.items() if v is not None},
        equalization=pairs,
    )


def _lowered_outputs(
    model: onnx.ModelProto,
    outputs: Sequence[TensorSpec | None],
    bytecode: bytes,
    session: ir_session.Session,
    path: str,
) -> list[TensorSpec]:
    """The outputs ONNX left dynamic, shaped from the lowered entry function's result types
    (static when every input is); one still dynamic there is refused as before."""
    try:
        with session.context:
            _, _, lowered = ir_session.entry_function(ir.Module.parse(bytecode))
    except QuantuneError:
        lowered = ()
    done = []
    for i, (value, spec) in enumerate(zip(model.graph.output, outputs, strict=True)):
        if spec is None:
            dims = _dims(value.name, value.type)
            if len(lowered) != len(outputs) or len(lowered[i].shape) != len(dims):
                raise QuantuneError(
                    f"{path}: output '{value.name}' has dynamic shape {dims}, and lowering did "
                    "not make it static; give every input a static shape (--input-shape)",
                    file=path,
                )
            dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
            spec = TensorSpec(value.name, lowered[i].shape, np.dtype(dtype).name)
        done.append(spec)
    return done
