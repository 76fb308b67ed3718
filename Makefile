# The two commands a fresh machine needs; see README.md.
.PHONY: demo test lint bench

demo:
	scripts/demo.sh

test:
	scripts/test.sh

lint:
	scripts/bootstrap.sh --dev
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy

bench:
	scripts/bootstrap.sh --dev
	.venv/bin/python bench/bench_api.py
