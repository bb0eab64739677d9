"""benchmarks/cold_items.py on a hand-made dataset: for each item it can hold out, the rows it must keep were worked
out by hand (a held-out item keeps only the interactions that are their user's last by time)."""
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "benchmarks", "cold_items.py")
HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ROWS = {  # name -> row; u3's rows are out of time order in the file (its last by time is C)
    "u1A": "u1\tA\t4\t1\n", "u1B": "u1\tB\t3\t2\n", "u1C": "u1\tC\t5\t3\n",
    "u2B": "u2\tB\t2\t1\n", "u2A": "u2\tA\t4\t2\n",
    "u3C": "u3\tC\t1\t5\n", "u3A": "u3\tA\t3\t1\n",
}
ITEMS = "item_id:token\tmovie_title:token_seq\n" + "".join(f"{i}\tFilm {i}\n" for i in "ABCD")
# Kept rows per held-out item. D has no interaction; C is u1's and u3's last; A is u2's last only.
KEPT = {
    "A": ["u1B", "u1C", "u2B", "u2A", "u3C"],
    "B": ["u1A", "u1C", "u2A", "u3C", "u3A"],
    "C": list(ROWS),
    "D": list(ROWS),
}


def run(tmp_path, *args):
    src = tmp_path / "tiny"
    src.mkdir(exist_ok=True)
    (src / "tiny.inter").write_text(HEADER + "".join(ROWS.values()))
    (src / "tiny.item").write_text(ITEMS)
    out = subprocess.run([sys.executable, SCRIPT, str(src), str(tmp_path / "cold"), *args],
                         capture_output=True, text=True)
    return out


def read(path):
    with open(path) as f:
        return f.readlines()


@pytest.mark.parametrize("seed", range(1, 9))
def test_catalogue_share_holds_one_item_out_and_the_unseen_copy_drops_it(tmp_path, seed):
    out = run(tmp_path, "--of", "catalogue", "--fraction", "0.25", "--seed", str(seed),
              "--unseen", str(tmp_path / "unseen"))
    assert out.returncode == 0, out.stderr
    unseen_items = read(tmp_path / "unseen" / "unseen.item")
    held = sorted(set("ABCD") - {line.split("\t")[0] for line in unseen_items[1:]})
    assert len(held) == 1 and len(unseen_items) == 4
    held = held[0]
    assert read(tmp_path / "cold" / "cold.inter") == [HEADER] + [ROWS[k] for k in KEPT[held]]
    assert "".join(read(tmp_path / "cold" / "cold.item")) == ITEMS  # the text of every item stays known
    assert read(tmp_path / "unseen" / "unseen.inter") == [HEADER] + [ROWS[k] for k in KEPT[held]
                                                                    if ROWS[k].split("\t")[1] != held]
    assert "held out 1 of 4 catalogue items" in out.stdout


def test_target_share_draws_from_the_test_targets_only(tmp_path):
    held = set()
    for seed in range(1, 13):
        out = run(tmp_path, "--fraction", "0.5", "--seed", str(seed))
        assert out.returncode == 0, out.stderr
        kept = read(tmp_path / "cold" / "cold.inter")
        match = [item for item in "AC" if kept == [HEADER] + [ROWS[k] for k in KEPT[item]]]
        assert len(match) == 1, kept
        held.add(match[0])
        assert "held out 1 of 2 test-target items" in out.stdout
    assert held == {"A", "C"}


def test_bad_fraction_is_refused(tmp_path):
    out = run(tmp_path, "--fraction", "0")
    assert out.returncode != 0 and "--fraction must be in (0, 1]" in out.stderr
