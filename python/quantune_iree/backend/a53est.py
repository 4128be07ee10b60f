"""Cortex-A53 cost estimates: a cortex-a53 vmfb run once under qemu with an A53 timing model.

The estimator is an external script, `a53est.sh VMFB INPUT.npy [iree-run-module flags]` (the
team's `../shared/a53est`): it runs the module single-threaded under `qemu-aarch64` with an
instruction-counting plugin and prices the dispatch code with an in-order dual-issue A53 model,
writing `estimate.json` to `$A53EST_OUT`. The figure used is its primary model's cycles for
the dispatch code (`sim_edge_cycles.dispatch`; the runtime's own code is left out): compute
only, no caches or memory, so a ratio between builds of one model, never a latency. Counts
are deterministic, so builds are priced in parallel (after a first one alone).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import QuantuneError

ENV_VAR = "QUANTUNE_A53EST"
CYCLES_KEY = "sim_edge_cycles"
TIMEOUT_S = 3600


class A53Estimator:
    """Prices cortex-a53 vmfbs with the estimator script at `script`."""

    def __init__(self, script: str) -> None:
        if not os.path.isfile(script):
            raise QuantuneError(f"{script}: no such A53 estimator script", file=script)
        if shutil.which("qemu-aarch64") is None:
            raise QuantuneError("the A53 estimator needs qemu-aarch64 (Debian's qemu-user)")
        self.script = os.path.abspath(script)

    def cycles(
        self,
        vmfbs: Sequence[bytes],
        function: str,
        inputs: Sequence[np.ndarray],
        runtime_flags: Sequence[str] = (),
        num_outputs: int = 1,
    ) -> list[float]:
        """Estimated cycles of one call of `function` on `inputs`, for each vmfb. The script
        writes the first output; the others (`num_outputs` in all) go to files of their own, as
        iree-run-module wants an --output per result."""
        with tempfile.TemporaryDirectory(prefix="quantune-a53est-") as tmp:
            args = []
            for i, x in enumerate(inputs):
                path = os.path.join(tmp, f"input{i}.npy")
                np.save(path, x)
                args.append(path if i == 0 else f"--input=@{path}")
            args += [
                f"--output=@{os.path.join(tmp, f'extra{k}.npy')}" for k in range(1, num_outputs)
            ]
            args += list(runtime_flags)

            def one(i: int) -> float:
                vmfb = os.path.join(tmp, f"build{i}.vmfb")
                with open(vmfb, "wb") as f:
                    f.write(vmfbs[i])
                return self._run(vmfb, args, function, os.path.join(tmp, f"out{i}"))

            # The first run alone: the script builds its qemu plugin (and may fetch a runtime)
            # into a shared cache on first use, which parallel first runs would race on.
            first = [one(0)] if vmfbs else []
            workers = max(1, min(len(vmfbs), os.cpu_count() or 1))
            with ThreadPoolExecutor(workers) as pool:
                return first + list(pool.map(one, range(1, len(vmfbs))))

    def _run(self, vmfb: str, args: list[str], function: str, out: str) -> float:
        env = {**os.environ, "A53EST_OUT": out, "FUNCTION": function}
        try:
            proc = subprocess.run(
                ["bash", self.script, vmfb, *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise QuantuneError(f"the A53 estimate ran past {TIMEOUT_S} s") from None
        if proc.returncode:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
            raise QuantuneError(f"the A53 estimator failed: {tail[0]}")
        try:
            with open(os.path.join(out, "estimate.json")) as f:
                return float(json.load(f)[CYCLES_KEY]["dispatch"])
        except (OSError, ValueError, KeyError, TypeError):
            raise QuantuneError(
                f"the A53 estimator wrote no '{CYCLES_KEY}.dispatch' estimate"
            ) from None
