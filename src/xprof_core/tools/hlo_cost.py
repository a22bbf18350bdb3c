"""FLOPs and bytes of HLO instructions, for profiles that do not record XLA's cost analysis.

TPU profiles carry XLA's own figures on every op (``flops`` and
``bytes_accessed`` stats), and the roofline uses those. GPU and CPU profiles
carry none; XProf then runs XLA's GPU cost model, whose elementwise FLOPs come
from per-GPU tables of measured cycles per op. This module is a transparent
model with XLA's ``HloCostAnalysis`` conventions instead:

* **FLOPs.** Elementwise ops: one per output element (transcendental ops:
  exp, log, tanh, ... count as transcendentals, not FLOPs). ``dot``: 2 x output
  elements x the product of the contracting dimensions. Convolution (also
  cuDNN / MIOpen custom calls): 2 x batch x output features x input features
  per group x the valid (input, kernel) position pairs of every spatial
  dimension (padding and dilation accounted). cuBLAS / hipBLASLt GEMM custom
  calls: as the ``dot`` their backend config describes. ``reduce``: the
  reducer's FLOPs per combined element (input elements - output elements).
  ``reduce-window``: the reducer's FLOPs x window size per output element. A
  fusion: the sum over its fused computation. Data movement (copy,
  transpose, broadcast, slices, reshape ...): none.
* **Bytes accessed.** The bytes of every distinct operand plus the output
  (a fusion: its operands and output, not its internals; a library custom
  call: its result without the scratch workspace; tuples, bitcasts,
  parameters and constants move nothing themselves).

All figures are per execution of the instruction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from xprof_core.tools.xla_hlo import TUPLE, HloModule, byte_size, num_elements

TRANSCENDENTAL = frozenset(
    {
        "exponential",
        "exponential-minus-one",
        "log",
        "log-plus-one",
        "logistic",
        "power",
        "sqrt",
        "cbrt",
        "rsqrt",
        "tanh",
        "sine",
        "cosine",
        "tan",
        "atan2",
        "erf",
    }
)
ELEMENTWISE = frozenset(
    {
        "abs",
        "add",
        "and",
        "ceil",
        "clamp",
        "clz",
        "compare",
        "complex",
        "convert",
        "divide",
        "floor",
        "imag",
        "is-finite",
        "maximum",
        "minimum",
        "multiply",
        "negate",
        "not",
        "or",
        "popcnt",
        "real",
        "reduce-precision",
        "remainder",
        "round-nearest-afz",
        "round-nearest-even",
        "select",
        "shift-left",
        "shift-right-arithmetic",
        "shift-right-logical",
        "sign",
        "stochastic-convert",
        "subtract",
        "xor",
    }
)
NO_TRAFFIC = frozenset(
    {"tuple", "get-tuple-element", "bitcast", "parameter", "constant", "after-all", "partition-id", "replica-id"}
)
_GEMM_TARGETS = ("__cublas$gemm", "__cublas$lt$matmul", "__cublas$lt$matmul$f8", "__hipblas", "__rocblas")
_CONV_TARGET_PREFIX = "__cudnn$conv"


@dataclass(frozen=True)
class Cost:
    """FLOPs, transcendental ops and bytes accessed by one execution of an instruction."""

    flops: float = 0.0
    transcendentals: float = 0.0
    bytes_accessed: float = 0.0


def _first_array(shape: Any) -> Any:
    """The shape itself, or a tuple's first element (a custom call's result next to its workspace)."""
    if shape.element_type == TUPLE and len(shape.tuple_shapes):
        return shape.tuple_shapes[0]
    return shape


def _array_bytes(shape: Any) -> int:
    """Bytes of every array in a shape (tuples summed over their elements)."""
    if shape.element_type == TUPLE:
        return sum(_array_bytes(s) for s in shape.tuple_shapes)
    return byte_size(shape)


def _dot_flops(lhs: Any, out: Any, contracting: Any) -> float:
    k = 1
    for d in contracting:
        if 0 <= int(d) < len(lhs.dimensions):
            k *= int(lhs.dimensions[int(d)])
    return 2.0 * num_elements(_first_array(out)) * k


def _valid_pairs(in_size: int, kernel: int, out_size: int, wd: Any) -> int:
    """(output position, kernel position) pairs of one spatial dimension that read a real input element."""
    stride = max(int(wd.stride), 1) if wd is not None else 1
    pad_low = int(wd.padding_low) if wd is not None else 0
    wdil = max(int(wd.window_dilation), 1) if wd is not None else 1
    bdil = max(int(wd.base_dilation), 1) if wd is not None else 1
    dilated_in = (in_size - 1) * bdil + 1 if in_size > 0 else 0
    count = 0
    for k in range(kernel):
        offset = k * wdil - pad_low
        for o in range(out_size):
            pos = o * stride + offset
            if 0 <= pos < dilated_in and pos % bdil == 0:
                count += 1
    return count


def _conv_flops(ins: Any, lhs: Any, rhs: Any, out: Any) -> float:
    dn = ins.convolution_dimension_numbers
    out = _first_array(out)
    batch_groups = max(int(ins.batch_group_count), 1)
    try:
        in_features = int(rhs.dimensions[dn.kernel_input_feature_dimension])
        out_features = int(out.dimensions[dn.output_feature_dimension])
        batch = int(out.dimensions[dn.output_batch_dimension])
    except IndexError:
        return 0.0
    pairs = 1
    window = list(ins.window.dimensions)
    for i, (di, dk, do) in enumerate(
        zip(dn.input_spatial_dimensions, dn.kernel_spatial_dimensions, dn.output_spatial_dimensions, strict=False)
    ):
        wd = window[i] if i < len(window) else None
        pairs *= _valid_pairs(int(lhs.dimensions[di]), int(rhs.dimensions[dk]), int(out.dimensions[do]), wd)
    # The kernel's input-feature dimension is already per feature group.
    return 2.0 * batch * out_features * in_features * pairs / batch_groups


def _gemm_custom_call_flops(ins: Any, operands: list[Any]) -> float:
    """A cuBLAS / hipBLASLt GEMM custom call: the dot its backend config describes."""
    try:
        config = json.loads(bytes(ins.backend_config).decode("utf-8") or "{}")
    except (UnicodeDecodeError, ValueError):
        return 0.0
    gemm = config.get("gemm_backend_config", config)
    dims = gemm.get("dot_dimension_numbers", {}) if isinstance(gemm, dict) else {}
    contracting = dims.get("lhs_contracting_dimensions", [])
    if not operands or not contracting:
        return 0.0
    return _dot_flops(operands[0].shape, ins.shape, [int(c) for c in contracting])


class CostModel:
    """Per-instruction costs of one module, computed once per instruction."""

    def __init__(self, module: HloModule) -> None:
        self.m = module
        self._flops: dict[int, tuple[float, float]] = {}

    def _computation_flops(self, comp_id: int) -> tuple[float, float]:
        comp = self.m.computations.get(comp_id)
        if comp is None:
            return 0.0, 0.0
        flops = trans = 0.0
        for ins in comp.instructions:
            f, t = self.flops(ins)
            flops += f
            trans += t
        return flops, trans

    def flops(self, ins: Any) -> tuple[float, float]:
        """(FLOPs, transcendentals) of one execution."""
        cached = self._flops.get(ins.id)
        if cached is not None:
            return cached
        self._flops[ins.id] = (0.0, 0.0)  # guards recursion through malformed protos
        op = ins.opcode
        operands = self.m.operands(ins)
        flops = trans = 0.0
        if op in TRANSCENDENTAL:
            trans = float(num_elements(ins.shape))
        elif op in ELEMENTWISE:
            flops = float(num_elements(ins.shape))
        elif op == "dot" and operands:
            flops = _dot_flops(operands[0].shape, ins.shape, ins.dot_dimension_numbers.lhs_contracting_dimensions)
        elif op == "convolution" and len(operands) >= 2:
            flops = _conv_flops(ins, operands[0].shape, operands[1].shape, ins.shape)
        elif op == "custom-call":
            target = ins.custom_call_target
            if target.startswith(_CONV_TARGET_PREFIX) and len(operands) >= 2:
                flops = _conv_flops(ins, operands[0].shape, operands[1].shape, ins.shape)
            elif target.startswith(_GEMM_TARGETS):
                flops = _gemm_custom_call_flops(ins, operands)
        elif op in ("fusion", "call"):
            for cid in ins.called_computation_ids:
                f, t = self._computation_flops(cid)
                flops += f
                trans += t
        elif op in ("reduce", "reduce-window") and ins.called_computation_ids:
            per, per_t = self._computation_flops(ins.called_computation_ids[0])
            if op == "reduce":
                applications = max(num_elements(operands[0].shape) - num_elements(_first_array(ins.shape)), 0)
            else:
                window = 1
                for wd in ins.window.dimensions:
                    window *= max(int(wd.size), 1)
                applications = num_elements(_first_array(ins.shape)) * window
            flops, trans = per * applications, per_t * applications
        result = (float(flops), float(trans))
        self._flops[ins.id] = result
        return result

    def bytes_accessed(self, ins: Any) -> float:
        if ins.opcode in NO_TRAFFIC:
            return 0.0
        seen: set[int] = set()
        total = 0
        for operand in self.m.operands(ins):
            if operand.id not in seen:
                seen.add(operand.id)
                total += _array_bytes(operand.shape)
        # A library call's tuple result ends with its scratch workspace, which is not data.
        out = _first_array(ins.shape) if ins.opcode == "custom-call" else ins.shape
        return float(total + _array_bytes(out))

    def cost(self, ins: Any) -> Cost:
        flops, trans = self.flops(ins)
        return Cost(flops, trans, self.bytes_accessed(ins))


__all__ = ["ELEMENTWISE", "TRANSCENDENTAL", "Cost", "CostModel"]
