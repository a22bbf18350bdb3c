"""Peak FLOP rate and memory bandwidth of an accelerator, for the roofline.

Where the numbers come from, first found wins:

1. **The plane's own peaks.** TPU planes carry ``peak_teraflops_per_second``
   and ``peak_hbm_bw_gigabytes_per_second`` (per core).
2. **The plane's device description.** GPU planes carry ``core_count``
   (SMs / CUs), ``clock_rate`` (kHz), the compute capability and
   ``memory_bandwidth`` (bytes/s). Peak FLOP/s = cores x clock x the
   architecture's dense FLOPs per core per cycle (the largest of FP32 and
   FP16 on CUDA and Tensor / vector and matrix cores, the figure XProf uses),
   bandwidth = ``memory_bandwidth``. A GPU plane without ``device_vendor``
   (TensorFlow 2.x profiles) is taken as NVIDIA, where XProf reports 0.
3. **The table of device kinds** (:data:`DEVICE_PEAKS`), matched on the
   plane's device name, for profiles whose planes say what the device is but
   not what it can do.

Units: GFLOP/s and GiB/s (2**30 bytes), as XProf shows them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from xprof_core.model.planes import PlaneKind
from xprof_core.model.xspace import Plane, XSpace

GIB = float(1 << 30)

# Dense FLOPs per SM per clock cycle by NVIDIA compute capability: the largest of FP32 and FP16
# on CUDA cores and Tensor Cores (no sparsity). From NVIDIA's architecture whitepapers:
# Fermi GF100 (2.0), Kepler GK110 (3.0), Maxwell GM200 (5.0), Pascal GP100 / GP104 (6.0, 6.1),
# Volta GV100 (7.0: 8 Tensor Cores x 64 FP16 FMA), Turing TU102 (7.5), Ampere GA100 (8.0:
# 4 Tensor Cores x 256 FP16 FMA) and GA102 (8.6), Ada AD102 (8.9), Hopper GH100 (9.0: 4 Tensor
# Cores x 512 FP16 FMA), Blackwell B200 (10.0).
NVIDIA_FLOPS_PER_SM_CYCLE: dict[tuple[int, int], float] = {
    (2, 0): 64,
    (3, 0): 384,
    (5, 0): 256,
    (6, 0): 256,
    (6, 1): 256,
    (7, 0): 1024,
    (7, 5): 1024,
    (8, 0): 2048,
    (8, 6): 1024,
    (8, 9): 1024,
    (9, 0): 4096,
    (10, 0): 8192,
}
# Dense FLOPs per CU per clock cycle by AMD architecture (largest of vector and matrix FP32/FP16),
# from AMD's CDNA whitepapers ("FLOPS/clock/CU" tables): CDNA 1 MI100 (gfx908), CDNA 2 MI250X
# (gfx90a), CDNA 3 MI300X (gfx942), CDNA 4 MI355X (gfx950).
AMD_FLOPS_PER_CU_CYCLE: dict[str, float] = {"gfx908": 1024, "gfx90a": 1024, "gfx942": 2048, "gfx950": 4096}
# AMD compute capability (major, minor) -> architecture, where it names one.
AMD_ARCH_BY_CAPABILITY: dict[tuple[int, int], str] = {(9, 4): "gfx942", (9, 5): "gfx950"}


@dataclass(frozen=True)
class DeviceKind:
    """A device kind's datasheet peaks: dense BF16/FP16 FLOP/s and HBM bandwidth (per chip or TPU core)."""

    name: str
    pattern: str  # regex on the plane's device name
    peak_tflops: float  # dense BF16/FP16, TFLOP/s
    hbm_gb_per_s: float  # GB/s (10**9 bytes)


# Datasheet peaks (dense, no structured sparsity), most specific patterns first.
DEVICE_PEAKS: tuple[DeviceKind, ...] = (
    # NVIDIA Tesla V100 datasheet: SXM2 125 TFLOPS Tensor, PCIe 112; HBM2 900 GB/s.
    DeviceKind("V100 PCIe", r"V100.*PCIE", 112.0, 900.0),
    DeviceKind("V100 SXM2", r"V100", 125.0, 900.0),
    # NVIDIA A100 datasheet: BF16 Tensor 312 TFLOPS (624 with sparsity); 40GB 1,555 GB/s, 80GB SXM 2,039 GB/s.
    DeviceKind("A100 80GB", r"A100.*80", 312.0, 2039.0),
    DeviceKind("A100 40GB", r"A100", 312.0, 1555.0),
    # NVIDIA H200 datasheet: BF16 Tensor 989 TFLOPS dense (1,979 with sparsity); HBM3e 4.8 TB/s.
    DeviceKind("H200", r"H200", 989.0, 4800.0),
    # NVIDIA H100 datasheet: SXM BF16 989 TFLOPS dense, 3.35 TB/s; PCIe 756 TFLOPS, 2.0 TB/s; NVL 835, 3.9 TB/s.
    DeviceKind("H100 PCIe", r"H100.*PCIE", 756.0, 2000.0),
    DeviceKind("H100 NVL", r"H100.*NVL", 835.0, 3900.0),
    DeviceKind("H100 SXM", r"H100", 989.0, 3350.0),
    # NVIDIA HGX B200 datasheet: FP16/BF16 Tensor 36 PFLOPS with sparsity for 8 GPUs -> 2.25 PFLOPS dense per
    # GPU; HBM3e 8 TB/s per GPU.
    DeviceKind("B200", r"B200", 2250.0, 8000.0),
    # AMD Instinct MI300X datasheet: FP16/BF16 1,307.4 TFLOPS dense; HBM3 5.3 TB/s.
    DeviceKind("MI300X", r"MI300X|MI300", 1307.4, 5300.0),
    # AMD Instinct MI355X datasheet: FP16/BF16 2.5 PFLOPS dense (5.0 with sparsity: 256 CUs x 4,096 FLOPs
    # per clock x 2.4 GHz); HBM3E 8 TB/s.
    DeviceKind("MI355X", r"MI355X|MI350", 2516.6, 8000.0),
    # Google Cloud TPU system architecture pages, per chip: v4 275 TFLOPS BF16, 1,200 GB/s HBM;
    # v5e 197 TFLOPS, 819 GB/s; v5p 459 TFLOPS, 2,765 GB/s; v6e (Trillium, "TPU v6 Lite") 918 TFLOPS, 1,640 GB/s.
    DeviceKind("TPU v4", r"TPU v4", 275.0, 1200.0),
    DeviceKind("TPU v5e", r"TPU v5 ?(lite|e)", 197.0, 819.0),
    DeviceKind("TPU v5p", r"TPU v5", 459.0, 2765.0),
    DeviceKind("TPU v6e", r"TPU v6 ?(lite|e)|Trillium", 918.0, 1640.0),
)


