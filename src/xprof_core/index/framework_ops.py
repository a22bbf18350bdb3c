"""Framework (TensorFlow / JAX) op full names: ``name:Type`` split as XProf's ``ParseTfOpFullname`` does.

``scope/MatMul_1:MatMul`` is a TensorFlow op, ``jit(f)/dot_general:`` (or with
a ``[params]`` type) a JAX op, ``Iterator::Batch`` a dataset op,
``MemcpyHToD`` a copy, ``aten::mm`` a PyTorch op; anything else is not a framework op.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple


class FrameworkOp(NamedTuple):
    """A parsed framework op full name: ``name``, ``type`` and what kind of op it is.

    ``kind`` is "tensorflow", "jax", "pytorch", "dataset", "memcpy" or "unknown" (not a
    framework op: XProf leaves such host events out of the host table).
    """

    name: str
    type: str
    kind: str


_TF_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_./>-]*")
_TF_TYPE = re.compile(r"[A-Z_][a-zA-Z0-9_]*")
# XProf matches with RE2, whose '.' stops at a newline: so does tf_op_name (kernel_stats).
# parse_framework_op (op_stats) lets the bracketed JAX params run over several lines.
_JAX_TYPE_ONE_LINE = re.compile(r"[a-z_][a-z0-9_]*(\[.*\])?")
_JAX_TYPE = re.compile(r"[a-z_][a-z0-9_]*(\[.*\])?", re.DOTALL)
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
# PyTorch's own op namespaces (aten::mm, c10d::allreduce_, torchvision::nms). Other "a::b" names
# (command_buffer::execute, LocalDeviceState::WaitFor) stay unknown, as in XProf; a PyTorch op of
# another namespace is still a framework op through its tf_op stat, only without a type.
_TORCH_OP = re.compile(
    r"(aten|prim|prims|c10d|_c10d_functional|c10d_functional|torchvision|quantized|_quantized|fbgemm|mkldnn)"
    r"::[A-Za-z0-9_.]+"
)
_MEMCPY = (
    ("MEMCPYHToD", "MemcpyHToD"),
    ("MEMCPYDToH", "MemcpyDToH"),
    ("MEMCPYDToD", "MemcpyDToD"),
    ("MEMCPYHToH", "MemcpyHToH"),
)


def derive_op_type(full_name: str) -> str:
    """``model/layer/MatMul_1`` -> ``MatMul``: the last scope without a numeric suffix (XProf's DeriveOpType)."""
    last = full_name.split("/")[-1]
    suffix = last.split("_")[-1]
    return last[: len(last) - len(suffix) - 1] if suffix != last and _INTEGER.fullmatch(suffix) else last


def _parse(full_name: str, jax_type: re.Pattern[str]) -> FrameworkOp:
    if ":" not in full_name:
        for prefix, op_type in _MEMCPY:
            if full_name.upper().startswith(prefix.upper()):
                return FrameworkOp(full_name, op_type, "memcpy")
        return FrameworkOp(full_name, "", "unknown")
    name, op_type = full_name.split(":", 1)
    if name == "Iterator":
        return FrameworkOp(full_name, "Dataset", "dataset")
    if _TORCH_OP.fullmatch(full_name):
        return FrameworkOp(full_name, full_name.rsplit("::", 1)[-1], "pytorch")
    if _TF_NAME.fullmatch(name) and _TF_TYPE.fullmatch(op_type):
        return FrameworkOp(name, op_type, "tensorflow")
    derived = op_type if op_type else derive_op_type(name)
    if jax_type.fullmatch(derived):
        return FrameworkOp(name, derived.split("[", 1)[0], "jax")
    if not op_type:
        return FrameworkOp(name, derived, "tensorflow")
    return FrameworkOp(full_name, "", "unknown")


@lru_cache(maxsize=65536)
def parse_framework_op(full_name: str) -> FrameworkOp:
    """Split ``name:Type`` the way XProf's ``ParseTfOpFullname`` does.

    ``scope/MatMul_1:MatMul`` is a TensorFlow op, ``jit(f)/dot_general:`` (or
    with a ``[params]`` type, which may span lines) a JAX op,
    ``Iterator::Batch`` a dataset op, ``MemcpyHToD`` a copy; anything else is
    ``unknown`` with an empty type.
    """
    return _parse(full_name, _JAX_TYPE)


def tf_op_name(tf_op_fullname: str) -> str:
    """The op name part of a ``tf_op`` stat (``name:type``), as XProf's ParseTfOpFullname reads it.

    The name part for a TensorFlow or JAX op (a JAX type's ``[params]`` on
    one line); the whole full name otherwise (no ``:``, ``Iterator::`` dataset
    ops, names that do not parse).
    """
    return _parse(tf_op_fullname, _JAX_TYPE_ONE_LINE).name


__all__ = ["FrameworkOp", "derive_op_type", "parse_framework_op", "tf_op_name"]
