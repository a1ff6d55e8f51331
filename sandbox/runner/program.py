"""Program mode inside the box: run the operator's function on ONE block.

The box holds only this block at /data and the operator's file at /job/program.py.
This launcher (trusted) starts a fresh interpreter (`python -I`: no PYTHON* variables,
no user site, no script directory on sys.path) under rlimits and a wall-clock timeout;
that child reads /data into pandas, imports the program and calls the entrypoint once.
The launcher then writes /out/vector.json:

    {"status": "ok", "vector": [...]}            the child's return value, as JSON
    {"status": "error" | "timeout" | "not_json"}  what went wrong, nothing more

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

    job.timeout_seconds is the child's whole wall clock (and CPU) limit: the host adds
    its allowance for starting Python and reading the block to the contract's timeout."""
    if job.get("kind") != "program_block":
        raise ValueError(f"not a program block job: kind={job.get('kind')!r}")
    program = Path(job.get("program", "/job/program.py"))
    entrypoint = job.get("entrypoint", "analyse")
    timeout = job.get("timeout_seconds")
    memory_mb = job.get("memory_mb")
    if not isinstance(entrypoint, str) or not entrypoint.isidentifier():
        raise ValueError("job.entrypoint must be an identifier")
    for name, v in (("timeout_seconds", timeout), ("memory_mb", memory_mb)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"job.{name} must be a positive integer")
    if not program.is_file():
        raise FileNotFoundError(f"{program} not found")
    out_dir = Path(job.get("out_dir", "/out"))
    data_dir = Path(job.get("data_dir", "/data"))

    status = _run_child(program, entrypoint, data_dir, timeout, memory_mb)
    _write_vector(out_dir, status)
    return status


def _run_child(program: Path, entrypoint: str, data_dir: Path, timeout: int, memory_mb: int) -> dict:
    wall = timeout
    address_space = (memory_mb + ADDRESS_SPACE_ALLOWANCE_MB) << 20

    def limits() -> None:
        # Runs between fork and exec. The launcher imports no threaded library, so a
        # preexec_fn is safe here. CPU time bounds a child that hides from the wall
        # clock; address space bounds memory where no memory cgroup does.
        _lower(resource.RLIMIT_CPU, wall, wall + 1)
        _lower(resource.RLIMIT_AS, address_space, address_space)
        _lower(resource.RLIMIT_CORE, 0, 0)

    with tempfile.TemporaryFile() as result_file, tempfile.TemporaryFile() as log:
        argv = [sys.executable, "-I", "-c", CHILD, str(program), entrypoint, str(data_dir),
                str(result_file.fileno())]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                pass_fds=(result_file.fileno(),), cwd=tempfile.gettempdir(),
                                start_new_session=True, preexec_fn=limits,
                                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp",
                                     "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"})
        timed_out = False
        try:
            proc.wait(timeout=wall)
        except subprocess.TimeoutExpired:
            timed_out = True
        # Whatever happened, nothing the child started keeps running (processes that
        # left its session die with the box).
        _kill_group(proc.pid)
        proc.wait()
        _forward_log(log)
        if timed_out or proc.returncode == -signal.SIGXCPU:
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
