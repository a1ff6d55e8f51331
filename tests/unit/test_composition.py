"""bootstrap() is the one composition root, and the controller side never imports the
worker: queue configuration (adapters/queue.py) is apart from task registration
(agent/tasks.py), which imports bootstrap."""
from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from sandbox.bootstrap import bootstrap
from sandbox.config import load
from sandbox.controller.web import create_app
services = bootstrap(load({"SANDBOX_HOME": sys.argv[1]}))
create_app(services.settings, services)
print(sorted(m for m in ("sandbox.agent.tasks", "sandbox.runner", "opendp", "celery") if m in sys.modules))
"""


def test_the_app_and_its_services_import_no_worker_no_runner_and_no_opendp(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_worker_registers_its_tasks_on_the_configured_app(tmp_path):
    from sandbox.adapters.queue import celery_app
    from sandbox.agent.tasks import register_tasks
    from sandbox.config import load
    settings = load({"SANDBOX_HOME": str(tmp_path)})
    app = register_tasks(settings)
    assert app is celery_app(settings)
    assert {"sandbox.run_job", "sandbox.run_block", "sandbox.sweep"} <= set(app.tasks)
    # Kombu's filesystem transport keeps its control folder under the broker directory,
    # not in the working directory (where it once ended up committed as control/).
    assert app.conf.broker_transport_options["control_folder"].startswith(str(settings.broker_dir))