@dataclass(frozen=True)
class DevicePeaks:
    """Peaks of one device kind, and where they came from."""

    device: str  # a readable device name ("NVIDIA H100 80GB HBM3", "TPU v6 Lite", "AMD GPU - gfx942")
    kind: str  # "TPU", "GPU" or "CPU"
    peak_gflops: float  # GFLOP/s, 0 when unknown
    peak_hbm_gib_per_s: float  # GiB/s, 0 when unknown
    source: str  # "plane peaks", "plane clock x cores", "device table: H100 SXM", "unknown"
    cores: int = 0

    @property
    def ridge_point(self) -> float:
        """FLOPs per byte where the memory and compute roofs meet."""
        return self.peak_gflops / self.peak_hbm_gib_per_s if self.peak_hbm_gib_per_s else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "kind": self.kind,
            "peak_gflops_per_s": self.peak_gflops,
            "peak_hbm_gib_per_s": self.peak_hbm_gib_per_s,
            "ridge_point": self.ridge_point,
            "source": self.source,
            "cores": self.cores,
        }


def table_peaks(name: str) -> DeviceKind | None:
    """The device kind whose pattern matches a device name (case-insensitive)."""
    for kind in DEVICE_PEAKS:
        if re.search(kind.pattern, name, re.IGNORECASE):
            return kind
    return None


def _nvidia_per_sm(major: int, minor: int) -> float:
    """XProf's fallback for an unknown capability: the nearest known one below (or the oldest)."""
    known = sorted(NVIDIA_FLOPS_PER_SM_CYCLE)
    below = [k for k in known if k <= (major, minor)]
    return NVIDIA_FLOPS_PER_SM_CYCLE[below[-1] if below else known[0]]


def _int(stats: dict[str, Any], name: str) -> int:
    v = stats.get(name)
    return int(v) if isinstance(v, (int, float)) else 0


def plane_peaks(plane: Plane) -> DevicePeaks | None:
    """Peaks from one device plane's stats, or from the table by its device name; None when it has neither."""
    st = plane.stats
    kind = plane.device_type
    name = str(st.get("device_type_string") or st.get("gpu_device_name") or "")
    tflops = st.get("peak_teraflops_per_second")
    hbm = st.get("peak_hbm_bw_gigabytes_per_second")
    if isinstance(tflops, (int, float)) and tflops > 0:
        gb = float(hbm) if isinstance(hbm, (int, float)) else 0.0
        return DevicePeaks(name or kind, kind, float(tflops) * 1e3, gb * 1e9 / GIB, "plane peaks", 1)
    cores, clock_khz = _int(st, "core_count"), _int(st, "clock_rate")
    major, minor = _int(st, "compute_cap_major"), _int(st, "compute_cap_minor")
    bandwidth = _int(st, "memory_bandwidth")
    if kind == "GPU" and cores and clock_khz and major:
        ghz = clock_khz / 1e6
        if str(st.get("device_vendor", "")).upper() == "AMD":
            arch = AMD_ARCH_BY_CAPABILITY.get((major, minor), "")
            per_core = AMD_FLOPS_PER_CU_CYCLE.get(arch, 0.0)
            name = name or (f"AMD GPU - {arch}" if arch else "AMD GPU")
        else:
            per_core = _nvidia_per_sm(major, minor)
            name = name or f"NVIDIA GPU (compute capability {major}.{minor})"
        return DevicePeaks(name, kind, per_core * cores * ghz, bandwidth / GIB, "plane clock x cores", cores)
    if name:
        known = table_peaks(name)
        if known is not None:
            return DevicePeaks(
                name, kind, known.peak_tflops * 1e3, known.hbm_gb_per_s * 1e9 / GIB, f"device table: {known.name}"
            )
    return None


def device_peaks(xs: XSpace) -> DevicePeaks:
    """The peaks of the first device plane that has events and a known device, else of any device plane."""
    devices = [p for p in xs.planes_of_kind(PlaneKind.DEVICE) if p.device_type in ("GPU", "TPU")]
    for plane in sorted(devices, key=lambda p: (p.num_events == 0, p.index)):
        peaks = plane_peaks(plane)
        if peaks is not None:
            return peaks
    if devices:
        kind = devices[0].device_type
        return DevicePeaks(kind, kind, 0.0, 0.0, "unknown")
    return DevicePeaks("CPU", "CPU", 0.0, 0.0, "unknown")


__all__ = ["DEVICE_PEAKS", "DeviceKind", "DevicePeaks", "device_peaks", "plane_peaks", "table_peaks"]
