"""The main job end to end on a small model: analysis in two passes, plan, mixed build, files,
reproducibility, and the other targets (cortex-a53 under qemu, Vulkan on lavapipe)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
from conftest import conv_stack_inputs, dispatch_sources, npy_folder
from quantune_iree.backend.engine import Engine
from quantune_iree.backend.runtime import Runner, run_module_cli
from quantune_iree.backend.targets import get_target
from quantune_iree.cli import main
from quantune_iree.errors import QuantuneError
from quantune_iree.ir.apply_plan import apply_plan
from quantune_iree.ir.importer import import_onnx
from quantune_iree.ir.smooth import AUTO_STRENGTHS
from quantune_iree.job import JobOptions, output_paths, run_job
from quantune_iree.model.plan import EqualizedPair, plan_from_json
from targets_env import QEMU, require_lavapipe, require_qemu


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> str:
    return npy_folder(tmp_path_factory.mktemp("calib"), conv_stack_inputs(5, seed=21))


@pytest.fixture(scope="module")
def compiled(conv_stack_path, calib, tmp_path_factory):  # noqa: ANN201
    out = tmp_path_factory.mktemp("out") / "cs.vmfb"
    opts = JobOptions(conv_stack_path, str(out), calib, target=get_target("host"), fp32_layers=2)
    return opts, run_job(opts, build=True)


def test_analysis_runs_exactly_two_inference_passes(compiled) -> None:
    _, result = compiled
    a = result.analysis
    assert a.inference_passes == 2
    # Count the runtime calls themselves: one per calibration sample in each pass.
    assert a.calibration.invocations == a.int8.invocations == a.calibration.samples == 5
    assert result.selection.extra_passes == 0


def test_outputs_and_plan(compiled) -> None:
    opts, result = compiled
    paths = output_paths(opts.output, True)
    assert all(os.path.exists(p) for p in paths.values())
    plan = plan_from_json(open(paths["plan"]).read(), paths["plan"])
    assert [lp.precision for lp in plan.layers].count("fp32") == 2
    assert {lp.rank for lp in plan.layers} == set(range(6))
    fp32_ranks = sorted(lp.rank for lp in plan.fp32_layers)
    assert fp32_ranks == [0, 1]  # the two most sensitive
    assert all(lp.metrics is not None and lp.reason for lp in plan.layers)
    side = json.loads(open(paths["sidecar"]).read())
    assert side["inputs"] == [{"name": "x", "shape": [1, 4, 10, 10], "dtype": "float32"}]
    assert side["outputs"] == [{"name": "y", "shape": [1, 5], "dtype": "float32"}]
    assert side["function"] == "conv_stack" and side["plan"]["summary"]["fp32"] == 2
    assert open(paths["chart"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "| rank | id | node | precision |" in open(paths["report_md"]).read()


def test_fp32_layers_compile_to_float_and_int8_to_integer_dispatches(compiled, tmp_path) -> None:
    opts, result = compiled
    model = import_onnx(opts.model, equalization=result.plan.equalization)
    dispatches = dispatch_sources(apply_plan(model, result.plan), tmp_path)
    kinds = [n.rsplit("_", 1)[-1] for n in dispatches if re.search(r"_(conv|matmul)", n)]
    assert kinds.count("f32") == len(result.plan.fp32_layers) == 2
    assert kinds.count("i8xi8xi32") == len(result.plan.int8_layers) == 4


def test_default_techniques_are_recorded_and_the_equalized_model_is_the_same_function(
    compiled,
) -> None:
    """conv0 → Relu → dwconv1 is equalized and layer inputs smoothed (the probe: 5 samples), the
    FP32 build computes the same function, and the plan and report say what ran."""
    opts, result = compiled
    plan = result.plan
    pairs = [p for p in plan.equalization if isinstance(p, EqualizedPair)]
    assert [(p.first, p.second) for p in pairs] == [("conv0", "dwconv1")]  # pairs first
    assert max(pairs[0].scales) == 1.0 > min(pairs[0].scales) and plan.equalization[0] == pairs[0]
    smoothed = plan.smoothing
    assert smoothed and all(e.strength in AUTO_STRENGTHS for e in smoothed.values())
    c = plan.config
    want = ("percentile", "gptq", "analytic")
    assert (c.calibration, c.weight_rounding, c.bias_correction) == want
    assert all(lp.weight_offsets is not None and lp.bias_correction for lp in plan.int8_layers)
    report = open(output_paths(opts.output, True)["report_md"]).read()
    assert "1 conv pairs equalized before import" in report and "probe run over 5" in report
    assert "3 full inference passes (FP32, INT8, and the equalization probe" in report
    assert "gptq (" in report and "analytic (up to " in report
    assert f"{len(smoothed)} layer inputs smoothed (by each layer's simulated" in report
    assert report.count("| α ") == len(smoothed)
    plain = Engine(import_onnx(opts.model), get_target("host")).load(None)
    eq = Engine(import_onnx(opts.model, equalization=plan.equalization), get_target("host"))
    equalized = eq.load(None)
    for x in conv_stack_inputs(3, seed=4):
        np.testing.assert_allclose(equalized([x])[0], plain([x])[0], rtol=1e-4, atol=1e-5)


def test_reapplying_the_saved_plan_gives_identical_vmfb(compiled, tmp_path) -> None:
    opts, _ = compiled
    again = tmp_path / "again.vmfb"
    run_job(
        replace(opts, output=str(again), calib=None, plan=output_paths(opts.output, True)["plan"]),
        build=True,
    )
    assert again.read_bytes() == open(opts.output, "rb").read()
    assert (tmp_path / "again.plan.json").read_text() == open(
        output_paths(opts.output, True)["plan"]
    ).read()


def test_min_sqnr_search_counts_its_passes(conv_stack_path, calib, tmp_path) -> None:
    opts = JobOptions(
        model=conv_stack_path,
        output=str(tmp_path / "m.vmfb"),
        calib=calib,
        target=get_target("host"),
        min_sqnr=45.0,
    )
    result = run_job(opts, build=False)
    sel = result.selection
    assert 0 < len(sel.fp32) < 6 and sel.output_sqnr_db >= 45.0
    assert 1 <= sel.extra_passes <= 3  # bisection over 6 layers
    assert f"{sel.extra_passes} extra inference passes" in result.summary


def test_cortex_a53_build_runs_under_qemu_and_matches_host(compiled, tmp_path) -> None:
    tool = require_qemu()
    opts, _ = compiled
    plan = output_paths(opts.output, True)["plan"]
    a53 = tmp_path / "a53.vmfb"
    run_job(
        replace(opts, output=str(a53), calib=None, plan=plan, target=get_target(cpu="cortex-a53")),
        build=True,
    )
    side = json.loads((tmp_path / "a53.vmfb.json").read_text())
    assert "--iree-llvmcpu-target-cpu=cortex-a53" in side["target"]["flags"]
    assert "--iree-llvmcpu-target-triple=aarch64-linux-gnu" in side["target"]["flags"]
    x = np.random.default_rng(3).standard_normal((1, 4, 10, 10)).astype(np.float32)
    got = run_module_cli(str(a53), "conv_stack", [x], 1, tool=tool, wrapper=QEMU)[0]
    want = Runner(open(opts.output, "rb").read(), "conv_stack")([x])[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_vulkan_build_runs_on_lavapipe_and_matches_host(compiled, tmp_path) -> None:
    require_lavapipe()
    opts, _ = compiled
    vk = tmp_path / "vk.vmfb"
    run_job(
        replace(
            opts,
            output=str(vk),
            calib=None,
            plan=output_paths(opts.output, True)["plan"],
            target=get_target("vulkan", vulkan_target="llvmpipe"),
        ),
        build=True,
    )
    x = np.random.default_rng(4).standard_normal((1, 4, 10, 10)).astype(np.float32)
    got = run_module_cli(str(vk), "conv_stack", [x], 1, driver="vulkan")[0]
    want = Runner(open(opts.output, "rb").read(), "conv_stack")([x])[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_cli_compile_and_run(conv_stack_path, calib, tmp_path, capsys) -> None:
    out = tmp_path / "c.vmfb"
    rc = main(
        [
            "compile",
            conv_stack_path,
            "--calib",
            calib,
            "--fp32-fraction",
            "0.33",
            "--calibration",
            "mse",
            "-o",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert "plan: 4 int8, 2 fp32 of 6 layers" in capsys.readouterr().out
    assert (
        main(
            [
                "run",
                str(out),
                "--input",
                os.path.join(calib, "00.npy"),
                "-o",
                str(tmp_path / "y.npz"),
            ]
        )
        == 0
    )
    assert "y: float32[1, 5]" in capsys.readouterr().out
    assert np.load(tmp_path / "y.npz")["y"].shape == (1, 5)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--fp32-layers", "1", "--min-sqnr", "30"], "conflict: give one"),
        (["--target", "vulkan", "--target-cpu", "cortex-a53"], "conflict"),
        (["--fp32-fraction", "2"], "must be within [0, 1]"),
        (["--ranker", "oracle"], "invalid choice: 'oracle'"),
        (["--metric-weight", "speed=1"], "unknown metric weight speed"),
        (["--equalization-probe", "0"], "must be at least 1 sample"),
    ],
)
def test_cli_conflicting_or_bad_flags(conv_stack_path, calib, tmp_path, capsys, extra, message):
    out = tmp_path / "c.vmfb"
    rc = main(["compile", conv_stack_path, "--calib", calib, "-o", str(out), *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and "\n" not in err, err
    assert os.listdir(tmp_path) == []


def test_plan_for_another_model_or_malformed(compiled, conv_stack_path, tmp_path, capsys) -> None:
    opts, _ = compiled
    good = json.loads(open(output_paths(opts.output, True)["plan"]).read())
    cases = {
        "sha": (dict(good, model_sha256="ab" * 32), "the plan was made for a model with sha256"),
        "json": ("{not json", "not valid JSON"),
        "layers": (dict(good, layers=good["layers"][:3]), "the plan has 3 layers, the model 6"),
        "precision": (
            dict(good, layers=[dict(good["layers"][0], precision="int4")] + good["layers"][1:]),
            "precision 'int4'",
        ),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        out = tmp_path / f"{name}.vmfb"
        rc = main(["compile", conv_stack_path, "--plan", str(path), "-o", str(out)])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and message in err, (name, err)
        assert not out.exists()


def test_job_refuses_missing_calibration(conv_stack_path, tmp_path) -> None:
    with pytest.raises(QuantuneError, match="calibration data is required"):
        run_job(
            JobOptions(
                model=conv_stack_path, output=str(tmp_path / "x.vmfb"), target=get_target("host")
            ),
            build=True,
        )


def _cli(args: list[str], seed: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONHASHSEED=seed)
    return subprocess.Popen(
        [sys.executable, "-m", "quantune_iree", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_same_inputs_give_identical_plan_and_vmfb_across_hash_seeds(
    conv_stack_path, calib, tmp_path
) -> None:
    outs = []
    for seed in ("0", "12345"):
        out = tmp_path / seed / "m.vmfb"
        out.parent.mkdir()
        proc = _cli(["compile", conv_stack_path, "--calib", calib, "-o", str(out)], seed)
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
        outs.append(out)
    a, b = outs
    assert a.read_bytes() == b.read_bytes()
    assert a.with_suffix(".plan.json").read_text() == b.with_suffix(".plan.json").read_text()


def test_interrupted_compile_leaves_nothing(conv_stack_path, calib, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    proc = _cli(["compile", conv_stack_path, "--calib", calib, "-o", str(out / "m.vmfb")], "0")
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("FP32 pass")  # analysing by now, however busy
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=120)
    err = proc.stderr.read()
    assert rc == 130 and "interrupted; nothing was written" in err, (rc, err)
    assert os.listdir(out) == []  # no output, no temporary file


def test_mobilenet_v2_cortex_a53_runs_under_qemu_and_matches_host(tmp_path) -> None:
    """The README's main command on the real model: the cortex-a53 vmfb, run under qemu, gives
    the host build's logits for a real photo (bit for bit, as measured here)."""
    from conftest import SHARED_EVAL, shared_model

    tool = require_qemu()
    model = shared_model("mobilenet_v2.onnx")
    calib = str(SHARED_EVAL / "images" / "calib")
    a53 = tmp_path / "mnv2.a53.vmfb"
    rc = main(
        [
            "compile",
            model,
            "--calib",
            calib,
            "--calib-limit",
            "8",
            "--fp32-layers",
            "3",
            "--target-cpu",
            "cortex-a53",
            "-o",
            str(a53),
        ]
    )
    assert rc == 0
    # Besides the 3 most sensitive layers, the A53 default keeps the depthwise convs FP32 (17 in
    # MobileNetV2, some of which may be among the 3).
    plan = plan_from_json((tmp_path / "mnv2.a53.plan.json").read_text(), "plan")
    kept = [lp for lp in plan.fp32_layers if "depthwise_conv layers do not pay" in lp.reason]
    assert 14 <= len(kept) <= 17 and len(plan.fp32_layers) == 3 + len(kept)
    host = tmp_path / "mnv2.host.vmfb"
    assert (
        main(["compile", model, "--plan", str(tmp_path / "mnv2.a53.plan.json"), "-o", str(host)])
        == 0
    )
    from quantune_iree.io.dataset import PRESETS, load_image

    x = load_image(str(SHARED_EVAL / "images" / "calib" / "darknet__dog.jpg"), PRESETS["imagenet"])
    got = run_module_cli(str(a53), "main_graph", [x], 1, tool=tool, wrapper=QEMU)[0]
    want = Runner(host.read_bytes(), "main_graph")([x])[0]
    assert got.argmax() == want.argmax()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def mnv2_plans(tmp_path_factory):  # noqa: ANN201
    """The shared MobileNetV2 and its full-INT8 plan from 8 calibration photos."""
    from conftest import SHARED_EVAL, shared_model

    model = shared_model("mobilenet_v2.onnx")
    calib = str(SHARED_EVAL / "images" / "calib")
    out = tmp_path_factory.mktemp("mnv2")
    plans = {}
    for name, k in [("int8", 0)]:
        opts = JobOptions(model, str(out / name), calib=calib, calib_limit=8, fp32_layers=k)
        run_job(replace(opts, preprocess=_imagenet()), build=False)
        plans[name] = plan_from_json((out / f"{name}.plan.json").read_text(), name)
    return import_onnx(model, equalization=plans["int8"].equalization), plans


