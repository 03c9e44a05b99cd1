import subprocess
import sys


def test_import_xned_loads_no_heavy_modules():
    code = (
        "import sys, xned, xned.types, xned.errors; "
        "print(' '.join(m for m in ('torch', 'transformers', 'optimum', 'onnxruntime', 'onnx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_import_loads_no_onnxruntime():
    code = (
        "import sys, xned.cli.main; "
        "print(' '.join(m for m in ('torch', 'transformers', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
