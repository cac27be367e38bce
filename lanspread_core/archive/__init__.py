"""Archives as the core sees them: the provider protocol, entry safety, and the tree writer
(the only way onto disk).
"""
