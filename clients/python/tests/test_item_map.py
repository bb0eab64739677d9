"""r2ec_client.item_map and the notebook plots: classical scaling recovers a known planar configuration (distances
checked against the true points, not against earlier output), hop distances on hand-drawn graphs, the breadth-first
walk over SimilarItems (size limit, edges only inside the map) with a stand-in client, and the two figures drawn
from results. No server needed (the notebook test draws them from a real server)."""
from __future__ import annotations

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("matplotlib")

from r2ec_client import Recommendation, ScoredItem  # noqa: E402
from r2ec_client.item_map import classical_mds, hop_distances, item_map  # noqa: E402
from r2ec_client.plots import plot_item_map, plot_recommendations  # noqa: E402
from r2ec_client.results import Item, Items, ScoredItems  # noqa: E402


def pairwise(points):
    return np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))


def test_classical_scaling_recovers_planar_points_up_to_rotation():
    rng = np.random.default_rng(3)
    points = rng.normal(size=(40, 2)) * [3.0, 1.0]
    recovered = classical_mds(pairwise(points))
    assert recovered.shape == (40, 2)
    np.testing.assert_allclose(pairwise(recovered), pairwise(points), atol=1e-9)


def test_classical_scaling_fixes_each_axis_sign():
    points = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    recovered = classical_mds(pairwise(points))
    for axis in range(2):
        column = recovered[:, axis]
        assert column[np.argmax(np.abs(column))] > 0


def test_hop_distances():
    # a path 0-1-2-3 and an island 4: path hops, the island one more than the largest
    distances = hop_distances(5, [(0, 1), (1, 2), (2, 3)])
    np.testing.assert_array_equal(distances[0], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(distances[4], [4, 4, 4, 4, 0])
    assert (distances == distances.T).all()


class RingClient:
    """Items 0..n-1 on a ring; an item's neighbours are the next ones around it, nearest first."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.asked: list[str] = []

    def similar_items(self, item_id, top_k=10, model="", timeout=None):
        self.asked.append(str(item_id))
        i = int(item_id)
        order = [(i + step * sign) % self.n for step in range(1, self.n) for sign in (1, -1)]
        near = list(dict.fromkeys(order))[:top_k]
        return ScoredItems([ScoredItem(str(j), f"item {j}", 1.0 / (rank + 1), None, rank + 1)
                            for rank, j in enumerate(near)], "ring")

    def get_items(self, item_ids, model="", timeout=None):
        return Items([Item(str(i), f"item {i}", 2000, ["Drama" if int(i) % 2 else "Comedy"], "", 0, 0.0)
                      for i in item_ids])


def test_item_map_walks_breadth_first_up_to_its_size():
    client = RingClient(50)
    atlas = item_map(client, seeds=[0], size=9, neighbours=4)
    assert atlas.item_ids == ["0", "1", "49", "2", "48", "3", "47", "4", "46"]
    assert client.asked == atlas.item_ids  # every item in the map asked once, no item outside it
    assert all(a < b < 9 for a, b in atlas.edges)
    assert atlas.model == "ring" and atlas.coordinates.shape == (9, 2)
    # the ring's items lie in ring order along the map's first axis (a path laid out by its hops)
    first_axis = atlas.coordinates[:, 0]
    ring_position = [0, 1, -1, 2, -2, 3, -3, 4, -4]
    assert abs(np.corrcoef(first_axis, ring_position)[0, 1]) > 0.95


def test_figures_from_results():
    result = Recommendation([ScoredItem(str(i), f"Title {i}", 10.0 - i, (0.1 - i / 100) if i < 3 else None, i + 1)
                             for i in range(5)], "m", 2)
    figure = plot_recommendations(result)
    assert len(figure.axes) == 2  # scores, and probabilities where there are some
    labels = [label.get_text() for label in figure.axes[1].texts]
    assert labels.count("n/a") == 2
    without = Recommendation([ScoredItem("1", "A", 1.0, None, 1)], "m")
    assert len(plot_recommendations(without).axes) == 1
    atlas = item_map(RingClient(30), seeds=[0], size=20, neighbours=4)
    figure = plot_item_map(atlas, history=["0", "1"], recommended=["5", "6", "999"])
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert "item 0" in texts and "1" in texts and "2" in texts  # history by title, recommendations by rank
    with pytest.raises(ValueError):
        plot_recommendations(Recommendation([], "m"))
