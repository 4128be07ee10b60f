"""Runs a compiled .vmfb with the IREE runtime and hands back numpy copies of every result.

The runtime may recycle a result's device buffer once the call's results are released, and
`to_host()` can return a view of it; every result is therefore copied before the next call.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence

import numpy as np
from iree import runtime as rt

from ..errors import QuantuneError
from .targets import WORKER_STACK_FLAG

# IREE's runtime flags are process-wide and read when a device is created (devices are cached
# per driver), so they are set once, before this process creates its first device. The larger
# worker stacks that `speed` builds need (targets.py) are harmless for every other build.
RUNTIME_FLAGS = (WORKER_STACK_FLAG,)
_runtime_configured = False


def _config(driver: str, runtime_flags: Sequence[str]) -> rt.Config:
    global _runtime_configured
    missing = [f for f in runtime_flags if f not in RUNTIME_FLAGS]
    if missing:
        raise QuantuneError(
            f"runtime flags {' '.join(missing)} are not supported in-process; run the vmfb "
            "with iree-run-module instead"
        )
    if not _runtime_configured:
        rt.flags.parse_flags(*RUNTIME_FLAGS)
        _runtime_configured = True
    try:
        return rt.Config(driver)
    except Exception as exc:
        raise QuantuneError(f"IREE runtime driver '{driver}' is not available: {exc}") from None


class Runner:
    """One loaded module; `invocations` counts calls, so callers can prove how often they ran."""

    def __init__(
        self,
        vmfb: bytes,
        function: str,
        driver: str = "local-task",
        runtime_flags: Sequence[str] = (),
    ) -> None:
        self._ctx = rt.SystemContext(config=_config(driver, runtime_flags))
        self._ctx.add_vm_module(rt.VmModule.copy_buffer(self._ctx.instance, vmfb))
        module = self._ctx.modules.module
        try:
            self._fn = module[function]
        except (KeyError, AttributeError):
            raise QuantuneError(f"the vmfb has no function '{function}'") from None
        self.invocations = 0
        self._staged = driver == "vulkan"

    def __call__(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        self.invocations += 1
        results = self._fn(*inputs)
        if not isinstance(results, (tuple, list)):
            results = (results,)
        if self._staged:
            return [self._download(r) for r in results]
        return [np.array(r.to_host(), copy=True) for r in results]

    def _download(self, array: rt.DeviceArray) -> np.ndarray:
        """A Vulkan result, copied on the device's queue into a host-visible buffer and read
        from there: `to_host()` imports numpy's memory into Vulkan, which drivers refuse unless
        it is page-aligned (lavapipe: minImportedHostPointerAlignment 4096)."""
        device = self._ctx.config.device
        source = array._buffer_view.get_buffer()
        staging = device.allocator.allocate_buffer(
            memory_type=int(rt.MemoryType.HOST_LOCAL | rt.MemoryType.DEVICE_VISIBLE),
            allowed_usage=int(rt.BufferUsage.TRANSFER | rt.BufferUsage.MAPPING),
            allocation_size=source.byte_length(),
        )
        done = rt.HalFence.create_at(device.create_semaphore(0), 1)
        device.queue_copy(source, staging, [], done)
        done.wait()
        return np.array(staging.map().asarray(array.shape, array.dtype), copy=True)


def runtime_tool(name: str = "iree-run-module") -> str:
    """Path of a tool shipped in the iree-base-runtime wheel for this machine."""
    import iree.runtime

    path = os.path.join(
        os.path.dirname(os.path.dirname(iree.runtime.__file__)), "_runtime_libs", name
    )
    if not os.path.exists(path):
        raise QuantuneError(f"{name} not found in the iree-base-runtime wheel ({path})")
    return path


def run_module_cli(
    vmfb_path: str,
    function: str,
    inputs: Sequence[np.ndarray],
    num_outputs: int,
    *,
    driver: str = "local-task",
    tool: str | None = None,
    wrapper: Sequence[str] = (),
    timeout: float = 600.0,
) -> list[np.ndarray]:
    """Runs a vmfb with iree-run-module (any driver; `wrapper` e.g. runs an aarch64 tool under
    qemu) and returns its outputs, read back from .npy files."""
    with tempfile.TemporaryDirectory(prefix="quantune-run-") as tmp:
        args = [
            *wrapper,
            tool or runtime_tool(),
            f"--module={vmfb_path}",
            f"--device={driver}",
            f"--function={function}",
            WORKER_STACK_FLAG,
        ]
        for i, x in enumerate(inputs):
            path = os.path.join(tmp, f"in{i}.npy")
            np.save(path, x)
            args.append(f"--input=@{path}")
        outs = [os.path.join(tmp, f"out{i}.npy") for i in range(num_outputs)]
        args += [f"--output=@{p}" for p in outs]
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise QuantuneError(f"running {vmfb_path} failed: {exc}") from None
        if proc.returncode != 0 or not all(os.path.exists(p) for p in outs):
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise QuantuneError(
                f"running {vmfb_path} on {driver} failed (exit {proc.returncode}): "
                f"{detail[-1] if detail else 'no output'}"
            )
        return [np.load(p) for p in outs]
