"""The ml-100k item file read independently of the server, for tests that check answers against the dataset."""
from __future__ import annotations

import re

from conftest import REPO

DATASET = REPO / "data" / "ml-100k"


def items() -> dict[str, dict]:
    """item id -> {title, year, genres}, as r2ec's RecBole reader reads ml-100k.item."""
    rows = {}
    with open(DATASET / "ml-100k.item", encoding="utf-8", errors="replace") as f:
        next(f)
        for line in f:
            item_id, title, year, genres = (line.rstrip("\n").split("\t") + ["", "", ""])[:4]
            year = int(year) if year.isdigit() else 0
            # A row without a usable year column ("V", "unkonwn") takes it from a trailing "(1995)" in the title, as
            # r2ec's RecBole reader does.
            match = re.search(r"^(.*\S)\s*\((\d{4})\)$", title)
            if year == 0 and match:
                title, year = match.group(1), int(match.group(2))
            rows[item_id] = {"title": title, "year": year, "genres": genres.split()}
    return rows
