import json
import math

import pytest
import torch

from lotus_core.cli import main
from lotus_core.errors import LotusError
from lotus_core.pruning import Mask, prune, random_like
from lotus_core.similarity import mask_similarity, similarity_matrix


def m(**layers):
    return Mask({k: torch.tensor(v, dtype=torch.bool) for k, v in layers.items()})


def test_exact_small_example():
    a = m(w=[1, 1, 1, 0, 0, 0, 0, 0])  # keeps 3 of 8
    b = m(w=[1, 1, 0, 1, 0, 0, 0, 0])  # keeps 3 of 8, 2 in common
    s = mask_similarity(a, b)
    assert s["cosine"] == pytest.approx(2 / 3)
    assert s["chance_cosine"] == pytest.approx((3 * 3 / 8) / 3)  # E overlap = 9/8
    # pruned sets: 5 each, both pruned at positions 4..7 -> 4; union 6
    assert s["jaccard_pruned"] == pytest.approx(4 / 6)
    exp_int = 5 * 5 / 8
    assert s["chance_jaccard_pruned"] == pytest.approx(exp_int / (10 - exp_int))
    assert s["sparsity_a"] == s["sparsity_b"] == 5 / 8


def test_chance_is_per_layer_and_matches_monte_carlo(tiny_vit):
    a = prune(tiny_vit, "omp", 0.9)
    b = prune(tiny_vit, "omp-layerwise", 0.9)
    s = mask_similarity(a, b)
    draws = [mask_similarity(random_like(a, seed=i), random_like(b, seed=1000 + i)) for i in range(200)]
    for key in ("cosine", "jaccard_pruned"):
        values = torch.tensor([d[key] for d in draws], dtype=torch.float64)
        se = float(values.std()) / math.sqrt(len(values))
        assert abs(float(values.mean()) - s[f"chance_{key}"]) < 4 * se + 1e-4, key
    # two 10%-sparse random masks score about 0.9 by chance: the number that must accompany 0.96
    r1, r2 = prune(tiny_vit, "random", 0.1, seed=1), prune(tiny_vit, "random", 0.1, seed=2)
    assert mask_similarity(r1, r2)["chance_cosine"] == pytest.approx(0.9, abs=1e-3)


def test_identical_masks_and_matrix(tiny_vit):
    a = prune(tiny_vit, "omp", 0.5)
    s = mask_similarity(a, a)
    assert s["cosine"] == pytest.approx(1.0) and s["jaccard_pruned"] == pytest.approx(1.0)
    assert set(s["per_layer"]) == set(a)
    values, chance = similarity_matrix({"omp": a, "random": prune(tiny_vit, "random", 0.5)})
    assert values.loc["omp", "omp"] == pytest.approx(1.0)
    assert values.loc["omp", "random"] == values.loc["random", "omp"]
    assert chance.loc["omp", "random"] == pytest.approx(0.5, abs=1e-3)


def test_mismatched_masks_are_refused(tmp_path, capsys):
    with pytest.raises(LotusError, match="different parameters \\('x' is only in the first\\)"):
        mask_similarity(m(w=[1, 0], x=[1]), m(w=[1, 0]))
    with pytest.raises(LotusError, match="shapes differ for 'w'"):
        mask_similarity(m(w=[1, 0]), m(w=[1, 0, 1]))
    m(w=[1, 0]).save(tmp_path / "a.safetensors")
    m(w=[1, 0, 1]).save(tmp_path / "b.safetensors")
    assert main(["similarity", str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "shapes differ" in err and err.count("\n") == 1
    m(w=[1, 0, 0, 1]).save(tmp_path / "c.safetensors")
    m(w=[1, 1, 0, 0]).save(tmp_path / "d.safetensors")
    assert main(["similarity", str(tmp_path / "c.safetensors"), str(tmp_path / "d.safetensors"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cosine"] == pytest.approx(0.5) and out["per_layer"]["w"]["jaccard_pruned"] == pytest.approx(1 / 3)
