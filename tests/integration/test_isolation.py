"""The isolation backends, for real: every test runs a Python snippet in a real box.

Backends: "docker" (runc), "docker-runsc" (gVisor, when registered), "bwrap".
Docker tests skip loudly when no daemon/image is here, and FAIL instead when
SANDBOX_REQUIRE_DOCKER=1 (CI). Likewise SANDBOX_REQUIRE_RUNSC=1 / SANDBOX_REQUIRE_BWRAP=1.
"""
from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest

from sandbox.config import REPO_ROOT, load
from sandbox.agent.backends import LOG_CAP_BYTES, BackendUnavailable, Limits, RunRequest
from sandbox.agent.backends.bwrap import BwrapBackend
from sandbox.agent.backends.docker import LABEL, DockerBackend
from sandbox.agent.outputs import collect_outputs
from sandbox.agent.backends.select import get_backend

BACKENDS = [
    pytest.param("docker", marks=pytest.mark.docker),
    pytest.param("docker-runsc", marks=pytest.mark.docker),
    pytest.param("bwrap", marks=pytest.mark.bwrap),
]
REQUIRED_BY = {"docker": "SANDBOX_REQUIRE_DOCKER", "docker-runsc": "SANDBOX_REQUIRE_RUNSC",
               "bwrap": "SANDBOX_REQUIRE_BWRAP"}
_checked: dict[str, object] = {}


def _make_backend(name: str):
    image = load().docker_image
    if name == "docker":
        return DockerBackend(image)
    if name == "docker-runsc":
        return DockerBackend(image, runtime="runsc")
    return BwrapBackend()


@pytest.fixture(params=BACKENDS)
def backend(request):
    name = request.param
    if name not in _checked:
        candidate = _make_backend(name)
        try:
            candidate.check()
            _checked[name] = candidate
        except BackendUnavailable as exc:
            _checked[name] = exc
    found = _checked[name]
    if isinstance(found, BackendUnavailable):
        message = (f"isolation backend {name} NOT AVAILABLE: {found} "
                   "(scripts/start-docker.sh && scripts/build-image.sh)")
        if os.environ.get(REQUIRED_BY[name]) == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture
def areas(tmp_path):
    """job/data/out directories as the worker prepares them (data world-readable, out empty)."""
    job, data, out = tmp_path / "job", tmp_path / "data", tmp_path / "out"
    for d in (job, data):
        d.mkdir()
        d.chmod(0o755)
    (data / "rows.csv").write_text("id,value\n1,42\n")
    (data / "rows.csv").chmod(0o644)
    (job / "job.json").write_text("{}")
    (job / "job.json").chmod(0o644)
    out.mkdir()
    return job, data, out


def run(backend, areas, code: str, **limits):
    job, data, out = areas
    request = RunRequest(job_dir=job, data_dir=data, out_dir=out,
                         python_args=("-c", textwrap.dedent(code)),
                         limits=Limits(**limits), label=f"test-{uuid.uuid4().hex[:8]}")
    return backend.run(request)


# -- the box ----------------------------------------------------------------------------------

def test_a_job_reads_data_and_writes_its_output(backend, areas):
    result = run(backend, areas, """
        import os
        rows = open("/data/rows.csv").read()
        open("/out/x", "w").write(rows.upper())
        print("done", os.getcwd())
    """)
    assert result.ok, result
    assert result.stdout == b"done /tmp\n"
    assert (areas[2] / "x").read_text() == "ID,VALUE\n1,42\n"


def test_the_runner_libraries_and_the_sandbox_package_import(backend, areas):
    result = run(backend, areas, """
        import opendp, polars, pyarrow, numpy, pandas, sandbox.core
        print("ok")
    """)
    assert result.ok, result.stderr[-2000:]


def test_the_box_holds_only_the_box_code(backend, areas):
    # The image and the bwrap box carry sandbox.core, .privacy and .runner: no web app,
    # store, agent or CLI code to read or import next to raw data.
    result = run(backend, areas, """
        import pkgutil, sandbox
        print(sorted(m.name for m in pkgutil.walk_packages(sandbox.__path__, "sandbox.")))
    """)
    assert result.ok, result.stderr[-2000:]
    modules = set(ast.literal_eval(result.stdout.decode()))
    assert {m.split(".")[1] for m in modules} == {"core", "privacy", "runner"}
    assert {"sandbox.runner.query", "sandbox.privacy.measurements", "sandbox.core.dp"} <= modules


