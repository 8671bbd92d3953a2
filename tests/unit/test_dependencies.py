"""Every module the installed package imports, at its top or inside a function, comes from a
distribution that ``pyproject.toml`` declares as a runtime dependency (not only an extra, nor
only a dependency's dependency). The installed-wheel test proves it by running; this one also
sees imports that only some code paths reach."""

import ast
import importlib.metadata
import re
import sys
import tomllib

from tests.support import ROOT

SHIPPED = ("trace_insights", "collector", "aggregator", "api")


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        _normal(re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0]) for spec in project["dependencies"]
    }


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported() -> dict[str, str]:
    """Top-level module → one file importing it, for modules outside the standard library."""
    found: dict[str, str] = {}
    for folder in SHIPPED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top != "trace_insights":
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_imported_module_is_a_declared_dependency():
    declared = _declared()
    providers = importlib.metadata.packages_distributions()
    undeclared = {
        module: where
        for module, where in _imported().items()
        if not {_normal(d) for d in providers.get(module, [])} & declared
    }
    assert undeclared == {}, "imported, but no declared dependency provides it"
