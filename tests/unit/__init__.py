"""Tests that run in this process: one module or the CLI, with real files and loopback sockets."""
