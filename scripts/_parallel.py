"""Shared by the training scripts: run independent training jobs side by side."""

from __future__ import annotations

from typing import Callable


def run_jobs(fn: Callable, jobs: list, workers: int) -> list:
    """``[fn(job) for job in jobs]``, on ``workers`` forked processes when more than one (each job on one core; the
    caller sets what the jobs share before calling, so that fork passes it on instead of pickling it per job)."""
    if workers > 1 and len(jobs) > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return pool.map(fn, jobs)
    return [fn(job) for job in jobs]


def save_network(state: dict, path) -> None:
    """Save a trained network's state as soon as it is trained, whole or not at all (written aside, then renamed),
    so that a run stopped part way keeps every network it finished and none half-written."""
    import torch

    torch.save(state, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").rename(path)


def training_environment() -> dict:
    """What a trained network's exact bytes depend on besides the script and the data: the same command rebuilds them
    bit for bit on one machine, but not across torch builds or processors (twenty-third session, docs/crowds.md)."""
    import platform

    import cv2
    import numpy as np
    import torch

    return {"torch": torch.__version__, "numpy": np.__version__, "opencv": cv2.__version__,
            "python": platform.python_version(), "machine": platform.machine(), "processor": _cpu_model()}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        import platform

        return platform.processor()


def add_machine_arguments(ap, width: float) -> None:
    """The options both CNN training scripts share: the network's width and where it trains."""
    ap.add_argument("--width", type=float, default=width, help="channel multiplier of the CNN (build_net)")
    ap.add_argument("--device", default="cpu", help='where the networks train: "cpu" or "cuda" (a GPU machine)')
