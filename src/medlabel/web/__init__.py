"""The HTTP layer: FastAPI routers, authentication, one error mapping, the static UI."""
