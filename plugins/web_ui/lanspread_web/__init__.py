"""lanspread-web: the peer's own web page, a front-end registered like any plugin."""
