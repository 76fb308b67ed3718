# The two commands a fresh machine needs; see README.md.
.PHONY: demo test lint bench frontend openapi

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

# The front end alone (frontend/dist); `make test` does this with its checks.
frontend:
	scripts/build-frontend.sh --check

# After changing the API: refresh the OpenAPI snapshot and the TypeScript types made from it.
openapi:
	scripts/bootstrap.sh
	.venv/bin/python scripts/dump_openapi.py frontend/src/api/openapi.json
	scripts/build-frontend.sh
	cd frontend && npm run --silent gen:api
