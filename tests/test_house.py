"""The shape of the house (#13, #24): a light contract between stages, an import graph of the whole project that goes
one way without cycles, one switch for model kinds, small modules, and a gate that tells a missing champion from a
broken registry."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tasks.registry.versions import champion_version

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "mlflow", "datasets", "pandas", "sklearn", "onnxruntime", "prefect")
MOD = "tasks.results"  # the contract


def test_the_contract_module_imports_no_heavy_library():
    """A stage's result types load without torch, MLflow or Prefect (a worker or a client reads them cheaply).

    No wall-time bound here: it failed at load 4-6 on a 0.21 CPU-s import; speed belongs in bench/.
    """
    code = "import json, sys, tasks.results; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    heavy = sorted(set(json.loads(out.stdout.strip().splitlines()[-1])) & set(HEAVY))
    assert heavy == [], f"importing tasks.results loaded {heavy}"


PACKAGES = ("core", "models", "tasks", "flows", "serving", "cli")  # the project's code, bottom to top
LAYER = {"core": 0, "models": 1, "tasks": 2, "flows": 3, "serving": 3, "cli": 4}  # flows and serving: side by side
# Whole-project import graph, type-only imports included: 17 floors on 2026-12-06 after the Task abstraction (the
# kind registry stands between the flow and the stages); 16 once stages import leaves, not siblings; 15 once the
# recipes and the compress stage import leaf modules. It may not grow.
MAX_FLOORS = 15


def _imports(path: Path, module: str, modules: set[str]) -> set[str]:
    """The project modules `path` imports anywhere: at the top, inside functions, and type-only ones."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found |= {n for n in names if n in modules}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
    return found - {module}


def _graph(packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    files = {}
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return {m: _imports(p, m, set(files)) for m, p in files.items()}


def _floors(graph: dict[str, set[str]]) -> dict[str, int]:
    floors: dict[str, int] = {}

    def floor(module: str, path: tuple[str, ...] = ()) -> int:
        assert module not in path, "import cycle: " + " -> ".join((*path[path.index(module) :], module))
        if module not in floors:
            floors[module] = 1 + max((floor(d, (*path, module)) for d in graph[module]), default=0)
        return floors[module]

    for module in graph:
        floor(module)
    return floors


def test_the_import_graph_has_no_cycle_and_does_not_grow_taller():
    floors = _floors(_graph())
    deepest = max(floors, key=floors.get)
    assert floors[deepest] <= MAX_FLOORS, f"{deepest} stands on {floors[deepest]} floors of imports"


def test_imports_go_one_way_core_models_tasks_then_flows_and_serving_then_cli():
    upward = [
        f"{m} -> {d}"
        for m, deps in _graph().items()
        for d in deps
        if m.split(".")[0] != d.split(".")[0] and LAYER[d.split(".")[0]] >= LAYER[m.split(".")[0]]
    ]
    assert upward == []


def test_only_the_kind_registry_tells_model_kinds_apart():
    """No `task == "..."` and no `isinstance(report, SomeReport)` outside `tasks/kinds/`: the flow, CLI, gate,
    registry and monitor ask the `ModelKind`."""
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path.is_relative_to(ROOT / "tasks" / "kinds"):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                text = ast.unparse(node) if isinstance(node, (ast.Compare, ast.Call)) else ""
                is_task_test = isinstance(node, ast.Compare) and any(
                    isinstance(side, (ast.Name, ast.Attribute)) and ast.unparse(side).split(".")[-1] == "task"
                    for side in (node.left, *node.comparators)
                )
                is_report_test = (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", None) == "isinstance"
                    and "Report" in ast.unparse(node.args[1])
                )
                if is_task_test or is_report_test:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text}")
    assert found == []


def test_no_module_over_400_lines_and_no_function_over_60():
    too_long = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            source = path.read_text()
            if len(source.splitlines()) > 400:
                too_long.append(f"{path.relative_to(ROOT)}: {len(source.splitlines())} lines")
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}()")
    assert too_long == []


def test_stages_import_results_from_the_contract_not_from_each_other():
    """No stage module imports another stage for a result type: they all come from the contract, `tasks.results` or
    the module of it that defines the type (`tasks.results.data`: a stage stands on the leaf, not on every kind's)."""
    graph = _graph(("core", "tasks"))
    contract = sorted((ROOT / "tasks" / "results").glob("*.py"))
    names = {n.name for p in contract for n in ast.parse(p.read_text()).body if isinstance(n, ast.ClassDef)}
    for path in (ROOT / "tasks").rglob("*.py"):
        if path in contract:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            module = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
            if module.startswith("tasks.") and module != MOD and not module.startswith(MOD + "."):
                wrong = names & {a.name for a in node.names}
                assert not wrong, f"{path.relative_to(ROOT)} imports {wrong} from {node.module}"
    contract_imports = {d for m, deps in graph.items() if m.startswith(MOD) for d in deps}
    assert {d for d in contract_imports if not d.startswith(MOD)} <= {"core.registry_names", "core.workspace"}


def test_a_missing_model_or_alias_is_no_champion(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert champion_version(client, "never-registered") is None
    client.create_registered_model("m")
    assert champion_version(client, "m") is None  # the model exists, the alias does not


def test_a_broken_registry_fails_the_gate_instead_of_meaning_no_champion(monkeypatch):
    """An outage must fail the task (it is retried), never pass the champion rule as "no champion"."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens there
    client = MlflowClient(tracking_uri=closed, registry_uri=closed)
    with pytest.raises(MlflowException) as raised:
        champion_version(client, "zero2one-classifier")
    assert raised.value.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def test_a_stage_start_fault_is_injected_by_the_wrapper_once_per_run(tmp_path, monkeypatch):
    """`ZERO2ONE_FAULTS=stage` fails the stage once at its start, from the one wrapper; the retry goes through."""
    from core.orchestration import InjectedFault, with_faults
    from core.workspace import Workspace

    ws = Workspace(root=str(tmp_path)).resolved()
    calls = []
    stage = with_faults(lambda ws, n: calls.append(n) or n, "evaluate")
    monkeypatch.setenv("ZERO2ONE_FAULTS", "evaluate,pretrain@step=3")
    with pytest.raises(InjectedFault):
        stage(ws, 1)
    assert calls == [] and stage(ws, 2) == 2 and calls == [2]
    assert with_faults(lambda ws: "ran", "pretrain")(ws) == "ran"  # a step fault is the Trainer callback's


def test_stage_bodies_inject_no_faults_but_the_one_between_registering_and_aliasing():
    calls = [
        (path.relative_to(ROOT).as_posix(), ast.unparse(node.args[0]))
        for path in (ROOT / "tasks").rglob("*.py")
        if path.name not in ("orchestration.py", "faults.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "maybe_fail"
    ]
    assert calls == [("tasks/registry/versioning.py", "'register-aliases'")]
