"""The `speed` preset (the CPU default): integer layers on IREE's microkernels, the same numbers
as the plain iree-preset build, integer multiply-accumulates in the cortex-a53 assembly, and the
objectives that time layer kinds on this host."""

from __future__ import annotations

import glob
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import conv_stack_inputs, npy_folder
from quantune_iree.backend.runtime import Runner, run_module_cli
from quantune_iree.backend.targets import WORKER_STACK_FLAG, get_target
from quantune_iree.cli import main
from quantune_iree.job import JobOptions, output_paths, run_job
from targets_env import QEMU, require_qemu


@pytest.fixture(scope="module")
def int8_job(conv_stack_path, tmp_path_factory):  # noqa: ANN201
    """A full-INT8 plan of the conv stack, built for the host with IREE's flags and the plain
    integer form (the iree preset)."""
    calib = npy_folder(tmp_path_factory.mktemp("calib"), conv_stack_inputs(4, seed=5))
    out = tmp_path_factory.mktemp("out") / "int8.vmfb"
    opts = JobOptions(
        model=conv_stack_path,
        output=str(out),
        calib=calib,
        target=get_target("host", preset="iree"),
        fp32_layers=0,
        fp32_fraction=None,
    )
    run_job(opts, build=True)
    return replace(opts, calib=None, plan=output_paths(str(out), True)["plan"])


def _build(opts: JobOptions, path, target) -> bytes:  # noqa: ANN001
    run_job(replace(opts, output=str(path), target=target), build=True)
    return path.read_bytes()


def _asm(dump_dir) -> str:  # noqa: ANN001
    files = glob.glob(str(dump_dir / "*.s"))
    assert files, f"no assembly dumped in {dump_dir}"
    return "\n".join(open(f).read() for f in files)


def _inputs() -> list[np.ndarray]:
    return conv_stack_inputs(3, seed=99)


def test_speed_preset_int8_build_equals_the_iree_preset_bit_for_bit(int8_job, tmp_path) -> None:
    dump = tmp_path / "dump"
    flags = [f"--iree-hal-dump-executable-intermediates-to={dump}"]
    fast = _build(int8_job, tmp_path / "fast.vmfb", get_target("host", flags, preset="speed"))
    side = json.loads((tmp_path / "fast.vmfb.json").read_text())
    assert side["target"]["preset"] == "speed"
    assert side["target"]["runtime_flags"] == [WORKER_STACK_FLAG]
    vnni = re.search(r"\b(?:avx512_vnni|avx_vnni)\b", open("/proc/cpuinfo").read())
    if vnni:
        # u8 activations x s8 weights on IREE's inner-tiled VNNI kernel: vpdpbusd, u8 x s8 in
        # one instruction (s8 x s8 only reaches vpdpwssd on 16-bit operands).
        assert "--iree-llvmcpu-enable-inner-tiled" in side["target"]["flags"]
        pattern = r"\bvpdpbusd\b"
    else:  # IREE's s8s8s32 mmt4d microkernel: 16-bit pair multiply-adds.
        assert "--iree-opt-data-tiling" in side["target"]["flags"]
        pattern = r"\b(?:vpdpwssd|vpmaddwd)\b"
    assert re.search(pattern, _asm(dump)), f"no {pattern} in the speed build"
    plain = Runner(open(int8_job.output, "rb").read(), "conv_stack")
    speed = Runner(fast, "conv_stack")
    for x in _inputs():
        np.testing.assert_array_equal(speed([x])[0], plain([x])[0])


@pytest.mark.parametrize("preset", ["iree", "speed"])
def test_cortex_a53_int8_uses_integer_multiply_accumulate(int8_job, tmp_path, preset) -> None:
    """Cortex-A53 has no dot-product instructions: int8 MACs must be smlal/smlal2 (widening
    multiply-accumulate), and an FP32 build of the same model has none."""
    counts = {}
    for name, fp32 in [("int8", 0), ("fp32", 6)]:
        dump = tmp_path / f"{name}_dump"
        flags = [f"--iree-hal-dump-executable-intermediates-to={dump}"]
        target = get_target(cpu="cortex-a53", extra_flags=flags, preset=preset)
        opts = int8_job if fp32 == 0 else replace(int8_job, plan=None, fp32_layers=fp32)
        if fp32:
            opts = replace(opts, calib=npy_folder(tmp_path / "c", conv_stack_inputs(2, 1)))
        _build(opts, tmp_path / f"{name}.vmfb", target)
        asm = _asm(dump)
        counts[name] = len(re.findall(r"\b(?:smlal2?|sdot)\b", asm))
    assert counts["int8"] > 0, "no smlal/sdot in the int8 cortex-a53 assembly"
    assert counts["fp32"] == 0, counts


def test_cortex_a53_speed_build_runs_under_qemu_bit_identical_to_host(int8_job, tmp_path):
    tool = require_qemu()
    a53 = tmp_path / "a53.vmfb"
    _build(int8_job, a53, get_target(cpu="cortex-a53", preset="speed"))
    host = Runner(
        _build(int8_job, tmp_path / "h.vmfb", get_target("host", preset="speed")), "conv_stack"
    )
    for x in _inputs():
        got = run_module_cli(str(a53), "conv_stack", [x], 1, tool=tool, wrapper=QEMU)[0]
        np.testing.assert_array_equal(got, host([x])[0])


