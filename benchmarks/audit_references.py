"""LOTUS's pruning methods against their authors' reference code, run on identical inputs (docs/audit.md).

The default ViT, its blocks' Linear weights, 128 seeded training images (the sweep's calibration batch),
seed 0. The references are imported from checkouts of their repositories (never copied into LOTUS):

    python benchmarks/audit_references.py --refs /path/with/checkouts [--sparsity 0.8] [--json out.json]

where ``--refs`` holds ``ganguli-lab+Synaptic-Flow``, ``locuslab+wanda``, ``IST-DASLab+sparsegpt`` and
``allenai+hidden-networks`` (each a plain checkout of the repository's default branch). Each comparison prints
the fraction of mask entries that differ and, where a count rule differs, how many entries that explains.
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from lotus_core.data import load_dataset
from lotus_core.data.images import subset_indices, to_model_input
from lotus_core.models.arch import data_config
from lotus_core.models.loading import load_model
from lotus_core.pruning import prune, scoped_parameters
from lotus_core.pruning.sparsegpt import hessians, sparsegpt_layer


def load(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def differ(a: dict, b: dict) -> float:
    """Fraction of mask entries that differ between two masks over the same tensors."""
    total = sum(a[n].numel() for n in a)
    return sum(int((a[n].bool() != b[n].bool()).sum()) for n in a) / total


def compare(ours: dict, ref: dict) -> dict:
    """Differing fraction, reference pruned minus LOTUS pruned, and whether the mask that keeps fewer keeps a
    subset of the other's (then every difference is the count rule, none is the ranking)."""
    pruned = {k: sum(int((~m[n].bool()).sum()) for n in m) for k, m in (("ours", ours), ("ref", ref))}
    fewer, more = (ours, ref) if pruned["ours"] >= pruned["ref"] else (ref, ours)
    nested = all(not (fewer[n].bool() & ~more[n].bool()).any() for n in ours)
    return {"differ": differ(ours, ref), "reference_pruned_minus_lotus": pruned["ref"] - pruned["ours"],
            "nested": nested}


def masked_copy(model: nn.Module, names: list[str], layers, dtype: torch.dtype = torch.float32
                ) -> tuple[nn.Module, list]:
    """A copy of ``model`` whose scoped Linears are Synaptic-Flow's masked ``Layers.layers.Linear``
    (weight * weight_mask in the forward); its masked_parameters list as the reference's pruners take it."""
    work = copy.deepcopy(model).eval().to(dtype)
    for mod in work.modules():
        if hasattr(mod, "fused_attn"):
            mod.fused_attn = False  # double backward (GraSP) needs the plain attention
    modules = dict(work.named_modules())
    masked = []
    for name in names:
        parent, _, child = name.rsplit(".", 1)[0].rpartition(".")
        old = modules[name.rsplit(".", 1)[0]]
        new = layers.Linear(old.in_features, old.out_features, bias=old.bias is not None)
        masks = {"weight_mask": torch.ones_like(old.weight),
                 **({"bias_mask": torch.ones_like(old.bias)} if old.bias is not None else {})}
        new.load_state_dict({**old.state_dict(), **masks})
        new.to(old.weight.dtype)
        setattr(modules[parent], child, new)
        masked.append((new.weight_mask, new.weight))
    return work, masked


def reference_mask(masked, names) -> dict:
    return {n: m.detach().clone().bool() for n, (m, _) in zip(names, masked)}


def synaptic_flow_modules(refs: Path) -> tuple[types.ModuleType, types.ModuleType]:
    root = refs / "ganguli-lab+Synaptic-Flow"
    return load(root / "Layers" / "layers.py", "sf_layers"), load(root / "Pruners" / "pruners.py", "sf_pruners")


def snip_grasp(model, names, calib, labels, sparsity: float, refs: Path, out: dict) -> None:
    """Synaptic-Flow's SNIP and GraSP (T = 200) against LOTUS's on one batch; GraSP at T = 1 against T = 200."""
    layers, pruners = synaptic_flow_modules(refs)
    loader = [(calib, labels)]
    density = 1 - sparsity
    for method, cls in (("snip", pruners.SNIP), ("grasp", pruners.GraSP)):
        work, masked = masked_copy(model, names, layers)
        pruner = cls(masked)
        pruner.score(work, F.cross_entropy, loader, "cpu")
        pruner.mask(density, "global")
        ref = reference_mask(masked, names)
        ours = prune(model, method, sparsity, calib=calib, labels=labels)
        out[method] = compare(ours, ref)
        print(method, out[method], flush=True)
        if method == "grasp":
            t1 = prune(model, "grasp", sparsity, calib=calib, labels=labels, temperature=1.0)
            out["grasp"]["t1_vs_t200_differ"] = differ(t1, ours)
            out["grasp"]["t1_kept_overlap"] = (sum(int((t1[n] & ours[n]).sum()) for n in names)
                                               / max(1, ours.numel() - ours.num_pruned()))
            print("grasp T=1 vs T=200", out["grasp"], flush=True)


