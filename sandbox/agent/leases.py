"""Lease renewal by a live worker.

A claim gives the job a lease of its run bound plus a margin; the sweeper requeues a
running job whose lease has expired, taking its worker for lost. A program job's blocks
can wait in the queue behind other jobs' blocks far longer than that bound, so without
renewal a job whose worker is alive was requeued and ran twice. Each worker process
keeps a heartbeat thread that moves the lease of every job it works on forward, by the
margin, several times per margin; a killed worker stops renewing, and the sweeper
recovers its jobs one margin later, as before.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta

log = logging.getLogger(__name__)


class LeaseKeeper:
    """The jobs this process holds and the thread that renews their leases.

    `holding(job_id)` covers a task that works on the job (a run, a block); `keep(job_id)`
    holds it past the task until the job leaves `running` (a program job whose blocks
    were sent to the queue by this worker's claim)."""

    def __init__(self, repo, clock, margin_seconds: float, interval_seconds: float | None = None):
        self.repo, self.clock = repo, clock
        self.margin = timedelta(seconds=margin_seconds)
        # Four beats per margin: a late beat or a slow store still renews in time.
        self.interval = interval_seconds if interval_seconds is not None else max(0.25, margin_seconds / 4)
        self._held: Counter = Counter()
        self._kept: set[str] = set()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._stop = threading.Event()

    @contextmanager
    def holding(self, job_id: str):
        with self._lock:
            self._held[job_id] += 1
        self._start()
        try:
            yield
        finally:
            with self._lock:
                self._held[job_id] -= 1
                if self._held[job_id] <= 0:
                    del self._held[job_id]

    def keep(self, job_id: str) -> None:
        with self._lock:
            self._kept.add(job_id)
        self._start()

    def held(self) -> set[str]:
        with self._lock:
            return set(self._held) | self._kept

    def renew(self) -> list[str]:
        """One heartbeat: renew every held job; forget kept jobs no longer running."""
        ids = self.held()
        if not ids:
            return []
        running = set(self.repo.renew_leases(sorted(ids), self.clock() + self.margin))
        with self._lock:
            self._kept &= running
        return sorted(running)

    def stop(self) -> None:
        self._stop.set()

    def _start(self) -> None:
        # One thread per process, started on first use: a prefork child starts its own
        # (threads do not survive fork), and nothing runs at import time.
        pid = os.getpid()
        with self._lock:
            if self._pid == pid:
                return
            self._pid = pid
            self._stop = threading.Event()
        threading.Thread(target=self._beat, args=(self._stop,), name="sandbox-leases", daemon=True).start()

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            try:
                self.renew()
            except Exception:  # noqa: BLE001 - the next beat retries; the margin absorbs a few misses
                log.exception("lease renewal failed")
