"""examples/quickstart.ipynb: committed with the outputs of one top-to-bottom run (`make notebook`); it runs in a
real Python kernel (nbclient) against a real server; and, where the checkpoints it was run with are at hand (same
SHA-256), a fresh run against a server started with the same options reproduces its text outputs exactly."""
from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

import pytest

from conftest import REPO, ServerProcess, server_binary, server_unavailable_reason

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"
sys.path.insert(0, str(NOTEBOOK.parent))


def load() -> dict:
    return json.loads(NOTEBOOK.read_text())


def code_cells(notebook: dict) -> list[dict]:
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def text_outputs(notebook: dict) -> list[list[str]]:
    """Per code cell, its stream texts and its results' text/plain and text/html (images are left out: PNG bytes
    vary with the matplotlib and zlib versions)."""
    cells = []
    for cell in code_cells(notebook):
        texts = []
        for output in cell["outputs"]:
            if output["output_type"] == "stream":
                texts.append("".join(output["text"]))
            elif "data" in output and "image/png" not in output["data"]:
                texts.extend("".join(output["data"][kind]) for kind in ("text/plain", "text/html")
                             if kind in output["data"])
        cells.append(texts)
    return cells


def test_committed_notebook_holds_one_clean_run():
    notebook = load()
    assert notebook["nbformat"] == 4 and notebook["metadata"]["kernelspec"]["language"] == "python"
    nbformat = pytest.importorskip("nbformat")
    nbformat.validate(nbformat.reads(NOTEBOOK.read_text(), as_version=4))
    cells = code_cells(notebook)
    assert [cell["execution_count"] for cell in cells] == list(range(1, len(cells) + 1)), \
        "the cells were not run top to bottom in one session: run `make notebook`"
    outputs = [output for cell in cells for output in cell["outputs"]]
    assert not [output for output in outputs if output["output_type"] == "error"]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) == 2, "the recommendations plot and the item map are drawn"
    text = "\n".join(t for cell in text_outputs(notebook) for t in cell)
    assert "Star Wars" in text and "INVALID_ARGUMENT" in text and "probability" in text
    assert notebook["metadata"]["r2ec"]["serve"], "run through run_notebook.py, which records the serve options"


NUMBER = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?")


def same_text(saved: list[str], fresh: list[str], rel: float = 1e-4) -> bool:
    """Outputs equal but for the last digits of decimal numbers: kernels that sum in another order move a score in
    its 7th digit, which is not a different answer (ids, ranks, messages and every integer must match exactly)."""
    if len(saved) != len(fresh):
        return False
    for a, b in zip(saved, fresh):
        if NUMBER.split(a) != NUMBER.split(b):
            return False
        for x, y in zip(NUMBER.findall(a), NUMBER.findall(b)):
            if abs(float(x) - float(y)) > rel * max(abs(float(x)), abs(float(y)), 1e-3):
                return False
    return True


def test_same_text_tolerates_last_digits_only():
    assert same_text(["1  50  18.700628 Star Wars (1977)"], ["1  50  18.700630 Star Wars (1977)"])
    assert not same_text(["1  50  18.700628 Star Wars (1977)"], ["1  51  18.700628 Star Wars (1977)"])
    assert not same_text(["score 18.70"], ["score 18.90"])
    assert not same_text(["a"], ["a", "b"])


def execute(notebook: dict, address: str, monkeypatch) -> dict:
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("R2EC_ADDRESS", address)
    ran = copy.deepcopy(notebook)
    for cell in code_cells(ran):
        cell["outputs"], cell["execution_count"] = [], None
    import nbformat
    node = nbformat.reads(json.dumps(ran), as_version=4)
    nbclient.NotebookClient(node, timeout=600, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    from run_notebook import coalesced
    for cell in node.cells:
        if cell.cell_type == "code":
            cell.outputs = coalesced(cell.outputs)
    return json.loads(nbformat.writes(node))


@pytest.fixture
def own_server():
    started: list[ServerProcess] = []

    def start(*options: str) -> ServerProcess:
        reason = server_unavailable_reason()
        if reason:
            pytest.skip(reason)
        process = ServerProcess([str(server_binary()), "serve", "--host", "127.0.0.1", "--port", "0", *options])
        started.append(process)
        return process
    yield start
    for process in started:
        assert process.stop() == 0, process.output


def test_notebook_runs_in_a_kernel_against_the_baselines(own_server, monkeypatch):
    """`make test` trains no checkpoint: the notebook must also run against the baselines alone (wals answers
    SimilarItems for the map)."""
    server = own_server("--dataset", str(REPO / "data" / "ml-100k"), "--model", "wals", "--model", "popularity")
    ran = execute(load(), server.address, monkeypatch)
    outputs = [output for cell in code_cells(ran) for output in cell["outputs"]]
    assert not [output for output in outputs if output["output_type"] == "error"]
    assert len([output for output in outputs if "image/png" in output.get("data", {})]) == 2
    assert "default: wals" in "\n".join(t for cell in text_outputs(ran) for t in cell)


def test_notebook_outputs_reproduce_against_the_same_models(own_server, monkeypatch):
    from run_notebook import checkpoint_digests
    notebook = load()
    recorded = notebook["metadata"]["r2ec"]
    if checkpoint_digests(recorded["serve"], REPO) != recorded["checkpoints"]:
        pytest.skip("the checkpoints the notebook was run with are not here (a machine that trained its own)")
    options = recorded["serve"]  # paths relative to the repository, where the server runs
    server = own_server(*options)
    ran = execute(notebook, server.address, monkeypatch)
    refresh = (f"{sys.executable} {NOTEBOOK.parent / 'run_notebook.py'} {NOTEBOOK} {server_binary()} "
               + " ".join(options))
    for number, (saved, fresh) in enumerate(zip(text_outputs(notebook), text_outputs(ran)), 1):
        assert same_text(saved, fresh), f"code cell {number}: the server now answers differently than the committed " \
                               f"notebook shows; refresh it with `make notebook`, or from the repository with " \
                               f"the binary at hand (debug and release answer alike): {refresh}"
