"""Moving a game between peers: manifest choice, the chunk planner, downloads, stream-install send
and receive.
"""
