"""The runtime: results are copies, calls are counted, bad functions and flags are refused."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import conv_stack_inputs
from quantune_iree.backend.compile import compile_vmfb
from quantune_iree.backend.runtime import Runner, run_module_cli
from quantune_iree.backend.targets import get_target
from quantune_iree.errors import QuantuneError
from targets_env import require_lavapipe


@pytest.fixture(scope="module")
def vmfb(conv_stack_model) -> bytes:
    return compile_vmfb(conv_stack_model.bytecode, get_target("host"))


def test_results_survive_the_next_call(vmfb) -> None:  # noqa: ANN001
    run = Runner(vmfb, "conv_stack")
    a, b = conv_stack_inputs(2, seed=5)
    first = run([a])[0]
    kept = first.copy()
    run([b])
    np.testing.assert_array_equal(first, kept)  # not a view of a recycled device buffer
    assert run.invocations == 2


def test_iree_run_module_gives_the_same_numbers(vmfb, tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "m.vmfb"
    path.write_bytes(vmfb)
    (x,) = conv_stack_inputs(1, seed=6)
    (got,) = run_module_cli(str(path), "conv_stack", [x], 1)
    np.testing.assert_array_equal(got, Runner(vmfb, "conv_stack")([x])[0])


def test_vulkan_results_come_back_in_process(conv_stack_model, tmp_path) -> None:  # noqa: ANN001
    """Vulkan results are staged through a host-visible buffer (lavapipe refuses to import
    numpy's memory), and give what iree-run-module gives, call after call."""
    require_lavapipe()
    vk = compile_vmfb(conv_stack_model.bytecode, get_target("vulkan", vulkan_target="llvmpipe"))
    path = tmp_path / "vk.vmfb"
    path.write_bytes(vk)
    run = Runner(vk, "conv_stack", "vulkan")
    for x in conv_stack_inputs(2, seed=7):
        (want,) = run_module_cli(str(path), "conv_stack", [x], 1, driver="vulkan")
        np.testing.assert_array_equal(run([x])[0], want)


def test_refusals(vmfb) -> None:  # noqa: ANN001
    with pytest.raises(QuantuneError, match="no function 'nope'"):
        Runner(vmfb, "nope")
    with pytest.raises(QuantuneError, match="not supported in-process"):
        Runner(vmfb, "conv_stack", runtime_flags=("--task_topology_group_count=1",))
    with pytest.raises(QuantuneError, match="driver 'nosuch' is not available"):
        Runner(vmfb, "conv_stack", driver="nosuch")
