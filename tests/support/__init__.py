"""Helpers the tests share: the CLI, test data, real peers, the LAN lab, crafted archives."""
