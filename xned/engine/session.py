"""ONNX Runtime sessions: the execution providers a run asks for (those this onnxruntime
lacks fall back to the CPU with a warning) and the session options every xned session uses."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xned.engine.bundle import REBUILD_HINT
from xned.errors import BundleError, InputError

#: ``--device`` -> the execution providers asked for, best first (the CPU is always added last).
#: ``auto``: an accelerator this onnxruntime has, else the CPU. OpenVINO on a CPU is not in
#: ``auto``: with the int8 encoder it ran slower than the CPU provider on the machines
#: measured (docs: results/performance).
DEVICES: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider",),
    "openvino": ("OpenVINOExecutionProvider",),
    "coreml": ("CoreMLExecutionProvider",),
    "directml": ("DmlExecutionProvider",),
}
AUTO = ("CUDAExecutionProvider", "CoreMLExecutionProvider", "DmlExecutionProvider")


def cpu_int8_flags() -> list[str]:
    """This machine's CPU flags that decide int8 speed (about 3x between AVX2 alone and
    AVX-512 VNNI): reported beside every speed figure (``xned bench``, ``benchmarks/``)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted(f for f in set(flags) if f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"))


def device_providers(device: str) -> list[str]:
    """The execution providers of ``--device`` (see ``DEVICES``); ``InputError`` naming the
    choices for another value."""
    if device == "auto":
        import onnxruntime as ort

        have = ort.get_available_providers()
        return [p for p in AUTO if p in have][:1] + ["CPUExecutionProvider"]
    if device not in DEVICES:
        raise InputError(f"Unknown --device {device!r}; choose one of auto, {', '.join(DEVICES)}.")
    return [*DEVICES[device], "CPUExecutionProvider"] if device != "cpu" else ["CPUExecutionProvider"]


def choose_providers(requested: Sequence[str] | None) -> list[str]:
    """Requested execution providers that this onnxruntime has, CPU last; warn for the rest."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if not requested:
        return ["CPUExecutionProvider"]
    chosen = [p for p in requested if p in available]
    missing = [p for p in requested if p not in available]
    if missing:
        warnings.warn(
            f"Execution provider(s) {', '.join(missing)} not available in this onnxruntime "
            f"(has: {', '.join(available)}); falling back to CPUExecutionProvider.",
            RuntimeWarning,
            stacklevel=3,
        )
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def create_session(path: Path, threads: int | None, providers: list[str]) -> Any:
    """An ``InferenceSession`` of the model ``path`` on ``providers`` (as ``choose_providers`` gives them)
    with ``threads`` intra-op threads, no spinning (spin-waiting threads burn the cores other
    processes and workers need) and every graph optimization."""
    import onnxruntime as ort

    if not path.is_file():
        raise BundleError(f"Encoder model {path} is missing; {REBUILD_HINT}.")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:
        raise BundleError(f"Encoder model {path} cannot be loaded ({exc}); {REBUILD_HINT}.") from None
    if providers and providers[0] != "CPUExecutionProvider" and (failed := _cannot_run(session)) is not None:
        # An accelerator can accept a graph and then fail on it at the first run (OpenVINO on
        # the per-row int8 encoder: "FakeQuantize ... Argument shapes are inconsistent").
        warnings.warn(
            f"{providers[0]} cannot run the encoder {path} ({failed}); falling back to CPUExecutionProvider.",
            RuntimeWarning,
            stacklevel=3,
        )
        session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    return session


def _cannot_run(session: Any) -> str | None:
    """Why ``session`` fails on a small batch (two rows of four tokens), or None if it runs."""
    feed = {}
    for i in session.get_inputs():
        feed[i.name] = np.zeros((2, 4), np.int64) if i.name == "token_type_ids" else np.ones((2, 4), np.int64)
    try:
        session.run(None, feed)
    except Exception as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return (lines[-1] if lines else type(exc).__name__)[:300]
    return None


__all__ = ["DEVICES", "choose_providers", "create_session", "device_providers"]
