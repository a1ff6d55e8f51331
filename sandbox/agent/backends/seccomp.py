"""The seccomp profile for boxes under gVisor (runsc --oci-seccomp).

Under runc the box keeps Docker's own default profile (an allowlist). Under gVisor that
profile cannot be used as is: this runsc answers the profile's clone3 rule with EPERM
instead of the ENOSYS Docker asks for, so glibc never falls back to clone() and no
thread can start (Python, Polars and OpenDP all need threads). gVisor is already the
kernel the box talks to; the filter is defence in depth, so a denylist of what a job has
no business doing suffices: creating namespaces (the suite's `namespaces_then_mount`
attack), mounting, tracing other processes, kernel keyrings, modules, BPF and the like.
clone3 is left to gVisor, which does not implement it and returns ENOSYS itself.
"""
from __future__ import annotations

import json

# Namespace flags of clone(2); each gets its own rule (seccomp compares one masked value).
_CLONE_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)

_DENIED = (
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot",
    "fsopen", "fsmount", "fsconfig", "fspick", "move_mount", "open_tree", "mount_setattr",
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
    "keyctl", "add_key", "request_key",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "bpf", "perf_event_open", "userfaultfd", "open_by_handle_at", "name_to_handle_at",
    "swapon", "swapoff", "reboot", "settimeofday", "clock_settime", "acct", "quotactl",
    "lookup_dcookie", "vhangup", "iopl", "ioperm", "syslog", "uselib", "nfsservctl",
)


def gvisor_profile() -> dict:
    rules = [{"names": list(_DENIED), "action": "SCMP_ACT_ERRNO"}]
    rules += [{"names": ["clone"], "action": "SCMP_ACT_ERRNO",
               "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}]}
              for flag in _CLONE_NAMESPACE_FLAGS]
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": rules}


def gvisor_security_opt() -> str:
    """Docker's API takes the profile's JSON text, not a path."""
    return "seccomp=" + json.dumps(gvisor_profile(), separators=(",", ":"))
