"""The quantize pass: real integer compute, bit-exact against a numpy model of it."""

from __future__ import annotations

import re
from dataclasses import replace

import models
import numpy as np
import onnx
import pytest
from conftest import dispatch_sources
from int_reference import conv2d_nchw, dequantize
from onnx import numpy_helper
from quantune_iree.algo.quantization import quantize_activation, quantize_weight, weight_scales
from quantune_iree.backend.compile import compile_vmfb
from quantune_iree.backend.engine import Engine
from quantune_iree.backend.runtime import Runner
from quantune_iree.backend.targets import get_target
from quantune_iree.errors import QuantuneError
from quantune_iree.ir.apply_plan import apply_plan
from quantune_iree.ir.importer import import_onnx
from quantune_iree.ir.layers import layer_table
from quantune_iree.model.plan import ActivationQuant, LayerPlan, Plan, QuantConfig
from quantune_iree.model.target import IntegerForm

KINDS = ["conv", "conv_s1", "depthwise", "grouped", "gemm", "matmul"]


def _fixed_plan(model, act: ActivationQuant, per_channel: bool = True) -> Plan:
    layers = layer_table(model)
    return Plan(
        model.sha256,
        QuantConfig(),
        tuple(
            LayerPlan(
                lay.id,
                lay.node,
                "int8",
                act,
                tuple(
                    float(s)
                    for s in weight_scales(lay.weight, lay.weight_channel_dims, per_channel)
                ),
            )
            for lay in layers
        ),
    )


def _reference(
    kind: str, onnx_model: onnx.ModelProto, x: np.ndarray, act: ActivationQuant, scales: np.ndarray
) -> np.ndarray:
    inits = {t.name: numpy_helper.to_array(t) for t in onnx_model.graph.initializer}
    w = inits["w"]
    xq = quantize_activation(x, act).astype(np.int64) - act.zero_point  # padding is then 0
    if kind in ("conv", "conv_s1", "depthwise", "grouped"):
        node = onnx_model.graph.node[0]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        groups, stride = attrs.get("group", 1), attrs["strides"][0]
        wq = quantize_weight(w, scales, (0,)).astype(np.int64)
        xp = np.pad(xq, ((0, 0), (0, 0), (1, 1), (1, 1)))
        acc = conv2d_nchw(xp, wq, stride, groups)
        return dequantize(acc, np.float32(act.scale) * scales, 1, inits["b"])
    wk = w.T if kind == "gemm" else w  # the op consumes K x N
    wq = quantize_weight(wk, scales, (1,)).astype(np.int64)
    return dequantize(xq @ wq, np.float32(act.scale) * scales, 1, inits.get("b"))


# Every integer form computes the same numbers: each is held to the numpy model bit for bit.
FORMS = {
    "named-i8-div": IntegerForm(),
    "channels_last-i8": IntegerForm("i8", "channels_last", True),
    "channels_last-i16": IntegerForm("i16", "channels_last", True),
    "channels_last-u8": IntegerForm("u8", "channels_last", True),
    "im2col-u8": IntegerForm("u8", "im2col", True),
    "im2col-i16": IntegerForm("i16", "im2col", True),
    "named-i32-div": IntegerForm("i32"),  # Vulkan's
    "channels_last-i32": IntegerForm("i32", "channels_last", True),
}


def _inputs(shape: tuple[int, ...], act: ActivationQuant) -> list[np.ndarray]:
    """Random values (some clamp) and values on the rounding boundaries, (k + 1/2) * scale."""
    rng = np.random.default_rng(7)
    xs = [(rng.standard_normal(shape) * 1.5).astype(np.float32) for _ in range(2)]
    k = rng.integers(-140, 140, size=shape)
    half = np.float32(act.scale) * (k + np.float32(0.5)).astype(np.float32)
    xs.append(np.nextafter(half, half + rng.choice([-1, 0, 1], size=shape)).astype(np.float32))
    return xs


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("act", [ActivationQuant(0.02, 0), ActivationQuant(0.015, -7)])
def test_integer_layer_is_bit_exact(kind: str, act: ActivationQuant, form: str, tmp_path) -> None:
    onnx_model = models.single_layer(kind)
    path = str(tmp_path / f"{kind}.onnx")
    onnx.save(onnx_model, path)
    model = import_onnx(path)
    plan = _fixed_plan(model, act)
    chosen = FORMS[form]
    if kind == "grouped" and chosen.contraction != "named":
        pytest.skip("grouped convs have the named form only")
    if kind in ("gemm", "matmul") and chosen.storage == "u8":
        chosen = IntegerForm("i8", "named", True)  # u8 needs channels-last: see the refusal test
    vmfb = compile_vmfb(apply_plan(model, plan, {0: chosen}), get_target("host", preset="iree"))
    runner = Runner(vmfb, kind)
    scales = np.asarray(plan.layers[0].weight_scales, np.float32)
    for x in _inputs(model.inputs[0].shape, act):
        got = runner([x])[0]
        want = _reference(kind, onnx_model, x, act, scales)
        assert got.shape == want.shape
        assert np.array_equal(got, want), f"max diff {np.abs(got - want).max()}"


