"""SparseGPT: exact counts, the identity at 0%, N:M patterns and a smaller reconstruction error than magnitude."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lotus_core.core.errors import LotusError
from lotus_core.data.images import to_model_input
from lotus_core.models.arch import data_config
from lotus_core.pruning import prune, scoped_parameters
from lotus_core.pruning.calibration import input_stats
from lotus_core.pruning.ranking import num_to_prune
from lotus_core.pruning.sparsegpt import hessians, sparsegpt_layer
from tests.conftest import make_tiny_imageset


def calib(n=16):
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_zero_sparsity_returns_the_weights_unchanged(tiny_vit):
    mask = prune(tiny_vit, "sparsegpt", 0.0, calib=calib())
    params = scoped_parameters(tiny_vit)
    assert mask.num_pruned() == 0 and set(mask.weights) == set(params)
    assert all(torch.equal(mask.weights[n], params[n].detach()) for n in params)


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.9])
def test_every_layer_prunes_exactly_its_share_and_pruned_weights_are_zero(tiny_vit, sparsity):
    mask = prune(tiny_vit, "sparsegpt", sparsity, calib=calib())
    for name, keep in mask.items():
        assert int((~keep).sum()) == num_to_prune(sparsity, keep.numel()), name
        assert torch.all(mask.weights[name][~keep] == 0), name
    pruned = mask.apply(tiny_vit)
    for name, p in scoped_parameters(pruned).items():
        assert torch.equal(p.detach(), mask.weights[name]), name
    assert not torch.equal(scoped_parameters(tiny_vit)["blocks.0.mlp.fc1.weight"], mask.weights["blocks.0.mlp.fc1.weight"])


def test_two_four_keeps_exactly_two_of_every_four(tiny_vit):
    mask = prune(tiny_vit, "sparsegpt-nm", 0.3, calib=calib(), n=2, m=4)
    for name, keep in mask.items():
        assert torch.all(keep.reshape(-1, 4).sum(dim=1) == 2), name
        assert torch.all(mask.weights[name][~keep] == 0), name
    assert mask.sparsity == 0.5
    with pytest.raises(LotusError, match="not a multiple of M=4"):
        prune(tiny_vit, "sparsegpt-nm", 0.0, calib=calib(), blocksize=6)


def _error(weight, new, x):
    return float(((weight - new) @ x.T).pow(2).sum())  # ||(W - W') X^T||_F^2 on the calibration tokens


@pytest.mark.parametrize("sparsity", [0.5, 0.7, 0.9])
def test_reconstruction_error_is_below_magnitude_pruning_at_the_same_sparsity(tiny_vit, sparsity):
    """On the layers of block 0 (both see the dense model's inputs), for unstructured and 2:4.

    Calibrated on the tiny task's images: structured inputs, as real ones are (on isotropic noise
    after a LayerNorm, H is close to a multiple of I and OBS has nothing to exploit over |w|).
    """
    x_in = to_model_input(make_tiny_imageset(64, seed=1, split="train").images, data_config(tiny_vit))
    names = [n for n in scoped_parameters(tiny_vit) if n.startswith("blocks.0.")]
    tokens = {n: x.double() for n, x in input_stats(tiny_vit, names, x_in, lambda x: x).items()}  # one pass: X itself
    assert all(torch.allclose(2 * tokens[n].T @ tokens[n], h) for n, h in hessians(tiny_vit, names, x_in).items())
    mask = prune(tiny_vit, "sparsegpt", sparsity, calib=x_in)
    magnitude = prune(tiny_vit, "omp-layerwise", sparsity)
    nm = prune(tiny_vit, "sparsegpt-nm", 0.0, calib=x_in)
    nm_magnitude = prune(tiny_vit, "nm", 0.0)
    params = scoped_parameters(tiny_vit)
    for name in names:
        w, x = params[name].detach().double(), tokens[name]
        assert _error(w, mask.weights[name].double(), x) < _error(w, w * magnitude[name], x), name
        assert _error(w, nm.weights[name].double(), x) < _error(w, w * nm_magnitude[name], x), name


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 6), cols=st.integers(1, 12), sparsity=st.floats(0, 0.95), blocksize=st.integers(1, 8),
       seed=st.integers(0, 10_000))
def test_layer_prunes_exactly_round_sparsity_numel_for_any_shape(rows, cols, sparsity, blocksize, seed):
    g = torch.Generator().manual_seed(seed)
    w, x = torch.randn(rows, cols, generator=g), torch.randn(3 * cols, cols, generator=g)
    new, keep = sparsegpt_layer(w, 2 * x.double().T @ x.double(), sparsity, blocksize=blocksize)
    assert int((~keep).sum()) == num_to_prune(sparsity, rows * cols)
    assert torch.all(new[~keep] == 0) and new.dtype == w.dtype and new.shape == w.shape


def test_options_are_checked():
    w = torch.randn(4, 8)
    with pytest.raises(LotusError, match="dampening > 0"):
        sparsegpt_layer(w, torch.eye(8), 0.5, damp=0.0)
    with pytest.raises(LotusError, match="needs a calibration batch"):
        from lotus_core.pruning import PRUNERS, PruneOptions

        PRUNERS["sparsegpt"].prepare({}, PruneOptions())
