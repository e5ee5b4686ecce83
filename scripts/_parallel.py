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
