"""Layering rules, checked on the source with ``ast`` (nothing is imported).

* ``medlabel.domain`` is the pure core: no web framework, database, HTTP, CLI, file-format
  or password-hashing library, and no other medlabel layer (storage, services, web);
* neither the domain nor the services import the web layer (the services are used by the
  CLI and by workers too, and must not depend on HTTP).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import medlabel

PACKAGE_ROOT = Path(medlabel.__file__).resolve().parent
DOMAIN = PACKAGE_ROOT / "domain"
SERVICES = PACKAGE_ROOT / "services"

FORBIDDEN_IN_DOMAIN = frozenset(
    {
        "fastapi",
        "starlette",
        "sqlalchemy",
        "alembic",
        "pydicom",
        "nibabel",
        "highdicom",
        "PIL",
        "openslide",
        "tifffile",
        "psycopg",
        "httpx",
        "uvicorn",
        "typer",
        "argon2",
        "pydantic",
    }
)


def _package_of(path: Path) -> list[str]:
    rel = path.relative_to(PACKAGE_ROOT.parent).with_suffix("")
    return list(rel.parts[:-1])  # the package of both pkg/mod.py and pkg/__init__.py


def imported_modules(source: str, path: Path) -> Iterator[tuple[int, str]]:
    """Every module a source file imports (anywhere: functions, TYPE_CHECKING blocks, and
    ``importlib.import_module``/``__import__`` with a literal name), as absolute names."""
    tree = ast.parse(source, filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = _package_of(path)
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # "from medlabel import web" imports medlabel.web
                yield node.lineno, f"{module}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            literal = isinstance(first, ast.Constant) and isinstance(first.value, str)
            if name in ("import_module", "__import__") and literal:
                yield node.lineno, str(first.value)


def python_files(root: Path) -> list[Path]:
    files = sorted(root.rglob("*.py"))
    assert files, f"no modules found under {root}"
    return files


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def domain_violations(source: str, path: Path) -> list[str]:
    out = []
    for line, module in imported_modules(source, path):
        top = _top(module)
        if top in FORBIDDEN_IN_DOMAIN:
            out.append(f"{path.name}:{line} imports {module} (forbidden in the domain)")
        elif (
            top == "medlabel" and module != "medlabel" and not module.startswith("medlabel.domain")
        ):
            out.append(f"{path.name}:{line} imports {module} (domain imports domain only)")
    return out


def web_violations(source: str, path: Path) -> list[str]:
    return [
        f"{path.name}:{line} imports {module}"
        for line, module in imported_modules(source, path)
        if module == "medlabel.web" or module.startswith("medlabel.web.")
    ]


def test_the_domain_is_pure() -> None:
    problems = [
        problem
        for path in python_files(DOMAIN)
        for problem in domain_violations(path.read_text(encoding="utf-8"), path)
    ]
    assert problems == []


@pytest.mark.parametrize("root", [DOMAIN, SERVICES], ids=["domain", "services"])
def test_domain_and_services_do_not_import_the_web_layer(root: Path) -> None:
    problems = [
        problem
        for path in python_files(root)
        for problem in web_violations(path.read_text(encoding="utf-8"), path)
    ]
    assert problems == []


def test_the_services_are_actually_scanned() -> None:
    """Guard against a vacuous pass: the scanner sees the imports the services do have."""
    seen = {
        module
        for path in python_files(SERVICES)
        for _, module in imported_modules(path.read_text(encoding="utf-8"), path)
    }
    assert "sqlalchemy.orm" in seen
    assert "medlabel.domain.audit" in seen


# ---- the checker itself catches what it should ------------------------------------------

BAD_DOMAIN_SOURCES = {
    "import fastapi": "fastapi",
    "from sqlalchemy.orm import Session": "sqlalchemy.orm",
    "import PIL.Image as Image": "PIL.Image",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pydantic": "pydantic",
    "def f():\n    import argon2\n    return argon2": "argon2",
    "import importlib\nimportlib.import_module('psycopg')": "psycopg",
    "__import__('uvicorn')": "uvicorn",
    "from medlabel.storage import models": "medlabel.storage",
    "from ..services import audit": "medlabel.services",
    "from .. import web": "medlabel.web",
}


@pytest.mark.parametrize("source", list(BAD_DOMAIN_SOURCES), ids=list(BAD_DOMAIN_SOURCES.values()))
def test_the_checker_flags_impure_domain_code(source: str) -> None:
    path = DOMAIN / "example.py"
    problems = domain_violations(source, path)
    assert problems, source
    assert BAD_DOMAIN_SOURCES[source] in problems[0]


def test_the_checker_accepts_pure_code() -> None:
    source = (
        "from __future__ import annotations\nimport hashlib, json\n"
        "from collections.abc import Mapping\nfrom medlabel.domain.errors import NotFound\n"
        "from .names import fold\n"
    )
    assert domain_violations(source, DOMAIN / "example.py") == []


@pytest.mark.parametrize(
    "source",
    [
        "from medlabel.web.deps import Ctx",
        "import medlabel.web.app",
        "from medlabel import web",
        "from ..web import errors",
        "def f():\n    from medlabel.web import errors",
    ],
)
def test_the_checker_flags_web_imports_in_services(source: str) -> None:
    assert web_violations(source, SERVICES / "example.py")
