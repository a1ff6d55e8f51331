"""The per-host CPU pool: boxes hold whole CPUs exclusively, across threads and processes,
and a holder that dies gives its CPUs back."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from sandbox.agent.backends import Limits
from sandbox.agent.backends.cpuslots import CpuSlots, box_cpus, cpu_list, pin_process_tree

HOLD_IN_CHILD = """
import sys, time
from sandbox.agent.backends.cpuslots import CpuSlots
with CpuSlots(sys.argv[1], [0, 1, 2]).hold(1) as cpus:
    print(*cpus, flush=True)
    time.sleep(60)
"""


def test_holders_get_disjoint_cpus_until_the_pool_is_empty(tmp_path):
    pool = CpuSlots(tmp_path, [0, 1, 2])
    with pool.hold(1) as a, pool.hold(2) as b:
        assert len(a) == 1 and len(b) == 2 and not set(a) & set(b)
        assert set(a) | set(b) == {0, 1, 2}
        with pytest.raises(TimeoutError):
            with pool.hold(1, timeout=0.2):
                pass


def test_released_cpus_can_be_held_again(tmp_path):
    pool = CpuSlots(tmp_path, [4, 5])
    with pool.hold(2) as first:
        pass
    with pool.hold(2, timeout=1) as again:
        assert again == first == (4, 5)


def test_a_waiting_holder_gets_the_cpu_when_it_is_released(tmp_path):
    pool = CpuSlots(tmp_path, [3], poll_seconds=0.01)
    got, released_at = [], []

    def wait_for_it():
        with pool.hold(1, timeout=10) as cpus:
            got.append((cpus, time.monotonic()))

    with pool.hold(1):
        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        time.sleep(0.3)
        assert got == []                     # threads of one process exclude each other too
        released_at.append(time.monotonic())
    waiter.join(10)
    assert got and got[0][0] == (3,) and got[0][1] >= released_at[0]


def test_a_request_takes_all_its_cpus_or_none(tmp_path):
    # Holding one CPU while waiting for a second could deadlock two such requests.
    pool = CpuSlots(tmp_path, [0, 1])
    with pool.hold(1) as held:
        with pytest.raises(TimeoutError):
            with pool.hold(2, timeout=0.2):
                pass
        free = ({0, 1} - set(held)).pop()
        with pool.hold(1, timeout=1) as other:
            assert other == (free,)


def test_separate_processes_share_one_pool_and_a_dead_holder_frees_its_cpu(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    child = subprocess.Popen([sys.executable, "-c", HOLD_IN_CHILD, str(tmp_path)], stdout=subprocess.PIPE,
                             text=True, env=env)
    pool = CpuSlots(tmp_path, [0, 1, 2])
    with child:
        try:
            theirs = int(child.stdout.readline())
            with pool.hold(2, timeout=5) as mine:
                assert theirs not in mine
            with pytest.raises(TimeoutError):
                with pool.hold(3, timeout=0.2):
                    pass
        finally:
            child.kill()
    with pool.hold(3, timeout=5) as everything:     # the kernel dropped the dead holder's lock
        assert everything == (0, 1, 2)


def test_a_box_takes_whole_cpus_for_its_quota_within_the_pool(tmp_path):
    pool = CpuSlots(tmp_path, [0, 1])
    assert [pool.size_for(c) for c in (0.1, 1.0, 1.5, 2.0, 8.0)] == [1, 1, 2, 2, 2]
    with box_cpus(Limits(cpus=1.5), pool) as cpus:
        assert cpus == (0, 1)
    with box_cpus(Limits(cpuset=(1,)), pool) as cpus:   # named by the caller: taken as given
        assert cpus == (1,)
    with box_cpus(Limits(), None) as cpus:              # no pool: not pinned
        assert cpus is None


def test_the_pool_defaults_to_the_cpus_this_process_may_use(tmp_path):
    assert CpuSlots(tmp_path).cpus == tuple(sorted(os.sched_getaffinity(0)))
    assert cpu_list([3, 0, 2]) == "0,2,3"
    with pytest.raises(ValueError):
        CpuSlots(tmp_path, [])


def test_pinning_a_process_tree_reaches_its_threads_and_children(tmp_path):
    code = ("import os, subprocess, sys, threading, time\n"
            "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = None
    with parent:
        try:
            child = int(parent.stdout.readline())
            target = {min(os.sched_getaffinity(0))}
            pin_process_tree(parent.pid, target)
            tids = [int(t) for pid in (parent.pid, child) for t in os.listdir(f"/proc/{pid}/task")]
            assert len(tids) >= 3
            assert all(os.sched_getaffinity(t) == target for t in tids)
        finally:
            if child is not None:
                os.kill(child, signal.SIGKILL)
            parent.kill()
