"""Where and how fast to compute: device, precision and CPU threads, chosen by hardware.

Each choice can be forced from llm.config.js (training.device, training.precision,
training.threads); `auto` picks:
- device: cuda -> mps -> cpu;
- precision: bf16 where the hardware runs it fast (CUDA GPUs with bf16, CPUs with avx512_bf16 or
  AMX, Apple M2 and later) and the model is wide enough to gain from it (on a CPU: model.dim >=
  CPU_BF16_MIN_DIM), fp16 with a GradScaler on older CUDA GPUs, fp32 otherwise;
- threads: one per physical core (hyper-threads only add contention for matmuls).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from errors import ConfigurationError


def pick_device(requested: str = "auto") -> torch.device:
    """The device to train on: the requested one, or the best available."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigurationError(
            "training.device is 'cuda' but no CUDA GPU is available",
            "set training.device to 'auto' (or 'cpu'), or install a CUDA build of PyTorch",
        )
    if requested == "mps" and not torch.backends.mps.is_available():
        raise ConfigurationError(
            "training.device is 'mps' but Apple's Metal backend is not available",
            "set training.device to 'auto' or 'cpu'",
        )
    return torch.device(requested)


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _apple_has_bf16() -> bool:
    """Apple M2 and later report FEAT_BF16."""
    if platform.system() != "Darwin":
        return False
    try:
        out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"],
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() == "1"
    except (OSError, subprocess.SubprocessError):
        return False


def cpu_has_fast_bf16() -> bool:
    """True when this CPU multiplies bf16 matrices in hardware (about 2x fp32 speed)."""
    flags = _cpu_flags()
    return bool({"avx512_bf16", "amx_bf16"} & flags) or _apple_has_bf16()


def cuda_has_fast_bf16() -> bool:
    """True on GPUs that compute in bf16 natively (NVIDIA Ampere and later, AMD ROCm GPUs).

    Not torch.cuda.is_bf16_supported() alone: by default it also says yes where bf16 is only
    emulated (V100, T4), which is much slower than fp16 there.
    """
    if torch.version.hip:
        return torch.cuda.is_bf16_supported()
    return torch.cuda.get_device_capability()[0] >= 8


# bf16 autocast on a CPU pays for casting weights and activations, and only its matmuls get
# faster, so a narrow model can lose. Measured on an AMD Zen 4 CPU (avx512_bf16, 2 threads, 4
# layers, batch 32 x 256 tokens, train step bf16 vs fp32, interleaved, medians): dim 32 0.93x
# (slower), dim 48 1.03x, dim 64 1.13x, dim 128 (nano) 1.2-1.5x, dim 320 (tiny) 1.9x.
CPU_BF16_MIN_DIM = 64


def pick_precision(requested: str, device: torch.device, dim: int | None = None) -> str:
    """'bf16', 'fp16' or 'fp32' for this device (and, on a CPU, a model of width `dim`)."""
    if requested != "auto":
        if requested == "fp16" and device.type != "cuda":
            raise ConfigurationError(
                f"training.precision 'fp16' needs a CUDA GPU (training on {device.type})",
                "use 'auto', 'bf16' or 'fp32'",
            )
        if requested == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigurationError(
                "training.precision 'bf16' is not supported by this GPU",
                "use 'auto' (fp16 with loss scaling) or 'fp32'",
            )
        return requested
    if device.type == "cuda":
        # fp16 needs loss scaling (the trainer's GradScaler) but is as fast as bf16 on older GPUs.
        return "bf16" if cuda_has_fast_bf16() else "fp16"
    if device.type == "mps" and cpu_has_fast_bf16():
        return "bf16"
    if device.type == "cpu" and cpu_has_fast_bf16() and (dim is None or dim >= CPU_BF16_MIN_DIM):
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed-precision context for forward passes (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def physical_cores() -> int:
    """Physical CPU cores (not hyper-threads), falling back to the logical count."""
    try:
        pairs = set()
        physical_id = core_id = None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("physical id"):
                physical_id = line.split(":")[1].strip()
            elif line.startswith("core id"):
                core_id = line.split(":")[1].strip()
                pairs.add((physical_id, core_id))
        if pairs:
            return len(pairs)
    except OSError:
        pass
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def reuse_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the OS.

    By default every block over a few MB (activations, logits) is a fresh mmap that the kernel
    must fault in and zero, and freeing returns it, so each training step pays that again. On a
    2-core laptop-class CPU that was 190,000 page faults and 0.4 s of kernel time per step (tiny
    preset, bf16); keeping the memory made the step 20% faster (nano 16%) for about 10% more peak
    memory, which then stays flat. Linux with glibc only; elsewhere it does nothing.
    """
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # from glibc's <malloc.h>
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):  # another C library (e.g. musl): keep its defaults
        return False


def set_threads(requested: int = 0, processes: int = 1) -> int:
    """Set torch's CPU thread count (0 = physical cores, shared by `processes` processes of one
    run on this machine) and return it.

    Also calls reuse_freed_memory(), since it is the CPU setup every entry point runs first.
    """
    threads = requested or max(1, physical_cores() // processes)
    try:  # never more than this process may use (containers, taskset)
        threads = min(threads, len(os.sched_getaffinity(0)))
    except AttributeError:
        pass
    torch.set_num_threads(max(1, threads))
    reuse_freed_memory()
    return torch.get_num_threads()


def device_name(device: torch.device, threads: int) -> str:
    """'cuda (NVIDIA H100 80GB HBM3)', 'mps (Apple GPU)' or 'cpu (2 threads)'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({threads} threads)"


@functools.cache
def _statm(pid: int) -> int:
    """/proc/self/statm, opened once per process (a read is then 1 us instead of 30: logging
    reads it at every log line)."""
    return os.open(f"/proc/{pid}/statm", os.O_RDONLY)


def memory_mb(device: torch.device) -> dict[str, float]:
    """What this process holds now, in MB: resident memory ('rss_mb') and, on a CUDA GPU, the
    memory its tensors occupy ('gpu_mb'). Cheap enough to read at every log line."""
    usage: dict[str, float] = {}
    try:  # Linux: the second number of statm is resident pages
        pages = int(os.pread(_statm(os.getpid()), 200, 0).split()[1])
        usage["rss_mb"] = round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        import resource  # elsewhere only the peak is known (KB on Linux, bytes on macOS)

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        usage["rss_mb"] = round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)
    if device.type == "cuda":
        usage["gpu_mb"] = round(torch.cuda.memory_allocated(device) / 2**20, 1)
    return usage


def device_memory(device: torch.device, processes: int = 1) -> int | None:
    """Bytes one of `processes` training processes on this machine can use on `device`: the
    GPU's memory (one GPU per process), or a share of the RAM for a CPU (and for Apple GPUs,
    which use it). None when unknown."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    if device.type == "mps" and hasattr(torch.mps, "recommended_max_memory"):
        return torch.mps.recommended_max_memory()
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // processes
    except (AttributeError, OSError, ValueError):  # e.g. Windows
        return None


def describe(device: torch.device, precision: str, threads: int, compiled: bool = False,
             checkpointing: bool = False) -> str:
    """One line saying what was chosen, printed at the start of every run."""
    where = device_name(device, threads)
    scaler = " + loss scaling" if precision == "fp16" else ""
    extras = "".join((" | torch.compile" if compiled else "",
                      " | gradient checkpointing" if checkpointing else ""))
    return f"device: {where} | precision: {precision}{scaler}{extras}"
