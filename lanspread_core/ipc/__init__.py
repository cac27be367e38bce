"""The local control socket: the JSONL session codec, its server inside the peer and the client
commands use.
"""
