"""Loading dual-head checkpoints into a REAL `r2ec serve` process over Admin/LoadModel and SIGHUP (issue 13 items 1,
9 and 11). The checkpoint is written here with numpy and the standard library alone - safetensors, config.json, a
Hugging Face byte-level BPE tokenizer.json and r2ec_train.json with a calibrator - independently of the Swift
writer, over a tiny dataset of our own so that the item table builds in milliseconds.

- a config.json describing an enormous model is refused naming the field, the server's peak RSS does not jump,
  the process stays up and the old version keeps serving; a failed SIGHUP reload keeps the old version too;
- concurrent loads of one name (as many as the server queues) get distinct versions, and the one with the highest
  version is the one serving;
- a shard index naming a file outside the checkpoint is refused; a load writes nothing into the checkpoint;
- ModelInfo.calibrated_ranks and probabilities: present for ranks 1..N only, never rising down the list;
- a token file with CRLF line endings works."""
from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import ServerProcess, server_binary, server_unavailable_reason, wait_until
from r2ec_client import Client, RpcError, StatusCode

pytestmark = pytest.mark.skipif(server_unavailable_reason() is not None, reason=server_unavailable_reason() or "")

HIDDEN, HEADS, KV_HEADS, FFN, LAYERS = 16, 2, 1, 32, 2
SPECIALS = ["<|endoftext|>", "<answer>", "</answer>"]
ENORMOUS = {"hidden_size": 4096, "intermediate_size": 4_194_304, "num_hidden_layers": 1024, "vocab_size": 4_194_304,
            "num_attention_heads": 32, "num_key_value_heads": 32}


