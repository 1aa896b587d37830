"""The package's layout shows its design: a pure core, the shells, the storage, the interfaces.

These tests read the source (its imports) and import the package in fresh interpreters, where
nothing this test session loaded can hide what the package itself pulls in.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import telecard_auth

SRC = Path(telecard_auth.__file__).resolve().parent
ROOT = SRC.parents[1]
#: The layers, innermost first: a module imports only from its own layer or inner ones.
LAYERS = {
    "telecard_auth._core": 0,
    # The storage contract's records, snapshots and commits are what the rules decide on.
    "telecard_auth._storage.protocol": 0,
    "telecard_auth._version": 0,
    "telecard_auth.events": 0,
    "telecard_auth._storage": 1,
    "telecard_auth._issuer": 2,
    # Key material and key files: the core's keys, read from and written to a JSON JWK Set.
    "telecard_auth.keys": 2,
    "telecard_auth": 3,
    "telecard_auth.cli": 4,
    "telecard_auth.testing": 4,
    "telecard_auth.pytest_plugin": 5,
    "telecard_auth.__main__": 5,
}
#: A module a person can read in one sitting.
LONGEST_MODULE = 700


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def _imports(name: str) -> set[str]:
    """The package's modules that module ``name`` imports, at run time or for type checking."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from telecard_auth._core import rules`` imports the module ``rules``; a name that
            # is no module is imported from the module ``from`` names.
            submodules = {f"{node.module}.{alias.name}" for alias in node.names}
            found |= submodules & MODULES.keys()
            if submodules - MODULES.keys():
                found.add(node.module)
    return {module for module in found if module in MODULES and module != name}


def _layer(name: str) -> int:
    home = max(
        (prefix for prefix in LAYERS if name == prefix or name.startswith(prefix + ".")), key=len
    )
    return LAYERS[home]


def test_no_module_imports_itself_back() -> None:
    """The import graph of the package's modules has no cycle, type-checking imports included."""
    graph = {name: _imports(name) for name in MODULES}
    # The package's own __init__ only re-exports: it may import anything, nothing imports it.
    assert [] == sorted(name for name, targets in graph.items() if "telecard_auth" in targets)
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert [] == cycles


def test_each_layer_imports_only_inner_layers() -> None:
    """The pure core imports no storage, shell or interface; storage no shell; and so on."""
    wrong = [
        (name, target)
        for name in MODULES
        for target in _imports(name)
        if _layer(target) > _layer(name)
    ]
    assert [] == wrong


def test_every_module_reads_in_one_sitting() -> None:
    """No module of the package is longer than LONGEST_MODULE lines."""
    lengths = {
        name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()
    }
    assert {} == {name: lines for name, lines in lengths.items() if lines > LONGEST_MODULE}


def _fresh(script: str) -> object:
    completed = subprocess.run(  # noqa: S603 - this interpreter, a script of this file
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 0 == completed.returncode, completed.stderr
    return json.loads(completed.stdout.splitlines()[-1])


#: Runs first in a fresh interpreter: the extras' client libraries cannot be imported.
_NO_EXTRAS = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("redis", "psycopg", "psycopg_pool"):
            raise ModuleNotFoundError(name)
        return None
sys.meta_path.insert(0, Refuse())
"""


def test_star_import_works_without_the_extras() -> None:
    """``from telecard_auth import *`` needs no extra; Redis and PostgreSQL named say which."""
    script = (
        _NO_EXTRAS
        + """
import json
namespace = {}
exec("from telecard_auth import *", namespace)
import telecard_auth
errors = {}
for name in ("RedisStorage", "PostgresStorage"):
    try:
        getattr(telecard_auth, name)
    except telecard_auth.MissingExtra as error:
        errors[name] = [error.code, error.message_en]
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("redis", "psycopg"))
print(json.dumps([sorted(k for k in namespace if k != "__builtins__"), errors, loaded]))
"""
    )
    answer = _fresh(script)
    assert isinstance(answer, list)
    names, errors, loaded = answer
    assert sorted(telecard_auth.__all__) == names
    assert {"RedisStorage", "PostgresStorage"} == set(errors)
    assert "pip install 'telecard-auth[redis]'" in errors["RedisStorage"][1]
    assert "pip install 'telecard-auth[postgres]'" in errors["PostgresStorage"][1]
    assert [] == loaded


def test_errors_show_their_public_home() -> None:
    """Every error is shown in a traceback as ``telecard_auth.<name>``, wherever it is raised."""
    errors = [
        thing
        for thing in (getattr(telecard_auth, name) for name in telecard_auth.__all__)
        if isinstance(thing, type) and issubclass(thing, telecard_auth.TelecardAuthError)
    ]
    assert 40 <= len(errors)
    assert [] == [error for error in errors if error.__module__ != "telecard_auth"]


def test_errors_still_pickle_from_their_public_home() -> None:
    """An error travels between processes by its public name."""
    import pickle
    from datetime import UTC, datetime

    error = telecard_auth.CodeExpired(expired_at=datetime(2026, 3, 1, tzinfo=UTC))
    assert type(error) is type(pickle.loads(pickle.dumps(error)))  # noqa: S301 - our own bytes