def test_a_query_job_runs_on_the_box_code_alone(backend, areas):
    import pyarrow as pa
    import pyarrow.parquet as pq

    job, data, out = areas
    pq.write_table(pa.table({"pid": [1, 2, 3], "region": ["north", "south", "north"]}), data / "rows.parquet")
    (data / "rows.parquet").chmod(0o644)
    manifest = {"name": "tiny", "classification": "L2", "privacy_unit": "pid", "max_rows_per_unit": 1,
                "columns": [{"name": "pid", "type": "int64", "kind": "identifier"},
                            {"name": "region", "type": "string", "kind": "categorical",
                             "categories": ["north", "south"]}]}
    spec = {"mode": "query", "dataset": "tiny", "purpose": "isolation test",
            "queries": [{"name": "n", "statistic": "count", "group_by": ["region"], "epsilon": 1}]}
    (job / "job.json").write_text(json.dumps({"kind": "query", "spec": spec, "manifest": manifest,
                                              "data_dir": "/data", "out_dir": "/out", "bound_verified": True}))
    # 2 GB: under gVisor memory is bounded as address space, and Polars + OpenDP map ~1 GB.
    result = backend.run(RunRequest(job_dir=job, data_dir=data, out_dir=out,
                                    python_args=("-m", "sandbox.runner", "/job/job.json"),
                                    limits=Limits(memory_mb=2048), label=f"test-{uuid.uuid4().hex[:8]}"))
    assert result.ok, result.stderr[-2000:]
    table = json.loads((out / "result.json").read_text())["tables"][0]
    assert [row[0] for row in table["rows"]] == ["north", "south"]


def test_the_box_has_no_network(backend, areas):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    try:
        result = run(backend, areas, f"""
            import socket
            print(sorted(n for _, n in socket.if_nameindex()))
            for target in [("127.0.0.1", {port}), ("8.8.8.8", 53), ("172.17.0.1", 2375)]:
                try:
                    socket.create_connection(target, timeout=2).close()
                    print("CONNECTED", target)
                except OSError as exc:
                    print("refused", target, type(exc).__name__)
            try:
                socket.getaddrinfo("pypi.org", 443)
                print("RESOLVED")
            except OSError:
                print("no dns")
        """)
        with pytest.raises(OSError):
            listener.accept()
    finally:
        listener.close()
    assert result.ok, result
    assert b"CONNECTED" not in result.stdout and b"RESOLVED" not in result.stdout
    assert result.stdout.startswith(b"['lo']\n")


def test_data_job_and_root_filesystem_are_read_only(backend, areas):
    result = run(backend, areas, """
        for path in ["/data/rows.csv", "/data/new", "/job/job.json", "/usr/evil", "/evil"]:
            try:
                open(path, "a").write("x")
                print("WROTE", path)
            except OSError as exc:
                print("denied", path, exc.errno)
    """)
    assert result.ok, result
    assert b"WROTE" not in result.stdout
    assert (areas[1] / "rows.csv").read_text() == "id,value\n1,42\n"


def test_host_files_outside_the_mounts_are_invisible(backend, areas, tmp_path):
    secret = tmp_path / "host-secret.txt"
    secret.write_text("do not leak")
    secret.chmod(0o644)
    repo_var = REPO_ROOT / "var"
    result = run(backend, areas, f"""
        import os
        for path in ["/etc/shadow", {str(secret)!r}, {str(repo_var)!r}, "/root/.bash_history",
                     {str(REPO_ROOT / "pyproject.toml")!r}]:
            try:
                if os.path.isdir(path):
                    os.listdir(path)
                else:
                    open(path, "rb").read()
                print("READ", path)
            except OSError as exc:
                print("hidden", path, type(exc).__name__)
    """)
    assert result.ok, result
    assert b"READ" not in result.stdout, result.stdout


def test_the_job_runs_as_an_unprivileged_user_with_a_minimal_environment(backend, areas):
    result = run(backend, areas, """
        import os
        print(os.getuid(), os.geteuid(), os.getgid())
        caps = dict(l.split(":\\t") for l in open("/proc/self/status").read().splitlines() if l.startswith("Cap"))
        print(caps["CapEff"].strip(), caps["CapPrm"].strip(), caps["CapBnd"].strip())
        import ctypes
        print(ctypes.CDLL(None).prctl(39, 0, 0, 0, 0))   # PR_GET_NO_NEW_PRIVS
        print(sorted(os.environ))
    """)
    assert result.ok, result
    ids, caps, no_new_privs, env = result.stdout.decode().splitlines()
    uid, euid, gid = map(int, ids.split())
    assert uid == euid and uid in (10001, 65534) and gid != 0
    assert caps.split()[:2] == ["0000000000000000", "0000000000000000"]
    assert no_new_privs == "1"
    assert set(eval(env)) <= {"PATH", "HOME", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE",
                              "PYTHONHASHSEED", "LANG", "HOSTNAME", "PWD"}


