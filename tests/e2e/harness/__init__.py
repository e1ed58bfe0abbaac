"""Helpers of the live end-to-end suite, small enough to be unit-tested without a cluster.

Each module has one job (waiting, commands, kubectl, port-forward, request loop, TLS to
the ingress, prerequisites, images with extra migrations, skaffold output); the unit
tests in tests/e2e/unit run them against local stand-ins.
"""
