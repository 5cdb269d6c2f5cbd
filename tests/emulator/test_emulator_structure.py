"""The local Salesforce's modules: every one imports, and their imports form no cycle.

Subsystems (REST, Bulk, admin, seed, the Shared Activities rules) get the narrow state they
use and hand back their routes; only ``app`` composes them. A cycle would mean some module
reaches back into the whole again, so the graph is checked from the source: every import
statement counts, including those under ``TYPE_CHECKING`` and inside functions.
"""

from __future__ import annotations

import ast
import graphlib
import importlib
import pkgutil
from pathlib import Path

import pytest

import salesforce_emulator

PACKAGE = salesforce_emulator.__name__
PACKAGE_DIR = Path(salesforce_emulator.__file__).parent
MODULES = sorted(f"{PACKAGE}.{m.name}" for m in pkgutil.iter_modules([str(PACKAGE_DIR)]))


def _imported(module: str, node: ast.AST) -> set[str]:
    """The package's modules that one import statement names."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        # ``from salesforce_emulator import rest`` names a module; ``from x.y import f`` x.y.
        names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    else:
        return set()
    return {n for n in names if n in MODULES and n != module}


def _import_graph() -> dict[str, set[str]]:
    graph = {}
    for module in MODULES:
        path = PACKAGE_DIR / f"{module.rpartition('.')[2]}.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[module] = set().union(*(_imported(module, node) for node in ast.walk(tree)))
    return graph


@pytest.mark.parametrize("module", MODULES)
def test_every_module_of_the_package_imports_on_its_own(module):
    importlib.import_module(module)


def test_the_modules_import_one_another_without_a_cycle():
    graph = _import_graph()
    # The parse sees real edges (else an empty graph would pass vacuously).
    assert f"{PACKAGE}.rest" in graph[f"{PACKAGE}.app"]
    assert f"{PACKAGE}.activity_relations" in graph[f"{PACKAGE}.dml"]
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(err.args[1])}")
    assert set(order) == set(MODULES)


def test_only_the_server_and_the_command_line_import_the_application():
    importers = {m for m, targets in _import_graph().items() if f"{PACKAGE}.app" in targets}
    assert importers == {f"{PACKAGE}.server", f"{PACKAGE}.__main__"}


def test_write_context_lives_in_a_leaf_module():
    """``dml`` and ``activity_relations`` both name it; at run time it imports no sibling."""
    tree = ast.parse((PACKAGE_DIR / "context.py").read_text(encoding="utf-8"))
    runtime = [node for node in tree.body if isinstance(node, ast.ImportFrom | ast.Import)]
    assert not set().union(*(_imported(f"{PACKAGE}.context", n) for n in runtime))


def _assert_layers(layers: dict[str, set[str]], face: str) -> dict[str, set[str]]:
    """Each module of a layered group imports only the ones listed; outsiders only ``face``."""
    group = {f"{PACKAGE}.{name}" for name in layers}
    assert group <= set(MODULES)
    graph = _import_graph()
    imported = {
        m.rpartition(".")[2]: {t.rpartition(".")[2] for t in graph[m] & group} for m in group
    }
    assert imported == layers
    outside = {m: graph[m] & group for m in MODULES if m not in group}
    assert {m: targets for m, targets in outside.items() if targets - {f"{PACKAGE}.{face}"}} == {}
    return graph


def test_soql_layers_import_only_the_layers_beneath_them():
    """syntax <- tokens <- parser, sqlite <- soql; the rest of the package sees only ``soql``."""
    layers = {
        "soql_syntax": set(),
        "soql_tokens": {"soql_syntax"},
        "soql_parser": {"soql_syntax", "soql_tokens"},
        "soql_sqlite": {"soql_syntax", "soql_tokens"},
        "soql": {"soql_syntax", "soql_parser", "soql_sqlite"},
    }
    graph = _assert_layers(layers, "soql")
    assert f"{PACKAGE}.soql" in graph[f"{PACKAGE}.query"]


def test_data_model_layers_import_only_the_layers_beneath_them():
    """sobject <- crm_objects, activity_objects <- objects; the rest sees only ``objects``."""
    layers = {
        "sobject": set(),
        "crm_objects": {"sobject"},
        "activity_objects": {"sobject"},
        "objects": {"sobject", "crm_objects", "activity_objects"},
    }
    graph = _assert_layers(layers, "objects")
    # The field model is a leaf of the whole package, not only of the data model.
    assert graph[f"{PACKAGE}.sobject"] == set()
    assert f"{PACKAGE}.objects" in graph[f"{PACKAGE}.store"]
