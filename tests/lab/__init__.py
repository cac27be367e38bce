"""Tests that need root: network namespaces (the LAN lab) and tmpfs mounts."""
