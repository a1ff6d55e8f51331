"""Data owners' policies: one YAML file per dataset in `policies/`.

`model` holds what a policy says (Policy, Licence, Budget, ResourceLimits and the rules of
each classification level), `file` reads and checks an owner's file and diffs two versions
of it, and `reader` is the YAML walker that keeps every value's line for the messages.
"""
