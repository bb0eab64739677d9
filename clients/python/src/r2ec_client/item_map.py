"""A 2-D map of catalogue items, computed on the client from SimilarItems answers (the server hands out no item
vectors, only each item's nearest neighbours under the model's own similarity, so the map is of that neighbour
graph): start from some items, ask each for its `neighbours` nearest (20: fewer leave the graph stringy), grow breadth-first up to `size` items, join
every item to its neighbours inside the map, and lay the graph out with Isomap: shortest-path distances in hops,
then classical multidimensional scaling to two dimensions (the top two eigenvectors of the double-centred squared
distances). Deterministic: the same answers give the same map. Needs numpy (the `[plot]` extra).

    from r2ec_client.item_map import item_map
    atlas = item_map(client, seeds=[50, 172, 181], size=300, model="default")
    atlas.to_pandas()          # item_id, title, genre, x, y
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence

from .requests import ids as _ids


@dataclass(frozen=True)
class ItemMap:
    item_ids: list[str]
    titles: list[str]
    genres: list[list[str]]
    coordinates: Any  # numpy array (n, 2)
    edges: list[tuple[int, int]]  # undirected neighbour pairs, by index into item_ids
    model: str
    neighbours: int
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {item: i for i, item in enumerate(self.item_ids)})

    def to_pandas(self):
        """One row per item: item_id, title, genre (the first listed), x, y."""
        import pandas
        return pandas.DataFrame({"item_id": self.item_ids, "title": self.titles,
                                 "genre": [g[0] if g else "" for g in self.genres],
                                 "x": self.coordinates[:, 0], "y": self.coordinates[:, 1]})


def neighbour_graph(client, seeds: Sequence, size: int = 300, neighbours: int = 20, model: str = "",
                    timeout: float | None = None) -> tuple[list[str], dict[str, list[str]], str]:
    """Breadth-first over SimilarItems from `seeds` until `size` items are in: (item ids in the order found, each
    item's neighbours, the model that answered). Items found beyond `size` are left out, with their edges."""
    order = _ids("seeds", seeds)
    found = set(order)
    queue = deque(order)
    adjacency: dict[str, list[str]] = {}
    model_name = model
    while queue:
        item = queue.popleft()
        answer = client.similar_items(item, top_k=neighbours, model=model, timeout=timeout)
        model_name = answer.model or model_name
        adjacency[item] = answer.item_ids
        for neighbour in answer.item_ids:
            if neighbour not in found and len(order) < size:
                found.add(neighbour)
                order.append(neighbour)
                queue.append(neighbour)
    return order, adjacency, model_name


def hop_distances(count: int, edges: list[tuple[int, int]]):
    """All-pairs shortest paths in hops (BFS from every node); unreachable pairs get the largest finite distance
    plus one, so separate components sit apart instead of breaking the scaling."""
    import numpy as np
    neighbours: list[list[int]] = [[] for _ in range(count)]
    for a, b in edges:
        neighbours[a].append(b)
        neighbours[b].append(a)
    distances = np.full((count, count), -1.0)
    for source in range(count):
        distances[source, source] = 0
        frontier, hops = [source], 0
        while frontier:
            hops += 1
            following = []
            for node in frontier:
                for other in neighbours[node]:
                    if distances[source, other] < 0:
                        distances[source, other] = hops
                        following.append(other)
            frontier = following
    distances[distances < 0] = distances.max() + 1
    return distances


def classical_mds(distances, dimensions: int = 2):
    """Coordinates whose Euclidean distances best match `distances` (Torgerson scaling); each axis's sign fixed so
    its largest-magnitude coordinate is positive (eigenvectors have no sign of their own)."""
    import numpy as np
    count = len(distances)
    centring = np.eye(count) - 1.0 / count
    gram = -0.5 * centring @ (distances ** 2) @ centring
    values, vectors = np.linalg.eigh(gram)
    top = np.argsort(values)[::-1][:dimensions]
    coordinates = vectors[:, top] * np.sqrt(np.maximum(values[top], 0))
    for axis in range(coordinates.shape[1]):
        column = coordinates[:, axis]
        if column[np.argmax(np.abs(column))] < 0:
            coordinates[:, axis] = -column
    return coordinates


def item_map(client, seeds: Sequence, size: int = 300, neighbours: int = 20, model: str = "",
             timeout: float | None = None) -> ItemMap:
    """The map of the `size` items nearest (breadth-first over SimilarItems) to `seeds`, with titles and genres
    from GetItems. Costs `size` SimilarItems calls and one GetItems call."""
    order, adjacency, model_name = neighbour_graph(client, seeds, size, neighbours, model, timeout)
    position = {item: i for i, item in enumerate(order)}
    edges = sorted({(min(a, b), max(a, b)) for item, near in adjacency.items() for a in [position[item]]
                    for b in (position.get(n) for n in near) if b is not None and a != b})
    coordinates = classical_mds(hop_distances(len(order), edges))
    items = client.get_items(order, model=model, timeout=timeout)
    return ItemMap(order, [item.title for item in items], [item.genres for item in items], coordinates, edges,
                   model_name, neighbours)
