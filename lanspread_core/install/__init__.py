"""Install, update, uninstall and remove-download as crash-safe transactions, their intents and
unpack logs.
"""
