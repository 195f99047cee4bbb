"""Mask similarity and its chance levels: exact small cases, Monte Carlo, the matrix, the CLI."""
import itertools
import json
import math

import pytest
import torch

from lotus_core.cli import main
from lotus_core.core.errors import LotusError
from lotus_core.pruning import Mask, prune, random_like
from lotus_core.pruning.similarity import chance_jaccard_exact, mask_similarity, similarity_matrix


def m(**layers):
    return Mask({k: torch.tensor(v, dtype=torch.bool) for k, v in layers.items()})


def test_exact_small_example():
    a = m(w=[1, 1, 1, 0, 0, 0, 0, 0])  # keeps 3 of 8
    b = m(w=[1, 1, 0, 1, 0, 0, 0, 0])  # keeps 3 of 8, 2 in common
    s = mask_similarity(a, b)
    assert s["cosine"] == pytest.approx(2 / 3)
    assert s["chance_cosine"] == pytest.approx((3 * 3 / 8) / 3)  # E|A ∩ B| = 9/8
    assert s["jaccard_pruned"] == pytest.approx(4 / 6)  # pruned: 5 each, 4 in common, union 6
    assert s["sparsity_a"] == s["sparsity_b"] == 5 / 8
    # the chance Jaccard by enumerating every pair of 5-subsets of 8 items
    ratios = [len(set(p) & set(q)) / len(set(p) | set(q))
              for p in itertools.combinations(range(8), 5) for q in itertools.combinations(range(8), 5)]
    assert s["chance_jaccard_pruned"] == pytest.approx(sum(ratios) / len(ratios), abs=1e-12)
    assert s["per_layer"]["w"] == {k: v for k, v in s.items() if k != "per_layer"}


def test_exact_chance_jaccard_by_enumeration_for_unequal_sizes():
    for n, p1, p2 in ((6, 2, 3), (7, 0, 3), (5, 5, 2), (9, 4, 7)):
        ratios = [len(set(p) & set(q)) / len(set(p) | set(q))
                  for p in itertools.combinations(range(n), p1) for q in itertools.combinations(range(n), p2)]
        assert chance_jaccard_exact(n, p1, p2) == pytest.approx(sum(ratios) / len(ratios), abs=1e-12)
    assert chance_jaccard_exact(4, 0, 0) == 1.0  # nothing pruned on either side: identical pruned sets


def test_two_layers_sum_their_counts():
    a = m(u=[1, 1, 0, 0], v=[1, 0, 0, 0, 0, 0])
    b = m(u=[1, 0, 1, 0], v=[1, 1, 1, 0, 0, 0])
    s = mask_similarity(a, b)
    assert s["cosine"] == pytest.approx(2 / math.sqrt(3 * 5))  # kept both: 1 + 1; kept: 3 and 5
    assert s["chance_cosine"] == pytest.approx((2 * 2 / 4 + 1 * 3 / 6) / math.sqrt(3 * 5))
    assert s["jaccard_pruned"] == pytest.approx((1 + 3) / (7 + 5 - 4))
    assert s["per_layer"]["u"]["cosine"] == pytest.approx(1 / 2) and s["per_layer"]["v"]["cosine"] == pytest.approx(1 / math.sqrt(3))
    assert s["numel"] == 10 and s["sparsity_a"] == pytest.approx(7 / 10)


@pytest.mark.parametrize("sparsity_a, sparsity_b", [(0.9, 0.9), (0.2, 0.35)])
def test_chance_levels_match_monte_carlo_within_four_standard_errors(tiny_vit, sparsity_a, sparsity_b):
    a = prune(tiny_vit, "omp", sparsity_a)
    b = prune(tiny_vit, "omp-layerwise", sparsity_b)
    s = mask_similarity(a, b)
    draws = [mask_similarity(random_like(a, seed=i), random_like(b, seed=10_000 + i)) for i in range(400)]
    for key in ("cosine", "jaccard_pruned"):
        for layer in (None, *list(a)[:3]):
            values = torch.tensor([d[key] if layer is None else d["per_layer"][layer][key] for d in draws],
                                  dtype=torch.float64)
            expected = s[f"chance_{key}"] if layer is None else s["per_layer"][layer][f"chance_{key}"]
            se = float(values.std()) / math.sqrt(len(values))
            assert abs(float(values.mean()) - expected) < 4 * se, (key, layer)


