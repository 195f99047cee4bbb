"""One device, never mixed: every experiment kind leaves the shared model exactly as it was
(same weights, same device, eval mode, trainable), and on a GPU every kind runs there with
predictions back on the CPU. The CUDA cases carry the ``gpu`` marker: conftest deselects them
on machines without CUDA (they are not skipped-and-counted)."""
import copy

import pytest
import torch

from lotus_core.context import Context
from lotus_core.core.device import model_device, resolve_device
from lotus_core.core.errors import LotusError
from lotus_core.lottery.controls import ControlConfig
from lotus_core.lottery.core_ticket import CoreTicketConfig
from lotus_core.lottery.instability import InstabilityConfig
from lotus_core.lottery.lota import LoTAConfig
from lotus_core.lottery.rigl import RigLConfig
from lotus_core.lottery.supermask import SupermaskConfig
from lotus_core.lottery.ticket_transfer import TicketTransferConfig
from lotus_core.lottery.issp import ISSPConfig
from lotus_core.lottery.lth import LTHConfig
from lotus_core.patches import score_images
from lotus_core.patches.ticket_training import LotteryTrainConfig
from lotus_core.pruning import PRUNERS
from lotus_core.pruning.sensitivity import SensitivityConfig
from lotus_core.pruning.sweep import SweepConfig
from lotus_core.results.registry import experiments
from lotus_core.speed.run import SpeedConfig
from lotus_core.results.runs import run_experiment
from lotus_core.patches.fidelity import FidelityConfig
from lotus_core.results.store import Store
from lotus_core.training.evaluate import predict
from lotus_core.training.finetune import FinetuneConfig

from tests.conftest import make_tiny_imageset

LTH = LTHConfig(target=0.4, prune_fraction=0.25, steps=1, batch_size=8, limit=50)
KINDS = {  # one tiny config per experiment kind
    "sweep": SweepConfig(methods=tuple(PRUNERS), sparsities=(0.5,), limit=50, finetune_steps=2,
                         method_options={m: {"calib_size": 8} for m, p in PRUNERS.items() if p.needs_calibration}),
    "sweep-essential": SweepConfig(methods=("omp", "random"), sparsities=(0.5,), limit=50, protocol="essential",
                                   recipe=FinetuneConfig(epochs=1, batch_size=32, train_limit=64)),
    "lth": LTH,
    "lth-control": ControlConfig(LTH, 1, "reinit"),
    "issp": ISSPConfig(target=0.5, per_round=0.3, denoisers=2, lookahead_steps=2, finetune_steps=2, batch_size=8,
                       limit=50),
    "lottery-train": LotteryTrainConfig(epochs=1, steps_per_epoch=1, batch_size=8, fraction=0.05, limit=50),
    "finetune": FinetuneConfig(epochs=1, batch_size=32, train_limit=64, limit=50),
    "sensitivity": SensitivityConfig((0.5,), 50),
    "speed": SpeedConfig(methods=("dense", "masked"), batch_sizes=(2,), best_batch=False, sparsities=(0.5,), limit=20,
                         min_run_time=0.01),
    "core-ticket": CoreTicketConfig(partitions=2, steps=1, batch_size=8, limit=50),
    "instability": InstabilityConfig(ks=(0, 1), steps=2, batch_size=8, alphas=3, limit=50),
    "lota": LoTAConfig(calibrate_steps=1, steps=1, batch_size=8, limit=50),
    "rigl": RigLConfig(target=0.5, steps=2, update_every=1, batch_size=8, limit=50),
    "supermask": SupermaskConfig(steps=2, batch_size=8, limit=50),
    "ticket-transfer": TicketTransferConfig(source="fashion-mnist-0to4", steps=1, batch_size=8, limit=50),
    "fidelity": FidelityConfig(scorers=("cls", "random"), limit=20, steps=4),
}
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def test_every_job_kind_is_covered():
    jobs_kinds = {kind for kind, spec in experiments().items() if spec.job}
    assert jobs_kinds | {"sensitivity"} == {k.replace("-essential", "") for k in KINDS}


def run_kind(ctx: Context, kind: str) -> dict:
    name = kind.replace("-essential", "")
    if name == "lth-control":
        run_experiment(ctx, "lth", LTH)
    return run_experiment(ctx, name, KINDS[kind])  # the kind's registered function


@pytest.fixture
def device_ctx(request, tmp_path, trained_tiny_vit):
    device = resolve_device(request.param)
    model = copy.deepcopy(trained_tiny_vit).to(device)
    return Context(model, "tiny-trained@seed0", "tiny", {"input_size": (1, 28, 28), "mean": (0.5,), "std": (0.5,)},
                   make_tiny_imageset(100, seed=0), Store(tmp_path / "d.db"),
                   _train=make_tiny_imageset(200, seed=1, split="train"))


@pytest.mark.parametrize("device_ctx", DEVICES, indirect=True)
@pytest.mark.parametrize("kind", list(KINDS))
def test_experiment_leaves_the_shared_model_untouched(device_ctx, kind):
    ctx = device_ctx
    before = {k: v.clone() for k, v in ctx.model.state_dict().items()}
    device = model_device(ctx.model)
    summary = run_kind(ctx, kind)
    assert summary["run_id"] and ctx.store.get_run(summary["run_id"])["status"] == "done"
    assert model_device(ctx.model) == device and not ctx.model.training
    assert all(p.requires_grad for p in ctx.model.parameters())
    after = ctx.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("device_ctx", DEVICES, indirect=True)
def test_predictions_and_patch_scores_come_back_on_the_cpu(device_ctx):
    ctx = device_ctx
    preds = predict(ctx.model, ctx.test.images[:20], ctx.data_config)
    scores = score_images(ctx.model, ctx.test.images[:8], ctx.data_config, "rollout")
    assert preds.device.type == "cpu" and preds.shape == (20,)
    assert scores.device.type == "cpu" and scores.shape == (8, 16)


def test_predict_refuses_a_model_in_train_mode(tiny_vit, tiny_data):
    with pytest.raises(ValueError, match="eval mode"):
        predict(tiny_vit.train(), tiny_data.images[:4], {"input_size": (1, 28, 28), "mean": (0.5,), "std": (0.5,)})


@pytest.mark.parametrize("name, message", [("tpu", "unknown device 'tpu'"), ("meta", "'meta' is not supported")])
def test_device_names_are_checked(name, message):
    with pytest.raises(LotusError, match=message):
        resolve_device(name)
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(LotusError, match="no CUDA GPU; use --device cpu"):
            resolve_device("cuda:0")