def synflow(model, names, sparsity: float, refs: Path, out: dict) -> None:
    """Synaptic-Flow's SynFlow (1 and 100 rounds, exponential schedule) against LOTUS's, the reference run in float32
    (as published) and float64 (LOTUS's precision), and the reference's two precisions against each other."""
    layers, pruners = synaptic_flow_modules(refs)
    density = 1 - sparsity
    calib, labels = torch.zeros(1, *data_config(model)["input_size"]), torch.zeros(1, dtype=torch.long)  # shape only
    refs_by = {}
    for rounds, dtype in ((1, torch.float32), (1, torch.float64), (100, torch.float32), (100, torch.float64)):
        # the reference scores in float32 (its model.double() is commented out); float64 is LOTUS's precision
        work, masked = masked_copy(model, names, layers, dtype)
        pruner = pruners.SynFlow(masked)
        default = torch.get_default_dtype()
        torch.set_default_dtype(dtype)  # its all-ones input is made with the default dtype
        try:
            for r in range(rounds):  # prune.prune_loop, exponential schedule
                pruner.score(work, F.cross_entropy, [(calib.to(dtype), labels)], "cpu")
                pruner.mask(density ** ((r + 1) / rounds), "global")
        finally:
            torch.set_default_dtype(default)
        ref = reference_mask(masked, names)
        ours = prune(model, "synflow", sparsity, rounds=rounds)
        out[f"synflow_{rounds}r_{str(dtype)[6:]}"] = compare(ours, ref)
        print(f"synflow {rounds} rounds, reference in {dtype}:", out[f"synflow_{rounds}r_{str(dtype)[6:]}"], flush=True)
        refs_by[rounds, dtype] = ref
        if dtype == torch.float64:  # how much the reference moves with its own precision: the noise floor
            out[f"synflow_{rounds}r_reference_float32_vs_float64"] = compare(refs_by[rounds, torch.float32], ref)


def wanda(model, names, calib, sparsity: float, refs: Path, out: dict) -> None:
    root = refs / "locuslab+wanda" / "image_classifiers"
    sys.path.insert(0, str(root))
    try:
        utils = load(root / "prune_utils.py", "wanda_prune_utils")
    finally:
        sys.path.remove(str(root))
    work = copy.deepcopy(model).eval()
    args = types.SimpleNamespace(prune_metric="wanda", prune_granularity="row", sparsity=sparsity)
    with torch.no_grad():
        utils.prune_vit(args, work, calib, "cpu")
    params = dict(work.named_parameters())
    ref = {n: params[n] != 0 for n in names}
    ours = prune(model, "wanda", sparsity, calib=calib)
    out["wanda"] = compare(ours, ref)


def sparsegpt(model, names, calib, sparsity: float, refs: Path, out: dict) -> None:
    """Layer by layer on the same Hessian (the first block's inputs): the reference's fasterprune vs ours."""
    sys.modules.setdefault("transformers", types.SimpleNamespace(Conv1D=type("Conv1D", (), {})))
    root = refs / "IST-DASLab+sparsegpt"
    sys.path.insert(0, str(root))
    try:
        ref_mod = load(root / "sparsegpt.py", "ref_sparsegpt")
    finally:
        sys.path.remove(str(root))
    first = [n for n in names if n.startswith("blocks.0.")]
    H = hessians(model, first, calib)
    modules = dict(model.named_modules())
    rows = {}
    for name in first:
        layer = copy.deepcopy(modules[name.rsplit(".", 1)[0]])
        ref = ref_mod.SparseGPT(layer)
        ref.H = H[name].float().clone()  # the same 2 X^T X (its scale cancels in both); the reference is float32
        ref.nsamples = 1
        synchronize, torch.cuda.synchronize = torch.cuda.synchronize, lambda: None  # it times itself on CUDA
        try:
            ref.fasterprune(sparsity, prunen=0, prunem=0, blocksize=128, percdamp=0.01)
        finally:
            torch.cuda.synchronize = synchronize
        w_ref = layer.weight.detach()
        w_ours, keep = sparsegpt_layer(modules[name.rsplit(".", 1)[0]].weight.double(), H[name], sparsity)
        rows[name] = {**compare({name: keep}, {name: w_ref != 0}),
                      "max_abs_weight_diff_on_common_kept": float(((w_ref.double() - w_ours.double()).abs()
                                                                   * ((w_ref != 0) & keep)).max()),
                      "max_abs_weight": float(w_ours.abs().max())}
    out["sparsegpt_block0"] = rows


