"""The domain: policies, budget arithmetic, the job state machine, checks.

Imports only the standard library (and pure data helpers), never Flask,
Celery, Docker or SQLAlchemy; tests/unit/test_domain_imports.py enforces it.
"""