@pytest.mark.parametrize("target", ["host", "cortex-a53"])
def test_each_targets_speed_forms_give_the_iree_forms_numbers(conv_stack_model, target) -> None:
    """The conv stack, all int8, in the target's speed forms (and float relayout) compiled for
    the host: the same outputs as the plain named form."""
    plan = _fixed_plan(conv_stack_model, ActivationQuant(0.03, 5))
    speed = get_target("host") if target == "host" else get_target(cpu="cortex-a53")
    forms = Engine(conv_stack_model, speed).forms(plan)
    assert {f.contraction for f in forms.values()} >= {"named", "channels_last"}
    host = get_target("host", preset="iree")
    plain = Runner(compile_vmfb(apply_plan(conv_stack_model, plan), host), "conv_stack")
    fast = Runner(compile_vmfb(apply_plan(conv_stack_model, plan, forms), host), "conv_stack")
    for x in _inputs((1, 4, 10, 10), ActivationQuant(0.03, 5)):
        np.testing.assert_array_equal(fast([x])[0], plain([x])[0])


def test_weights_match_python_quantization(tmp_path) -> None:
    """The pass's i8 weights are exactly quantize_weight(): read them back from the IR."""
    onnx_model = models.single_layer("grouped")
    path = str(tmp_path / "g.onnx")
    onnx.save(onnx_model, path)
    model = import_onnx(path)
    plan = _fixed_plan(model, ActivationQuant(0.1, 0))
    from quantune_iree.ir import session as ir_session

    module = ir_session.parse_module(ir_session.new_session(), apply_plan(model, plan))
    consts = [
        op
        for op in module.body.operations[0].regions[0].blocks[0].operations
        if op.operation.name == "arith.constant"
        and "xi8>" in str(op.operation.results[0].type)
        and len(op.operation.results[0].type.shape) == 5
    ]
    assert len(consts) == 1
    got = np.array(consts[0].operation.attributes["value"])
    lay = layer_table(model)[0]
    scales = np.asarray(plan.layers[0].weight_scales, np.float32)
    np.testing.assert_array_equal(got, quantize_weight(lay.weight, scales, lay.weight_channel_dims))


def test_compiled_dispatches_are_integer(conv_stack_model, tmp_path) -> None:
    """After the pass, every conv/matmul dispatch consumes i8 and accumulates in i32."""
    plan = _fixed_plan(conv_stack_model, ActivationQuant(0.05, 3))
    fp32 = dispatch_sources(conv_stack_model.bytecode, tmp_path / "fp32")
    int8 = dispatch_sources(apply_plan(conv_stack_model, plan), tmp_path / "int8")

    def contractions(dispatches: dict[str, str]) -> dict[str, str]:
        return {n: t for n, t in dispatches.items() if re.search(r"_(conv|matmul)", n)}

    assert contractions(fp32) and all(n.endswith("_f32") for n in contractions(fp32))
    assert len(contractions(int8)) == len(contractions(fp32)), list(int8)
    # The contraction: a named conv/matmul, or the generic with reduction loops it becomes.
    contraction = re.compile(
        r"(?:linalg\.(?:conv|depthwise_conv|matmul)\w*|linalg\.generic .*\"reduction\".*) "
        r".*?ins\(.*: (tensor<.*>)\) outs\(.*: (tensor<.*>)\)"
    )
    for name, text in contractions(int8).items():
        assert name.endswith("_i8xi8xi32"), name
        ops = [contraction.search(line) for line in text.splitlines()]
        ops = [m.groups() for m in ops if m]
        assert ops, name
        for ins, out in ops:  # both operands i8, accumulator i32: no f32 fake quantization
            assert re.fullmatch(r"tensor<[0-9x]+xi8>, tensor<[0-9x]+xi8>", ins), (name, ins)
            assert re.fullmatch(r"tensor<[0-9x]+xi32>", out), (name, out)


def test_fp32_layers_are_left_alone(conv_stack_model) -> None:
    plan = _fixed_plan(conv_stack_model, ActivationQuant(0.05, 0))
    layers = list(plan.layers)
    layers[1] = LayerPlan(1, layers[1].node, "fp32", reason="test")
    from dataclasses import replace

    from quantune_iree.ir import native
    from quantune_iree.ir import session as ir_session

    bc = apply_plan(conv_stack_model, replace(plan, layers=tuple(layers)))
    table = native.layer_table(ir_session.parse_module(ir_session.new_session(), bc))
    assert [lay.precision for lay in table] == ["int8", "fp32", "int8", "int8", "int8", "int8"]
    assert [lay.node for lay in table] == [lay.node for lay in layer_table(conv_stack_model)]


