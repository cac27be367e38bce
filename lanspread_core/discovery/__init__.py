"""Discovery backends: how peers learn each other's control addresses."""
