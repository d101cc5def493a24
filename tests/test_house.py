"""The shape of the house (#13): a light contract between stages, a shallow import graph of `tasks/`, and a gate that
tells a missing champion from a broken registry."""

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
MAX_FLOORS = 7  # was 16 (with a gate <-> gate_generation cycle) before the contract module


def test_the_contract_module_imports_no_heavy_library_and_loads_fast():
    """Measured 0.09 s with pydantic (-X importtime, idle machine); the bound leaves room for a loaded CI runner."""
    code = "import json, sys, tasks.results; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    heavy = sorted(set(json.loads(out.stdout.strip().splitlines()[-1])) & set(HEAVY))
    assert heavy == [], f"importing tasks.results loaded {heavy}"
    # `import time: self | cumulative | name`, microseconds; top-level imports are not indented
    cumulative = {
        line.split("|")[2].strip(): int(line.split("|")[1])
        for line in out.stderr.splitlines()
        if line.startswith("import time:")
        and line.split("|")[1].strip().isdigit()
        and not line.split("|")[2].startswith("  ")
    }
    seconds = (cumulative.get("pydantic", 0) + cumulative["tasks.results"]) / 1e6
    assert seconds < 0.5, f"importing tasks.results (with pydantic) took {seconds:.3f} s"


def _imports(path: Path, module: str, modules: set[str]) -> set[str]:
    """The `tasks` modules `path` imports anywhere, except type-only imports under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    type_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for stmt in block.body
        for n in ast.walk(stmt)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found |= {n for n in names if n in modules}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
    return found - {module, "tasks"}


def _graph() -> dict[str, set[str]]:
    files = {}
    for path in (ROOT / "tasks").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return {m: _imports(p, m, set(files)) for m, p in files.items()}


def test_the_import_graph_of_tasks_is_shallow_and_has_no_cycle():
    graph = _graph()
    floors: dict[str, int] = {}

    def floor(module: str, path: tuple[str, ...] = ()) -> int:
        assert module not in path, "import cycle: " + " -> ".join((*path[path.index(module) :], module))
        if module not in floors:
            floors[module] = 1 + max((floor(d, (*path, module)) for d in graph[module]), default=0)
        return floors[module]

    deepest = max(graph, key=floor)
    assert floors[deepest] <= MAX_FLOORS, f"{deepest} stands on {floors[deepest]} floors of tasks/ imports"


def test_stages_import_results_from_the_contract_not_from_each_other():
    """No stage module imports another stage for a result type: they all come from tasks.results."""
    graph = _graph()
    results = set(ast.parse((ROOT / "tasks" / "results.py").read_text()).body)
    names = {n.name for n in results if isinstance(n, ast.ClassDef)}
    for path in (ROOT / "tasks").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tasks.") and node.module != MOD:
                wrong = names & {a.name for a in node.names}
                assert not wrong, f"{path.relative_to(ROOT)} imports {wrong} from {node.module}"
    assert graph["tasks.results"] == set()  # it imports core only


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
    assert calls == [("tasks/registry/register.py", "'register-aliases'")]
