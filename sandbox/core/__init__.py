"""The core: pure rules. Policies, budget arithmetic, the job state machine and its one
transition function, permissions, admission, specs, DP accounting, the release gate and
disclosure checks, the audit chain, and the ports (Protocols) the edges implement.

Imports nothing of the package outside itself and no framework (Flask, Celery, Docker,
SQLAlchemy); it does use pure data libraries where they do the work (PyYAML for policy
files with line numbers, pandas for reading output tables in the disclosure checks).
tests/unit/test_domain_imports.py enforces this. It ships inside the runner image.
"""