def test_speed_preset_is_refused_for_vulkan(conv_stack_path, tmp_path, capsys) -> None:
    out = tmp_path / "v.vmfb"
    rc = main(
        [
            "compile",
            conv_stack_path,
            "--calib",
            npy_folder(tmp_path / "c", _inputs()),
            "--target",
            "vulkan",
            "--preset",
            "speed",
            "-o",
            str(out),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "speed" in err[0]
    assert not out.exists()


@pytest.mark.parametrize("objective", ["balanced", "speed"])
def test_objective_measures_kinds_and_keeps_slow_ones_fp32(int8_job, tmp_path, objective):
    calib = npy_folder(tmp_path / "c", conv_stack_inputs(3, seed=8))
    out = tmp_path / "o.vmfb"
    opts = replace(
        int8_job, plan=None, calib=calib, output=str(out), fp32_layers=1, objective=objective
    )
    result = run_job(opts, build=True)
    kinds = {s.kind: s for s in result.kind_speeds}
    assert "all" in kinds and "conv" in kinds and "depthwise_conv" in kinds
    assert result.latency is not None and min(result.latency) > 0
    assert "latency on this host" in result.summary and "speed by layer kind" in result.summary
    fp32 = {lp.layer_id for lp in result.plan.fp32_layers}
    slow = {lp.layer_id for lp in result.plan.layers if lp.reason.startswith("INT8 ")}
    if kinds["all"].int8_slower:
        assert fp32 == {lp.layer_id for lp in result.plan.layers}
    else:
        slow_kinds = {k for k, s in kinds.items() if s.int8_slower and k != "all"}
        assert all(
            ("INT8 slower" in lp.reason) == (lp.layer_id in slow) for lp in result.plan.layers
        )
        assert len(slow) == sum(kinds[k].layers for k in slow_kinds)
        sensitive = {lp.layer_id for lp in result.plan.layers if lp.rank == 0}
        assert fp32 == (slow | sensitive if objective == "balanced" else slow)
    assert "Speed by layer kind" in (tmp_path / "o.report.md").read_text()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (["--target-cpu", "cortex-a53"], "A53 estimator"),
        (["--target-cpu", "cortex-a53", "--a53est", "/nonexistent/a53est.sh"], "no such A53"),
        (["--target-cpu", "cortex-a72"], "cortex-a53"),
        (["--target", "vulkan"], "target is vulkan"),
    ],
)
def test_objective_needs_the_host_or_the_a53_estimator(
    conv_stack_path, tmp_path, capsys, monkeypatch, target, message
) -> None:  # noqa: ANN001
    monkeypatch.delenv("QUANTUNE_A53EST", raising=False)
    out = tmp_path / "a.vmfb"
    calib = npy_folder(tmp_path / "c", _inputs())
    args = ["compile", conv_stack_path, "--calib", calib, *target, "--objective", "speed"]
    rc = main([*args, "-o", str(out)])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert list(tmp_path.glob("a.*")) == []


A53EST = Path(__file__).resolve().parents[3] / "shared" / "a53est" / "a53est.sh"


def test_objective_for_cortex_a53_prices_kinds_with_the_estimator(
    int8_job, tmp_path, monkeypatch
) -> None:  # noqa: ANN001
    """--objective speed for cortex-a53: every kind priced by the A53 estimator (deterministic
    instruction counts), labelled as an estimate; the final build priced the same way."""
    if not A53EST.exists():
        pytest.skip(f"{A53EST} not present (the team's shared A53 estimator)")
    monkeypatch.setenv("IREE_RUN_MODULE", require_qemu())
    monkeypatch.setenv("A53EST_CACHE", str(tmp_path / "cache"))
    calib = npy_folder(tmp_path / "c", conv_stack_inputs(2, seed=8))
    out = tmp_path / "o.vmfb"
    opts = replace(
        int8_job,
        plan=None,
        calib=calib,
        output=str(out),
        fp32_layers=0,
        objective="speed",
        target=get_target(cpu="cortex-a53"),
        a53est=str(A53EST),
    )
    result = run_job(opts, build=True)
    kinds = {s.kind: s for s in result.kind_speeds}
    assert {"all", "conv", "depthwise_conv"} <= set(kinds)
    assert all(s.unit == "Mcycles" and s.int8_cost > 0 and s.fp32_cost > 0 for s in kinds.values())
    assert result.latency is not None
    # Same FP32 build, same input: the same count of every instruction, the same estimate.
    assert result.latency[1] == kinds["all"].fp32_cost
    if not result.plan.fp32_layers:
        assert result.latency[0] == kinds["all"].int8_cost
    assert "A53 estimate" in result.summary and "estimate for cortex-a53" in result.summary
    slow = {lp.layer_id for lp in result.plan.layers if lp.reason.startswith("INT8 ")}
    assert slow == {lp.layer_id for lp in result.plan.fp32_layers}
    report = (tmp_path / "o.report.md").read_text()
    assert "estimated (a53sim" in report