def byte_level_alphabet() -> list[str]:
    """GPT-2's bytes_to_unicode: the printable character standing for each byte 0..255."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = dict(zip(printable, printable)), 0
    for b in range(256):
        if b not in codes:
            codes[b] = 256 + extra
            extra += 1
    return [chr(codes[b]) for b in range(256)]


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    header, offset, blobs = {}, 0, []
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def write_checkpoint(directory: Path, seed: int = 1, writes_answer: bool = True) -> Path:
    """A tiny Qwen2 dual-head checkpoint: 259-token byte-level vocabulary, d 16, 2 layers, tied embeddings.

    writes_answer=False zeroes the `<answer>` token's (tied) embedding row: its logit is then 0 while the greedy pick
    among 258 random logits is positive, so greedy reasoning chains run to their token limit instead of stopping
    after a few dozen tokens (tests that must catch a chain still running: cancellation, deadlines)."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab = len(SPECIALS) + 256
    config = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": HIDDEN,
              "intermediate_size": FFN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
              "num_key_value_heads": KV_HEADS, "vocab_size": vocab, "max_position_embeddings": 4096,
              "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": True, "hidden_act": "silu",
              "torch_dtype": "float32"}
    (directory / "config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(seed)
    head = HIDDEN // HEADS
    tensors = {"model.embed_tokens.weight": rng.normal(0, 0.3, (vocab, HIDDEN))}
    if not writes_answer:
        tensors["model.embed_tokens.weight"][SPECIALS.index("<answer>")] = 0
    for layer in range(LAYERS):
        p = f"model.layers.{layer}."
        shapes = {"input_layernorm.weight": (HIDDEN,), "self_attn.q_proj.weight": (HIDDEN, HIDDEN),
                  "self_attn.k_proj.weight": (KV_HEADS * head, HIDDEN), "self_attn.v_proj.weight": (KV_HEADS * head, HIDDEN),
                  "self_attn.q_proj.bias": (HIDDEN,), "self_attn.k_proj.bias": (KV_HEADS * head,),
                  "self_attn.v_proj.bias": (KV_HEADS * head,), "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
                  "post_attention_layernorm.weight": (HIDDEN,), "mlp.gate_proj.weight": (FFN, HIDDEN),
                  "mlp.up_proj.weight": (FFN, HIDDEN), "mlp.down_proj.weight": (HIDDEN, FFN)}
        for name, shape in shapes.items():
            tensors[p + name] = np.ones(shape) if name.endswith("norm.weight") else rng.normal(0, 0.3, shape)
    tensors["model.norm.weight"] = np.ones(HIDDEN)
    write_safetensors(directory / "model.safetensors", tensors)
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tokenizer = {"version": "1.0", "truncation": None, "padding": None, "normalizer": None,
                 "added_tokens": [{"id": i, "content": s, "special": True, "single_word": False, "lstrip": False,
                                   "rstrip": False, "normalized": False} for i, s in enumerate(SPECIALS)],
                 "pre_tokenizer": byte_level, "post_processor": byte_level, "decoder": byte_level,
                 "model": {"type": "BPE", "vocab": {c: len(SPECIALS) + b for b, c in enumerate(byte_level_alphabet())},
                           "merges": []}}
    (directory / "tokenizer.json").write_text(json.dumps(tokenizer))
    # Probabilities for ranks 1-3: one slope, intercepts falling with rank (what `r2ec train` writes).
    calibrator = {"ranks": 3, "group_ends": [1, 3], "mean": 0.0, "std": 1.0, "slope": 0.5, "intercepts": [-1.0, -2.0]}
    (directory / "r2ec_train.json").write_text(json.dumps({
        "tau": 0.05, "split": "loo", "dataset_fingerprint": "", "calibrator": calibrator, "validation": {},
        "test": {}, "train_seconds": 0, "config": "{}"}))
    return directory


def write_dataset(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    items = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    items += [f"{i}\tFilm {i}\t{1990 + i}\tDrama" for i in range(1, 9)]
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    inter += [f"{u}\t{(u * 3 + k) % 8 + 1}\t4\t{1000 + 10 * u + k}" for u in range(1, 6) for k in range(4)]
    (directory / "tiny.item").write_text("\n".join(items) + "\n")
    (directory / "tiny.inter").write_text("\n".join(inter) + "\n")
    return directory


def start(dataset: Path, *extra: str) -> ServerProcess:
    return ServerProcess([str(server_binary()), "serve", "--host", "127.0.0.1", "--port", "0", "--dataset",
                          str(dataset), "--model", "popularity", *extra])


def peak_rss(server: ServerProcess) -> int:
    """The server process's peak resident memory (VmHWM), bytes."""
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in directory.iterdir()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("loading")
    dataset = write_dataset(root / "dataset")
    server = start(dataset)
    yield root, server
    assert server.stop() == 0, server.output


def test_enormous_config_is_refused_and_the_old_model_keeps_serving(world):
    root, server = world
    good = write_checkpoint(root / "good")
    with Client(server.address, timeout=60) as client:
        first = client.load_model("dh", str(good))
        assert client.model_info("dh").version == first.version
        before = peak_rss(server)
        big = root / "big"
        shutil.copytree(good, big)
        config = json.loads((good / "config.json").read_text())
        (big / "config.json").write_text(json.dumps({**config, **ENORMOUS}))
        with pytest.raises(RpcError) as refused:
            client.load_model("dh", str(big))
        assert refused.value.code() == StatusCode.INVALID_ARGUMENT and refused.value.field == "path"
        assert "num_hidden_layers" in refused.value.details() and "1024" in refused.value.details()
        # The 400-byte config: layers right, vocabulary and width wrong.
        (big / "config.json").write_text(json.dumps({**config, "vocab_size": 65536, "hidden_size": 4096,
                                                     "num_attention_heads": 32, "num_key_value_heads": 32}))
        with pytest.raises(RpcError) as refused:
            client.load_model("dh", str(big))
        assert "vocab_size 65536, hidden_size 4096" in refused.value.details()
        assert peak_rss(server) - before < 64 << 20, "nothing of the described size was allocated"
        assert server.alive()
        info = client.model_info("dh")
        assert info.version == first.version and info.kind == "dual-head"
        assert len(client.recommend(history=[1, 2], top_k=3, model="dh").items) == 3


def test_failed_sighup_reload_keeps_the_old_version(world):
    root, server = world
    directory = write_checkpoint(root / "reloaded")
    good_config = (directory / "config.json").read_text()
    with Client(server.address, timeout=60) as client:
        version = client.load_model("reloaded", str(directory)).version
        (directory / "config.json").write_text(json.dumps({**json.loads(good_config), **ENORMOUS}))
        failures = sum("reload of 'reloaded'" in line and "failed" in line for line in server.lines)
        server.process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: sum("reload of 'reloaded'" in line and "failed" in line
                                      for line in server.lines) > failures, 30), server.output
        assert client.model_info("reloaded").version == version
        assert len(client.recommend(history=[3], top_k=2, model="reloaded").items) == 2
        (directory / "config.json").write_text(good_config)
        server.process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: client.model_info("reloaded").version > version, 30), server.output