def test_a_memory_bomb_is_stopped(backend, areas):
    result = run(backend, areas, """
        hog = []
        for _ in range(200):
            hog.append(bytearray(16 * 1024 * 1024))   # 3.2 GB in total, touched
        print("SURVIVED")
    """, memory_mb=128, wall_seconds=60)
    assert not result.ok
    assert b"SURVIVED" not in result.stdout
    assert not result.timed_out
    assert result.oom_killed or result.exit_code != 0
    if backend.name == "docker":
        assert result.oom_killed


def test_a_job_past_its_wall_clock_limit_is_killed(backend, areas):
    result = run(backend, areas, """
        import time
        print("started", flush=True)
        time.sleep(60)
        print("WOKE")
    """, wall_seconds=2)
    assert result.timed_out and not result.ok
    assert b"WOKE" not in result.stdout
    assert result.wall_seconds < 15


def test_a_fork_bomb_hits_the_process_limit_and_leaves_nothing_behind(backend, areas):
    marker = f"forkbomb-{uuid.uuid4().hex}"
    result = run(backend, areas, f"""
        import os, time
        # {marker}
        children = 0
        try:
            for _ in range(2000):
                if os.fork() == 0:
                    time.sleep(600)
                    os._exit(0)
                children += 1
        except OSError as exc:
            print("fork refused after", children, exc.errno)
        else:
            print("FORKED ALL", children)
    """, pids=32, wall_seconds=30)
    assert b"fork refused after" in result.stdout, result
    assert int(result.stdout.split()[3]) < 32
    survivors = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert survivors == ""


def test_stdout_and_stderr_are_capped(backend, areas):
    result = run(backend, areas, """
        import sys
        for i in range(4000):
            print("o" * 99)
            print("e" * 99, file=sys.stderr)
        print("LAST LINE")
    """)
    assert result.ok, result.stderr[-500:]
    assert 0 < len(result.stdout) <= LOG_CAP_BYTES
    assert 0 < len(result.stderr) <= LOG_CAP_BYTES
    assert result.stdout.endswith(b"LAST LINE\n")   # the tail is kept: errors come last


def test_tmp_and_output_files_are_size_limited(backend, areas):
    result = run(backend, areas, """
        import errno
        def fill(path, mb):
            try:
                with open(path, "wb") as f:
                    for _ in range(mb):
                        f.write(b"x" * 1024 * 1024)
                return "FILLED"
            except OSError as exc:
                return errno.errorcode[exc.errno]
        def fill_many(prefix, mb):   # 1 MB files, each under the per-file limit
            for i in range(mb):
                if (status := fill(f"{prefix}{i}", 1)) != "FILLED":
                    return status
            return "FILLED"
        print(fill_many("/tmp/f", 64), fill("/out/big", 8))
    """, tmp_mb=16, output_bytes=2 * 1024 * 1024)
    assert result.ok, result
    tmp, out = result.stdout.split()
    assert tmp == b"ENOSPC"
    assert out == b"EFBIG"
    assert (areas[2] / "big").stat().st_size <= 2 * 1024 * 1024


def test_links_written_by_the_job_are_refused_by_the_collector(backend, areas):
    result = run(backend, areas, """
        import os
        os.symlink("/data/rows.csv", "/out/link")
        try:
            os.link("/data/rows.csv", "/out/hard")
            print("HARDLINKED")
        except OSError as exc:
            print("no hard link", exc.errno)
        open("/out/result.json", "w").write("{}")
    """)
    assert result.ok, result
    assert b"HARDLINKED" not in result.stdout
    collected = collect_outputs(areas[2], None, max_files=16, max_total_bytes=1 << 20)
    assert collected.accepted == {"result.json": b"{}"}
    assert collected.refused == [("link", "symbolic link")]


@pytest.mark.parametrize("backend", BACKENDS[:2], indirect=True)   # the Docker ones
def test_no_container_is_left_behind(backend, areas):
    label = f"leftover-{uuid.uuid4().hex[:8]}"
    job, data, out = areas
    for code in ["print(1)", "raise SystemExit(3)", "import time; time.sleep(30)"]:
        backend.run(RunRequest(job, data, out, ("-c", code),
                               Limits(wall_seconds=2), label=label))
    listed = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", f"label={LABEL}",
         "--filter", f"label=sandbox.label={label}"],
        capture_output=True, text=True, check=True).stdout
    assert listed.strip() == ""


