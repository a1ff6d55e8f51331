"""OpenDP measurements: the only package that imports OpenDP, so every release's noise
and its privacy-map check are in one place (DESIGN.md section 3).

Every measurement is built from public parameters (scale, sensitivity, epsilon, bounds)
and checked against OpenDP's own privacy map before it sees a number. It runs both in
the box (query mode, sandbox.runner.query) and on the host (program mode's aggregate of
k block vectors, sandbox.agent.aggregation), so it imports only sandbox.core and OpenDP.
"""
