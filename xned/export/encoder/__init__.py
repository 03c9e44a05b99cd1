"""Encoder export: the base encoder from PyPI wheels, Optimum export with int8 and validation, pruning, checks."""
