"""examples/quickstart.ipynb is valid nbformat-4 JSON without stored outputs, and its code cells run in order
against the real server (R2EC_ADDRESS pointed at it), as a user would run them."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def load() -> dict:
    return json.loads(NOTEBOOK.read_text())


def test_notebook_is_nbformat_4():
    notebook = load()
    assert notebook["nbformat"] == 4 and isinstance(notebook["nbformat_minor"], int)
    assert notebook["metadata"]["kernelspec"]["language"] == "python"
    for cell in notebook["cells"]:
        assert cell["cell_type"] in ("markdown", "code") and isinstance(cell["source"], list)
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    try:
        import nbformat
    except ImportError:
        return
    nbformat.validate(nbformat.reads(NOTEBOOK.read_text(), as_version=4))


def test_notebook_runs_against_the_server(server, monkeypatch):
    monkeypatch.setenv("R2EC_ADDRESS", server.address)
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for number, cell in enumerate(load()["cells"]):
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                try:
                    exec(compile(source, f"quickstart.ipynb cell {number}", "exec"), namespace)
                except Exception as error:  # noqa: BLE001 - re-raised with the cell named
                    pytest.fail(f"cell {number} failed: {error!r}\n{source}")
    output = printed.getvalue()
    assert "popularity model over ml-100k" in output
    assert "Star Wars" in output and "INVALID_ARGUMENT" in output