def test_the_exit_code_of_a_failing_job_is_reported(backend, areas):
    result = run(backend, areas, "raise SystemExit(7)")
    assert result.exit_code == 7 and not result.timed_out and not result.ok


# -- the output collector (trusted host code, no box needed) ----------------------------------

def _out(tmp_path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return out


def test_collector_accepts_regular_files_including_nested_ones(tmp_path):
    out = _out(tmp_path)
    (out / "a.csv").write_text("a")
    (out / "sub").mkdir()
    (out / "sub" / "b.json").write_text("{}")
    collected = collect_outputs(out, None, max_files=4, max_total_bytes=100)
    assert collected.accepted == {"a.csv": b"a", "sub/b.json": b"{}"}
    assert collected.ok


def test_collector_refuses_symlinks_to_files_and_directories(tmp_path):
    out = _out(tmp_path)
    secret = tmp_path / "secret"
    secret.write_text("raw")
    (out / "f").symlink_to(secret)
    (out / "d").symlink_to(tmp_path)
    collected = collect_outputs(out, None, max_files=4, max_total_bytes=100)
    assert collected.accepted == {}
    assert collected.refused == [("d", "symbolic link"), ("f", "symbolic link")]


def test_collector_refuses_hard_links(tmp_path):
    out = _out(tmp_path)
    dataset_file = tmp_path / "dataset.parquet"
    dataset_file.write_bytes(b"raw rows")
    os.link(dataset_file, out / "copy.parquet")
    collected = collect_outputs(out, None, max_files=4, max_total_bytes=100)
    assert collected.accepted == {}
    assert collected.refused == [("copy.parquet", "file has more than one hard link")]


def test_collector_refuses_fifos_without_blocking(tmp_path):
    out = _out(tmp_path)
    os.mkfifo(out / "pipe")
    collected = collect_outputs(out, None, max_files=4, max_total_bytes=100)
    assert collected.refused == [("pipe", "not a regular file (device, fifo or socket)")]


def test_collector_refuses_output_beyond_the_total_size(tmp_path):
    out = _out(tmp_path)
    (out / "a").write_bytes(b"x" * 60)
    (out / "b").write_bytes(b"y" * 60)
    collected = collect_outputs(out, None, max_files=4, max_total_bytes=100)
    assert collected.accepted == {"a": b"x" * 60}
    assert collected.refused == [("b", "total output size limit exceeded")]


def test_collector_refuses_files_beyond_the_count(tmp_path):
    out = _out(tmp_path)
    for i in range(5):
        (out / f"f{i}").write_text(str(i))
    collected = collect_outputs(out, None, max_files=3, max_total_bytes=100)
    assert sorted(collected.accepted) == ["f0", "f1", "f2"]
    assert collected.refused == [("f3", "too many output files"), ("f4", "too many output files")]


def test_collector_refuses_names_outside_the_allow_list_without_reading_them(tmp_path):
    out = _out(tmp_path)
    (out / "result.json").write_text("{}")
    (out / "raw_dump.csv").write_text("secret,row")
    collected = collect_outputs(out, {"result.json"}, max_files=4, max_total_bytes=100)
    assert collected.accepted == {"result.json": b"{}"}
    assert collected.refused == [("raw_dump.csv", "name not in the allowed output names")]
    assert "secret" not in repr(collected.refused)


def test_collector_stops_walking_a_huge_tree(tmp_path):
    out = _out(tmp_path)
    for i in range(200):
        (out / f"f{i:03}").write_text("x")
    collected = collect_outputs(out, None, max_files=2, max_total_bytes=1000)
    assert len(collected.accepted) == 2
    assert any("rest not examined" in reason for _, reason in collected.refused)


# -- selection --------------------------------------------------------------------------------

def test_an_unknown_backend_name_is_rejected():
    with pytest.raises(ValueError):
        get_backend(load({"SANDBOX_BACKEND": "chroot"}), check=False)


def test_runsc_runtime_selects_gvisor():
    backend = get_backend(load({"SANDBOX_BACKEND": "docker", "SANDBOX_DOCKER_RUNTIME": "runsc"}),
                          check=False)
    assert isinstance(backend, DockerBackend) and backend.name == "docker-runsc"


def test_auto_prefers_docker_and_falls_back_to_bwrap():
    docker_ok = DockerBackend(load().docker_image).available()
    chosen = get_backend(load({"SANDBOX_BACKEND": "auto"}))
    assert chosen.name == ("docker" if docker_ok else "bwrap")
    fallback = get_backend(load({"SANDBOX_BACKEND": "auto",
                                 "SANDBOX_IMAGE": "sandbox-runner:does-not-exist"}))
    assert fallback.name == "bwrap"
