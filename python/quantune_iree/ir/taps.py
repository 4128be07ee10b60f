"""Tensor taps: run quantune-insert-taps on input-phase MLIR and record where each tap lands."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from . import native
from . import session as ir_session


@dataclass(frozen=True)
class TapMap:
    """Result positions of the taps in the tapped entry function."""

    function: str
    num_original_results: int
    num_taps: int  # distinct tapped values (a value feeding two taps is returned once)
    input_result: Mapping[int, int]  # layer id → result index of its activation input
    output_result: Mapping[int, int]  # layer id → result index of its output
    # layer id → result index of its second operand, for activation x activation matmuls
    weight_result: Mapping[int, int] = field(default_factory=dict)

    @property
    def tap_results(self) -> tuple[int, ...]:
        """Every distinct tap result index, ascending."""
        return tuple(range(self.num_original_results, self.num_original_results + self.num_taps))


@dataclass(frozen=True)
class TappedModel:
    bytecode: bytes  # input-phase MLIR with the taps as extra results
    taps: TapMap


def tap_bytecode(bytecode: bytes, layer_ids: Sequence[int] | None = None) -> TappedModel:
    """Adds taps for `layer_ids` (all layers when None) to a copy of the module `bytecode`."""
    session = ir_session.new_session()
    module = ir_session.parse_module(session, bytecode)
    result = native.insert_taps(module, layer_ids)
    native.verify(module)
    taps = TapMap(
        function=result.function,
        num_original_results=result.num_original_results,
        num_taps=result.num_taps,
        input_result={e.layer_id: e.input_result for e in result.entries},
        output_result={e.layer_id: e.output_result for e in result.entries},
        weight_result={e.layer_id: e.weight_result for e in result.entries if e.weight_result >= 0},
    )
    return TappedModel(bytecode=ir_session.to_bytecode(module), taps=taps)
