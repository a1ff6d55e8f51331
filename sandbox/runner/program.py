"""Program mode inside the box: run the operator's function on ONE block.

The box holds only this block at /data and the operator's file at /job/program.py.
This launcher (trusted) starts a fresh interpreter (`python -I`: no PYTHON* variables,
no user site, no script directory on sys.path) under rlimits; that child reads /data into
pandas, imports the program and calls the entrypoint once. The launcher then writes
/out/vector.json:

    {"status": "ok", "vector": [...]}            the child's return value, as JSON
    {"status": "error" | "timeout" | "not_json"}  what went wrong, nothing more

The child's budget is CPU time (RLIMIT_CPU: SIGXCPU at job.cpu_seconds, SIGKILL a little
later), which the kernel counts per process whatever else runs on the machine: whether a
block finishes or times out depends on its own block alone, not on how busy other boxes
keep the CPUs (with a wall-clock budget, the block holding one person could starve the
others into their default, and one person would then change many blocks). job.wall_seconds
is only a generous backstop for a child that waits instead of computing (sleeps, blocks):
it uses no CPU, so it slows no one, and it too gets "timeout".

The child runs as the same uid in the same box, so it could overwrite vector.json
itself: the host treats the file exactly like the return value of analyse(), i.e.
untrusted (sandbox.agent.aggregation validates, clamps, and substitutes the default). The launcher
exits 0 whenever it wrote vector.json; a failing block is a normal outcome.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

VECTOR_FILE = "vector.json"
MAX_RESULT_BYTES = 64 * 1024
LOG_TAIL_BYTES = 16 * 1024
# Importing pyarrow/pandas maps about 1 GB of address space before any data is read.
ADDRESS_SPACE_ALLOWANCE_MB = 1024
# CPU seconds between SIGXCPU (the soft limit: the default action ends the child) and
# SIGKILL (the hard limit), for a child that ignores or handles SIGXCPU.
CPU_KILL_GRACE_SECONDS = 2

# Runs in the child. It is the operator's process from the moment the program is
# imported, so nothing it reports is trusted; it only has to be convenient for
# honest programs (numpy/pandas return types become plain floats).
CHILD = r"""
import json, os, sys
program, entrypoint, data_dir, fd = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
out = os.fdopen(fd, "w", encoding="utf-8")

def emit(obj):
    out.seek(0)
    out.truncate()
    out.write(json.dumps(obj, allow_nan=True))
    out.flush()

emit({"status": "error"})
import glob, importlib.util, numbers
import pyarrow.parquet as pq
files = sorted(glob.glob(os.path.join(data_dir, "*.parquet")))
tables = [pq.read_table(f) for f in files]
import pyarrow as pa
df = (pa.concat_tables(tables) if tables else pa.table({})).to_pandas()
del tables
spec = importlib.util.spec_from_file_location("analyst_program", program)
module = importlib.util.module_from_spec(spec)
sys.modules["analyst_program"] = module
spec.loader.exec_module(module)
result = getattr(module, entrypoint)(df)
if hasattr(result, "tolist") and not isinstance(result, (list, tuple)):
    result = result.tolist()

def number(x):
    if hasattr(x, "item") and not isinstance(x, (list, tuple, dict)):
        try:
            x = x.item()
        except Exception:
            return None
    if isinstance(x, bool):
        return x
    if isinstance(x, numbers.Real):
        try:
            return float(x)
        except (OverflowError, ValueError, TypeError):
            return float("inf")
    return None

if isinstance(result, (list, tuple)):
    emit({"status": "ok", "vector": [number(x) for x in result]})
else:
    emit({"status": "ok", "vector": None})
