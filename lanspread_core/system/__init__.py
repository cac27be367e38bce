"""What the operating system gives the rest of the core: atomic writes, free space, fault points,
portability.
"""
