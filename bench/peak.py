"""Peak memory of the calling process, for the benchmark's engine subprocesses.

Not ru_maxrss: Linux carries a process's ru_maxrss across execve, and a forked child starts
with its parent's resident size, so every engine would report at least the size of the
benchmark driver (0.42 GiB after it generated the 50M dataset). VmHWM belongs to the
process's own address space, which execve replaces. Standard library only: the peers'
virtualenvs import this too.
"""
from __future__ import annotations

import resource


def peak_rss_kib() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
