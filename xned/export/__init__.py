"""Training-time tools: KB build, encoder export, expert training. Heavy optional
dependencies (torch, transformers, optimum) are imported inside the functions that use
them, with an install hint."""


def require(module: str, extra: str = "export"):
    """Import an optional dependency or explain how to install it."""
    import importlib

    from xned.errors import ExportError

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(
            f"This command needs the Python package {module!r}. Install the extra with: pip install 'xned[{extra}]'"
        ) from None
