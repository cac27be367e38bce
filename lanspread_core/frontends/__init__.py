"""Built-in front-ends: ``jsonl`` (scripting harness) and ``console`` (people)."""