"""


def run_program_block(job: dict) -> dict:
    """Run the block described by job and write out_dir/vector.json. Returns what it wrote.

    job.cpu_seconds is the child's CPU budget (the host adds its allowance for starting
    Python and reading the block to the contract's timeout); job.wall_seconds is the
    wall-clock backstop."""
    if job.get("kind") != "program_block":
        raise ValueError(f"not a program block job: kind={job.get('kind')!r}")
    program = Path(job.get("program", "/job/program.py"))
    entrypoint = job.get("entrypoint", "analyse")
    cpu_seconds = job.get("cpu_seconds")
    wall_seconds = job.get("wall_seconds")
    memory_mb = job.get("memory_mb")
    if not isinstance(entrypoint, str) or not entrypoint.isidentifier():
        raise ValueError("job.entrypoint must be an identifier")
    for name, v in (("cpu_seconds", cpu_seconds), ("memory_mb", memory_mb)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"job.{name} must be a positive integer")
    # RLIMIT_CPU counts whole seconds; the wall-clock backstop may be a fraction.
    if isinstance(wall_seconds, bool) or not isinstance(wall_seconds, (int, float)) or not wall_seconds > 0:
        raise ValueError("job.wall_seconds must be a positive number")
    if not program.is_file():
        raise FileNotFoundError(f"{program} not found")
    out_dir = Path(job.get("out_dir", "/out"))
    data_dir = Path(job.get("data_dir", "/data"))

    status = _run_child(program, entrypoint, data_dir, cpu_seconds, wall_seconds, memory_mb)
    _write_vector(out_dir, status)
    return status


def _run_child(program: Path, entrypoint: str, data_dir: Path, cpu_seconds: int, wall_seconds: float,
               memory_mb: int) -> dict:
    address_space = (memory_mb + ADDRESS_SPACE_ALLOWANCE_MB) << 20

    def limits() -> None:
        # Runs between fork and exec. The launcher imports no threaded library, so a
        # preexec_fn is safe here. Address space bounds memory where no memory cgroup does.
        _lower(resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + CPU_KILL_GRACE_SECONDS)
        _lower(resource.RLIMIT_AS, address_space, address_space)
        _lower(resource.RLIMIT_CORE, 0, 0)

    with tempfile.TemporaryFile() as result_file, tempfile.TemporaryFile() as log:
        argv = [sys.executable, "-I", "-c", CHILD, str(program), entrypoint, str(data_dir),
                str(result_file.fileno())]
        before = _children_cpu_seconds()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                pass_fds=(result_file.fileno(),), cwd=tempfile.gettempdir(),
                                start_new_session=True, preexec_fn=limits,
                                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp",
                                     "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"})
        timed_out = False
        try:
            proc.wait(timeout=wall_seconds)
        except subprocess.TimeoutExpired:
            timed_out = True
        # Whatever happened, nothing the child started keeps running (processes that
        # left its session die with the box).
        _kill_group(proc.pid)
        proc.wait()
        # The launcher has no other children: this is the child's CPU time (and that of
        # any process it waited for).
        used = _children_cpu_seconds() - before
        _forward_log(log)
        over_budget = proc.returncode == -signal.SIGXCPU or (
            proc.returncode == -signal.SIGKILL and used >= cpu_seconds)
        if timed_out or over_budget:
            _note(f"block stopped: {'wall-clock backstop' if timed_out else 'CPU budget'} "
                  f"(CPU {used:.2f} s of {cpu_seconds} s, wall limit {wall_seconds} s)")
            return {"status": "timeout"}
        if proc.returncode != 0:
            return {"status": "error"}
        result_file.seek(0)
        raw = result_file.read(MAX_RESULT_BYTES + 1)
    if len(raw) > MAX_RESULT_BYTES:
        return {"status": "not_json"}
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        return {"status": "not_json"}
    if not isinstance(parsed, dict) or parsed.get("status") != "ok":
        return {"status": "error"}
    return {"status": "ok", "vector": parsed.get("vector")}


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _note(line: str) -> None:
    # The launcher's own word, for the compliance run log (after the program's output).
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _lower(which: int, soft: int, hard: int) -> None:
    # Only ever tighten: the box may already set a lower hard limit, which we cannot raise.
    _, current_hard = resource.getrlimit(which)
    if current_hard != resource.RLIM_INFINITY:
        hard = min(hard, current_hard)
        soft = min(soft, hard)
    resource.setrlimit(which, (soft, hard))


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _forward_log(log) -> None:
    # Compliance-only: the box's stderr goes to the run log, never to the operator.
    size = log.seek(0, os.SEEK_END)
    log.seek(max(0, size - LOG_TAIL_BYTES))
    tail = log.read()
    if tail:
        sys.stderr.write(f"--- program output (last {len(tail)} of {size} bytes) ---\n")
        sys.stderr.write(tail.decode("utf-8", "replace"))
        sys.stderr.write("\n")
        sys.stderr.flush()


def _write_vector(out_dir: Path, status: dict) -> None:
    """Atomic replace, so a vector.json the child may have planted is overwritten."""
    body = json.dumps(status, allow_nan=True, separators=(",", ":"))
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".vector-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_dir / VECTOR_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
