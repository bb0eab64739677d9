"""Runs a notebook top to bottom against a fresh server and writes it back with its outputs (`make notebook`).

    python clients/python/examples/run_notebook.py NOTEBOOK.ipynb BIN [serve options...]

starts `BIN serve --host 127.0.0.1 --port 0 [serve options...]`, waits for its "listening on" line, executes every
cell in a Python kernel (nbclient) with R2EC_ADDRESS pointing at the server, stops the server with SIGTERM, and saves
the notebook. The serve options and the SHA-256 of each checkpoint served go into the notebook's metadata ("r2ec"),
so a test can tell whether a re-run against the same models must reproduce the saved outputs."""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

LISTENING = re.compile(r"listening on (\S+):(\d+)")


def checkpoint_digests(serve_options: list[str], root: Path = Path(".")) -> dict[str, str]:
    """Per --model that is a checkpoint directory (relative paths from `root`), the SHA-256 of what its answers
    depend on: model.safetensors, then the calibrator stored in r2ec_train.json as canonical JSON (the rest of that
    file, such as the training time, changes from run to run without changing an answer)."""
    digests = {}
    for flag, value in zip(serve_options, serve_options[1:]):
        weights = root / value / "model.safetensors"
        if flag == "--model" and weights.is_file():
            digest = hashlib.sha256(weights.read_bytes())
            info = root / value / "r2ec_train.json"
            if info.is_file():
                calibrator = json.loads(info.read_text()).get("calibrator")
                digest.update(json.dumps(calibrator, sort_keys=True).encode())
            digests[value] = digest.hexdigest()
    return digests


def start_server(binary: str, serve_options: list[str]) -> tuple[subprocess.Popen, str, list[str]]:
    process = subprocess.Popen([binary, "serve", "--host", "127.0.0.1", "--port", "0", *serve_options],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    address = threading.Event()
    found: list[str] = []

    def read() -> None:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            match = LISTENING.search(line)
            if match and not found:
                found.append(f"{match.group(1)}:{match.group(2)}")
                address.set()
        address.set()

    threading.Thread(target=read, daemon=True).start()
    if not address.wait(120) or not found:
        process.kill()
        raise SystemExit("the server did not start:\n" + "\n".join(lines[-40:]))
    return process, found[0], lines


def coalesced(outputs: list) -> list:
    """Consecutive stream outputs of one stream merged into one (a cell printing token by token with flush=True
    leaves one output per token), as Jupyter shows them."""
    merged: list = []
    for output in outputs:
        if (output.output_type == "stream" and merged and merged[-1].output_type == "stream"
                and merged[-1].name == output.name):
            merged[-1].text += output.text
        else:
            merged.append(output)
    return merged


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    import nbformat
    from nbclient import NotebookClient

    path, binary, serve_options = Path(argv[0]), argv[1], argv[2:]
    notebook = nbformat.read(path, as_version=4)
    process, address, lines = start_server(binary, serve_options)
    try:
        os.environ["R2EC_ADDRESS"] = address
        NotebookClient(notebook, timeout=600, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
    if code != 0:
        print("\n".join(lines[-40:]), file=sys.stderr)
        raise SystemExit(f"the server exited with {code}")
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = coalesced(cell.outputs)
    notebook.metadata["r2ec"] = {"serve": serve_options, "checkpoints": checkpoint_digests(serve_options)}
    nbformat.validate(notebook)
    nbformat.write(notebook, path)
    print(f"{path}: {sum(cell.cell_type == 'code' for cell in notebook.cells)} code cells run against {address}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