def test_two_ten_percent_sparse_random_masks_score_090_by_chance(tiny_vit):
    r1, r2 = prune(tiny_vit, "random", 0.1, seed=1), prune(tiny_vit, "random", 0.1, seed=2)
    s = mask_similarity(r1, r2)
    assert s["chance_cosine"] == pytest.approx(0.9, abs=1e-3)
    assert abs(s["cosine"] - s["chance_cosine"]) < 0.02  # random masks sit at their chance level


def test_identical_masks_and_matrix(tiny_vit):
    a = prune(tiny_vit, "omp", 0.5)
    s = mask_similarity(a, a)
    assert s["cosine"] == pytest.approx(1.0) and s["jaccard_pruned"] == pytest.approx(1.0)
    assert list(s["per_layer"]) == list(a)
    values, chance = similarity_matrix({"omp": a, "random": prune(tiny_vit, "random", 0.5)})
    assert values.loc["omp", "omp"] == pytest.approx(1.0)
    assert values.loc["omp", "random"] == values.loc["random", "omp"]
    assert chance.loc["omp", "random"] == pytest.approx(0.5, abs=1e-3)
    jac, _ = similarity_matrix({"omp": a, "random": prune(tiny_vit, "random", 0.5)}, "jaccard_pruned")
    assert jac.loc["omp", "random"] == mask_similarity(a, prune(tiny_vit, "random", 0.5))["jaccard_pruned"]
    with pytest.raises(LotusError, match="unknown similarity measure 'dice'"):
        similarity_matrix({"omp": a}, "dice")


def test_mismatched_masks_are_refused(tmp_path, capsys):
    with pytest.raises(LotusError, match=r"different parameters \('x' is only in the first\)"):
        mask_similarity(m(w=[1, 0], x=[1]), m(w=[1, 0]))
    with pytest.raises(LotusError, match=r"different parameters \('y' is only in the second\)"):
        mask_similarity(m(w=[1, 0]), m(w=[1, 0], y=[0]))
    with pytest.raises(LotusError, match="shapes differ for 'w'"):
        mask_similarity(m(w=[1, 0]), m(w=[1, 0, 1]))
    m(w=[1, 0]).save(tmp_path / "a.safetensors")
    m(w=[1, 0, 1]).save(tmp_path / "b.safetensors")
    assert main(["similarity", str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "mask shapes differ for 'w': (2,) vs (3,)" in err and err.count("\n") == 1


def test_cli_json_has_every_field(tmp_path, capsys):
    m(w=[1, 0, 0, 1], v=[1, 1]).save(tmp_path / "c.safetensors")
    m(w=[1, 1, 0, 0], v=[1, 0]).save(tmp_path / "d.safetensors")
    assert main(["similarity", str(tmp_path / "c.safetensors"), str(tmp_path / "d.safetensors"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    expect = mask_similarity(Mask.load(tmp_path / "c.safetensors"), Mask.load(tmp_path / "d.safetensors"))
    assert out == expect  # JSON floats read back exactly
    assert set(out) == {"cosine", "chance_cosine", "jaccard_pruned", "chance_jaccard_pruned", "sparsity_a",
                        "sparsity_b", "numel", "per_layer"}
    assert out["per_layer"]["w"]["jaccard_pruned"] == pytest.approx(1 / 3)
    assert out["per_layer"]["v"]["cosine"] == pytest.approx(1 / math.sqrt(2))
    assert main(["similarity", str(tmp_path / "c.safetensors"), str(tmp_path / "missing.safetensors")]) == 2
    assert "missing.safetensors does not exist" in capsys.readouterr().err