def test_plan_for_another_model_is_refused(conv_stack_model) -> None:
    plan = _fixed_plan(conv_stack_model, ActivationQuant(0.05, 0))
    from dataclasses import replace

    with pytest.raises(QuantuneError, match="the plan was made for a model with sha256"):
        apply_plan(conv_stack_model, replace(plan, model_sha256="0" * 64))


@pytest.mark.parametrize(
    "act, scales, message",
    [
        (ActivationQuant(0.0, 0), (0.1,), "activation scale must be positive"),
        (ActivationQuant(0.1, 300), (0.1,), "zero point outside"),
        (ActivationQuant(0.1, 0), (0.1, 0.2), "2 weight scales for 6 output channels"),
        (ActivationQuant(0.1, 0), (-1.0,), "weight scales must be positive"),
    ],
)
def test_bad_quantization_parameters(conv_stack_model, act, scales, message) -> None:
    plan = Plan(
        conv_stack_model.sha256, QuantConfig(), (LayerPlan(3, "conv3", "int8", act, scales),)
    )
    with pytest.raises(QuantuneError, match=message):
        apply_plan(conv_stack_model, plan)


@pytest.mark.parametrize("form", ["named-i8-div", "im2col-i16"])
@pytest.mark.parametrize("kind", KINDS)
def test_bias_correction_and_rounding_offsets_are_bit_exact(kind: str, form: str, tmp_path) -> None:
    """A plan's per-channel bias correction joins the int32 bias and its rounding offsets the
    round-to-nearest codes: the compiled layer still equals the numpy model bit for bit."""
    onnx_model = models.single_layer(kind)
    path = str(tmp_path / f"{kind}.onnx")
    onnx.save(onnx_model, path)
    model = import_onnx(path)
    act = ActivationQuant(0.015, -7)
    base = _fixed_plan(model, act)
    lay = layer_table(model)[0]
    rng = np.random.default_rng(3)
    offsets = rng.integers(-2, 3, size=lay.weight.shape).astype(np.int8)
    channels = len(base.layers[0].weight_scales)
    correction = tuple(float(c) for c in rng.normal(0, 0.3, channels).astype(np.float32))
    plan = Plan(
        base.model_sha256,
        base.config,
        (replace(base.layers[0], bias_correction=correction, weight_offsets=offsets),),
    )
    chosen = FORMS[form]
    if kind == "grouped" and chosen.contraction != "named":
        pytest.skip("grouped convs have the named form only")
    vmfb = compile_vmfb(apply_plan(model, plan, {0: chosen}), get_target("host", preset="iree"))
    runner = Runner(vmfb, kind)
    scales = np.asarray(plan.layers[0].weight_scales, np.float32)
    inits = {t.name: numpy_helper.to_array(t) for t in onnx_model.graph.initializer}
    bias = np.float32(inits["b"]) if "b" in inits else np.zeros(channels, np.float32)
    corrected_bias = (bias + np.asarray(correction, np.float32)).astype(np.float32)
    wq = quantize_weight(lay.weight, scales, lay.weight_channel_dims, offsets).astype(np.int64)
    for x in _inputs(model.inputs[0].shape, act):
        xq = quantize_activation(x, act).astype(np.int64) - act.zero_point
        if kind in ("gemm", "matmul"):
            acc = xq @ wq
        else:
            node = onnx_model.graph.node[0]
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            w_onnx = wq.reshape(inits["w"].shape)
            xp = np.pad(xq, ((0, 0), (0, 0), (1, 1), (1, 1)))
            acc = conv2d_nchw(xp, w_onnx, attrs["strides"][0], attrs.get("group", 1))
        want = dequantize(acc, np.float32(act.scale) * scales, 1, corrected_bias)
        np.testing.assert_array_equal(runner([x])[0], want)


def test_offsets_and_corrections_of_the_wrong_size_are_refused(conv_stack_model) -> None:
    base = _fixed_plan(conv_stack_model, ActivationQuant(0.03, 0))
    for change, message in (
        ({"bias_correction": (0.1,) * 3}, "3 bias corrections for"),
        ({"weight_offsets": np.zeros(5, np.int8)}, "5 weight offsets for"),
    ):
        plan = replace(base, layers=(replace(base.layers[0], **change), *base.layers[1:]))
        with pytest.raises(QuantuneError, match=message):
            apply_plan(conv_stack_model, plan)
