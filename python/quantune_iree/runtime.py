"""Runs a compiled .vmfb with the IREE runtime and hands back numpy copies of every result.

The runtime may recycle a result's device buffer once the call's results are released, and
`to_host()` can return a view of it; every result is therefore copied before the next call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from iree import runtime as rt

from .errors import QuantuneError


class Runner:
    """One loaded module; `invocations` counts calls, so callers can prove how often they ran."""

    def __init__(self, vmfb: bytes, function: str, driver: str = "local-task") -> None:
        try:
            config = rt.Config(driver)
        except Exception as exc:
            raise QuantuneError(f"IREE runtime driver '{driver}' is not available: {exc}") from None
        self._ctx = rt.SystemContext(config=config)
        self._ctx.add_vm_module(rt.VmModule.copy_buffer(self._ctx.instance, vmfb))
        module = self._ctx.modules.module
        try:
            self._fn = module[function]
        except (KeyError, AttributeError):
            raise QuantuneError(f"the vmfb has no function '{function}'") from None
        self.invocations = 0

    def __call__(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        self.invocations += 1
        results = self._fn(*inputs)
        if not isinstance(results, (tuple, list)):
            results = (results,)
        return [np.array(r.to_host(), copy=True) for r in results]
