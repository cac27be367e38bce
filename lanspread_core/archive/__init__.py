"""Archives as the core sees them: the provider protocol, entry-path rules, and the tree writer
(the only way onto disk).
"""
