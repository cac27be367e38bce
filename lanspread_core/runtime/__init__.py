"""The running peer: lifecycle, request handlers, peer sync and liveness, operations, events and
the supervisor.
"""
