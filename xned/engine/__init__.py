"""Run-time engine: nothing here imports torch, transformers or ``xned.export``."""