def test_concurrent_loads_of_one_name_get_distinct_versions(world):
    root, server = world
    directory = write_checkpoint(root / "twin")
    specs = [str(directory), "popularity"] * 2  # the server queues at most 4 loads; a fifth would be refused
    results: list = [None] * len(specs)

    def load(i: int) -> None:
        with Client(server.address, timeout=60) as client:
            results[i] = client.load_model("twin", specs[i])

    threads = [threading.Thread(target=load, args=(i,)) for i in range(len(specs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    versions = [r.version for r in results]
    assert sorted(versions) == list(range(min(versions), min(versions) + len(specs))), versions
    with Client(server.address, timeout=60) as client:
        info = client.model_info("twin")
    last = specs[versions.index(max(versions))]
    assert info.version == max(versions)
    assert info.kind == ("popularity" if last == "popularity" else "dual-head"), (versions, specs, info.kind)


def test_shard_index_outside_the_checkpoint_is_refused(world):
    root, server = world
    outside = write_checkpoint(root / "victim")
    sharded = root / "sharded"
    sharded.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(outside / name, sharded / name)
    header_length = struct.unpack("<Q", (outside / "model.safetensors").read_bytes()[:8])[0]
    names = [n for n in json.loads((outside / "model.safetensors").read_bytes()[8:8 + header_length]) if n != "__metadata__"]
    with Client(server.address, timeout=60) as client:
        for target in ("../victim/model.safetensors", str(outside / "model.safetensors"), "../../../../etc/passwd"):
            (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {n: target for n in names}}))
            with pytest.raises(RpcError) as refused:
                client.load_model("sharded", str(sharded))
            assert refused.value.code() == StatusCode.INVALID_ARGUMENT, target
            assert "checkpoint directory" in refused.value.details(), refused.value.details()


def test_loading_writes_nothing_into_the_checkpoint(world):
    root, server = world
    directory = write_checkpoint(root / "untouched")
    before = snapshot(directory)
    with Client(server.address, timeout=60) as client:
        client.load_model("untouched", str(directory))
    assert snapshot(directory) == before


def test_calibrated_probabilities_end_to_end(world):
    root, server = world
    directory = write_checkpoint(root / "calibrated")
    with Client(server.address, timeout=60) as client:
        client.load_model("calibrated", str(directory))
        assert client.model_info("calibrated").calibrated_ranks == 3
        assert client.model_info("popularity").calibrated_ranks == 0
        items = client.recommend(history=[1], top_k=6, model="calibrated", return_probabilities=True).items
        probabilities = [item.probability for item in items]
        assert all(p is not None for p in probabilities[:3]) and probabilities[3:] == [None] * 3, probabilities
        assert probabilities[:3] == sorted(probabilities[:3], reverse=True)
        plain = client.recommend(history=[1], top_k=3, model="popularity", return_probabilities=True).items
        assert [item.probability for item in plain] == [None] * 3


def test_crlf_token_file(tmp_path):
    dataset = write_dataset(tmp_path / "dataset")
    tokens = tmp_path / "tokens"
    tokens.write_bytes(b"# tokens\r\nuser-token\r\nadmin admin-token\r\n")
    server = start(dataset, "--auth-token-file", str(tokens))
    try:
        with Client(server.address, token="user-token", timeout=30) as client:
            assert len(client.recommend(history=[1], top_k=2).items) == 2
        with Client(server.address, token="admin-token", timeout=30) as admin:
            assert admin.model_info().kind == "popularity"
        with Client(server.address, token="user-token\r", timeout=30) as wrong:
            with pytest.raises(RpcError):
                wrong.recommend(history=[1])
    finally:
        assert server.stop() == 0, server.output


def cpu_has_bf16() -> bool:
    return "avx512_bf16" in Path("/proc/cpuinfo").read_text()


def test_bfloat16_weights_score_close_to_float32_but_not_equal(tmp_path):
    """`serve --precision bfloat16` packs the loaded checkpoint's projections and item table in bfloat16: its scores
    stay within bfloat16's rounding of a float32 server's (8 mantissa bits: cosines within .03, tau .05) yet differ
    from them, so the option reached the model."""
    if not cpu_has_bf16():
        pytest.skip("this CPU has no AVX512_BF16")
    dataset = write_dataset(tmp_path / "dataset")
    directory = write_checkpoint(tmp_path / "tiny")
    scores = {}
    for precision in ("float32", "bfloat16"):
        server = start(dataset, "--precision", precision)
        try:
            with Client(server.address, timeout=60) as client:
                client.load_model("tiny", str(directory))
                scores[precision] = np.array([[item.score for item in client.score_items(
                    list(range(1, 9)), history=history, model="tiny").items] for history in ([1], [2, 5], [3, 4, 8])])
        finally:
            assert server.stop() == 0, server.output
    difference = np.abs(scores["bfloat16"] - scores["float32"])
    assert difference.max() <= 0.03 / 0.05, (scores, difference)
    assert difference.max() > 0, "bfloat16 scores equal float32's to the bit: the weights were not packed in bfloat16"


def test_bfloat16_is_refused_on_a_cpu_without_it(tmp_path):
    """R2EC_ISA=avx2 makes the server use the AVX2 kernels, which have no bfloat16 products."""
    done = subprocess.run([str(server_binary()), "serve", "--port", "0", "--dataset", str(write_dataset(tmp_path / "d")),
                           "--precision", "bfloat16"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, R2EC_ISA="avx2"))
    assert done.returncode != 0
    assert "--precision bfloat16 needs a CPU with AVX512_BF16" in done.stderr, done.stderr