def _imagenet():  # noqa: ANN202
    from quantune_iree.io.dataset import PRESETS

    return PRESETS["imagenet"]


@pytest.mark.parametrize("vulkan_target", ["valhall4", "ampere", "adreno"])
def test_mobilenet_v2_int8_vulkan_builds_keep_their_sign_extensions(mnv2_plans, vulkan_target):
    """Every int8 layer stores i32 on Vulkan, so the SPIR-V check (run on every Vulkan build)
    finds no byte taken out of a word unsigned; an i8 build would be refused."""
    from quantune_iree.backend.engine import Engine

    model, plans = mnv2_plans
    engine = Engine(model, get_target("vulkan", vulkan_target=vulkan_target))
    assert {f.storage for f in engine.forms(plans["int8"]).values()} == {"i32"}
    assert engine.build(plans["int8"])  # raises QuantuneError on a hit


def test_mobilenet_v2_on_lavapipe_matches_the_host_int8_build(mnv2_plans, tmp_path) -> None:
    """Full INT8 built for llvmpipe and run on lavapipe gives the host INT8 build's logits on
    real photos (same integers; the float epilogues may round apart)."""
    from conftest import SHARED_EVAL
    from quantune_iree.algo.metrics import sqnr
    from quantune_iree.backend.engine import Engine
    from quantune_iree.io.dataset import load_image

    require_lavapipe()
    model, plans = mnv2_plans
    photos = sorted((SHARED_EVAL / "images" / "dev").glob("*.jpg"))[:2]
    xs = [load_image(str(p), _imagenet()) for p in photos]
    for name, plan in plans.items():
        llvmpipe = Engine(model, get_target("vulkan", vulkan_target="llvmpipe"))
        device = llvmpipe.run_vmfb(llvmpipe.build(plan))  # in-process: shaders compiled once
        host = Engine(model, get_target("host", preset="iree")).load(plan)
        for x in xs:
            g = device([x])[0]
            want = host([x])[0]
            assert g.argmax() == want.argmax(), name
            assert sqnr(want, g) >= 100.0, (name, sqnr(want, g))
