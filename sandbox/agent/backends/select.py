"""Pick the isolation backend named by the settings."""
from __future__ import annotations

from sandbox.config import Settings
from sandbox.agent.backends import BackendUnavailable, IsolationBackend


def get_backend(settings: Settings, *, check: bool = True) -> IsolationBackend:
    """settings.backend: "docker", "bwrap", or "auto" (Docker when the daemon answers and the
    image is built, else bubblewrap). settings.docker_runtime "runsc" runs Docker under gVisor.

    With check=True (the default) an explicitly named backend must be usable now, so a
    misconfigured worker fails at start rather than on its first job.

    Every backend of a host draws its boxes' CPUs from one pool under the settings' home,
    so no two boxes, of any job or worker there, share a CPU (cpuslots.py).
    """
    # Imported here: the docker SDK is only needed when Docker is actually chosen.
    from sandbox.agent.backends.bwrap import BwrapBackend
    from sandbox.agent.backends.cpuslots import CpuSlots
    from sandbox.agent.backends.docker import DockerBackend

    slots = CpuSlots(settings.home / "cpu-slots")
    choice = settings.backend
    if choice == "docker":
        backend = DockerBackend(settings.docker_image, settings.docker_runtime, cpu_slots=slots)
    elif choice == "bwrap":
        backend = BwrapBackend(cpu_slots=slots)
    elif choice == "auto":
        reasons = []
        for backend in (DockerBackend(settings.docker_image, settings.docker_runtime, cpu_slots=slots),
                        BwrapBackend(cpu_slots=slots)):
            try:
                backend.check()
                return backend
            except BackendUnavailable as exc:
                reasons.append(f"{backend.name}: {exc}")
        raise BackendUnavailable("no isolation backend is usable: " + "; ".join(reasons)
                                 + " (run scripts/start-docker.sh and scripts/build-image.sh)")
    else:
        raise ValueError(f"unknown isolation backend {choice!r} (docker | bwrap | auto)")
    if check:
        backend.check()
    return backend