def omp(model, names, sparsity: float, out: dict) -> None:
    """torch.nn.utils.prune.global_unstructured (L1) on the same tensors against LOTUS's omp."""
    from torch.nn.utils import prune as torch_prune

    work = copy.deepcopy(model)
    modules = dict(work.named_modules())
    targets = [(modules[n.rsplit(".", 1)[0]], "weight") for n in names]
    torch_prune.global_unstructured(targets, pruning_method=torch_prune.L1Unstructured, amount=sparsity)
    ref = {n: modules[n.rsplit(".", 1)[0]].weight_mask.bool() for n in names}
    out["omp"] = compare(prune(model, "omp", sparsity), ref)


def edge_popup(refs: Path, out: dict) -> None:
    """The reference GetSubnet on scores.abs() (allenai/hidden-networks) vs LOTUS's EdgePopup: masks and the
    gradient reaching the scores on one random Linear layer."""
    from lotus_core.lottery.supermask import EdgePopup

    source = (refs / "allenai+hidden-networks" / "simple_mnist_example.py").read_text()
    start = source.index("class GetSubnet")
    namespace: dict = {"torch": torch, "autograd": torch.autograd}
    exec(compile(source[start: source.index("class SupermaskConv")], "GetSubnet", "exec"), namespace)
    GetSubnet = namespace["GetSubnet"]
    torch.manual_seed(0)
    weight, x, r = torch.randn(96, 288), torch.randn(32, 288), torch.randn(32, 96)
    popup = EdgePopup(weight.shape, 0.5, torch.Generator().manual_seed(0))
    scores = popup.scores.detach().clone().requires_grad_(True)
    (F.linear(x, weight * GetSubnet.apply(scores.abs(), 0.5)) * r).sum().backward()
    lin = nn.Linear(288, 96, bias=False)
    lin.weight.data.copy_(weight)
    lin.weight.requires_grad_(False)
    parametrize.register_parametrization(lin, "weight", popup)
    (lin(x) * r).sum().backward()
    ref_mask = GetSubnet.apply(scores.detach().abs(), 0.5).bool()
    ours_mask = popup(torch.ones_like(weight)).detach().bool()
    out["edge_popup"] = {"mask_differ": float((ref_mask != ours_mask).float().mean()),
                         "score_grad_max_abs_diff": float((popup.scores.grad - scores.grad).abs().max())}


STEPS = ("omp", "sparsegpt", "edge-popup", "wanda", "synflow", "snip-grasp")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", type=Path, required=True, help="folder holding the reference checkouts")
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--only", default="", help="comma list of steps to run (default all): " + ", ".join(STEPS))
    args = parser.parse_args()
    torch.manual_seed(0)
    model = load_model("default").eval()
    names = list(scoped_parameters(model))
    train = load_dataset("fashion-mnist", "train")
    idx = subset_indices(len(train), 128, 0)
    calib, labels = to_model_input(train.images[idx], data_config(model)), train.labels[idx]
    out: dict = {"sparsity": args.sparsity}
    steps = {"omp": lambda: omp(model, names, args.sparsity, out),
             "sparsegpt": lambda: sparsegpt(model, names, calib, 0.5, args.refs, out),
             "edge-popup": lambda: edge_popup(args.refs, out),
             "wanda": lambda: wanda(model, names, calib, args.sparsity, args.refs, out),
             "synflow": lambda: synflow(model, names, args.sparsity, args.refs, out),
             "snip-grasp": lambda: snip_grasp(model, names, calib, labels, args.sparsity, args.refs, out)}
    for name, step in steps.items():
        if args.only and name not in args.only.split(","):
            continue
        t0 = time.perf_counter()
        step()
        print(f"{name} [{time.perf_counter() - t0:.1f} s]", json.dumps(out, indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
