# The two entry points of the README. Each installs what it needs first (scripts/setup.sh).
.PHONY: setup demo test test-fast

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/speechunits demo --out out/demo

test: setup
	.venv/bin/python -m pytest -n 2 -q

test-fast: setup
	.venv/bin/python -m pytest -n 2 -q -m "not slow"
