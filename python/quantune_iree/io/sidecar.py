"""The JSON sidecar shipped beside a vmfb: what an app needs to call it (function, inputs,
outputs, preprocessing or tokenizer, runtime flags) and how it was made (target, plan, check)."""

from __future__ import annotations

import dataclasses
import json
import os

from ..model.graph import ImportedModel, TensorSpec
from ..model.plan import Plan, plan_to_json
from ..model.results import Verification
from ..model.target import Target
from .dataset import Preprocess
from .report import TOOL, verification_text
from .text import TextSource


def sidecar_json(
    model: ImportedModel,
    plan: Plan,
    target: Target,
    vmfb_sha256: str,
    preprocess: Preprocess | TextSource | None,
    verification: Verification | None = None,
) -> str:
    """What an app needs to call the vmfb, and how it was made (and checked)."""

    def spec(s: TensorSpec) -> dict[str, object]:
        return {"name": s.name, "shape": list(s.shape), "dtype": s.dtype}

    return (
        json.dumps(
            {
                "tool": TOOL,
                "model": os.path.basename(model.path),
                "model_sha256": model.sha256,
                "vmfb_sha256": vmfb_sha256,
                "function": model.function,
                "target": {
                    "name": target.name,
                    "driver": target.driver,
                    "flags": list(target.flags),
                    "preset": target.preset,
                    "runtime_flags": list(target.runtime_flags),
                    "isa": target.isa,
                    # The FP32 convs went channels-last before compiling (quantune's own pass).
                    "channels_last": target.channels_last,
                    **(
                        {"vulkan_storage": target.vulkan_storage}
                        if target.driver == "vulkan"
                        else {}
                    ),
                },
                "inputs": [spec(s) for s in model.inputs],
                "outputs": [spec(s) for s in model.outputs],
                "preprocessing": None if preprocess is None else dataclasses.asdict(preprocess),
                "plan": json.loads(plan_to_json(plan, TOOL)),
                "verification": None
                if verification is None
                else {"passed": True, "summary": verification_text(verification)},
            },
            indent=1,
        )
        + "\n"
    )
