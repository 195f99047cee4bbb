"""The report's data-lottery-ticket sections: a patch-selection example (the least-attended patches hidden, computed
on a few images with the cheap ``cls`` scorer) and the lottery-training convergence (lottery data against full
images, epoch by epoch, from the stored run)."""
from __future__ import annotations

from ...context import Context
from ...core.errors import LotusError
from ...results.store import RunStatus
from ...core.text import count_text
from ..figures import titled
from .model import ReportOptions, Section, pct
from .stored import NotStored, Stored, read


def patches_section(ctx: Context, options: ReportOptions, stored: Stored) -> Section:
    from ...patches.analysis import class_indices, explain_images
    from ..patch_figures import patch_overlays, patch_title

    classes = ctx.test.classes
    label = min(max(0, options.example_class), len(classes) - 1)
    try:
        rep = explain_images(ctx, options.scorer, options.drop,
                             indices=class_indices(ctx.test, label, options.example_images))
    except LotusError as exc:  # the example cannot be made on this model or data: the section says why
        return Section.of("patches", f"{exc}", missing="Patches")
    n, p = len(rep.scores), rep.grid.num_patches
    unchanged = rep.unchanged_lottery
    sentence = (f"The model's attention ranks the {p} patches of each image; hiding the {p - rep.kept_count} it "
                f"attends to least ({pct(options.drop, 0)}, washed out in grey) leaves its answer unchanged on "
                f"{unchanged} of {n} example {classes[label]} images.")
    titles = [patch_title(f"#{i}", classes[label], classes[int(a)], classes[int(b)])
              for i, a, b in zip(rep.indices, rep.prediction, rep.prediction_lottery)]
    fig = patch_overlays(rep.model_images, rep.scores, rep.keep, rep.grid, titles)
    top = fig.layout.margin.t
    titled(fig, "Patch importance (brighter = more attended); titles: answer on the whole image -> with the grey "
                "patches hidden", above=top)
    fig.update_layout(height=fig.layout.height + fig.layout.margin.t - top)
    return Section.of("patches", sentence, fig, unchanged / n if n else None)


def convergence_section(ctx: Context, options: ReportOptions, stored: Stored) -> Section:
    from ...patches.ticket_training import epoch_frame
    from ..patch_figures import convergence

    run = stored.lottery
    if run is None:
        raise NotStored("no lottery-training run is stored for this model yet")
    frame = read(run, lambda r: epoch_frame(ctx, r["id"]))
    if run["status"] == RunStatus.DONE and run["summary"]:
        numbers = read(run, _numbers)
        sentence, value, best = _finished(numbers), numbers["lottery"], numbers["best"]
    else:
        last = frame.groupby("arm")["accuracy"].last().reindex(["lottery", "full"])
        sentence = (f"After {count_text(int(frame['epoch'].max()), 'finished epoch')} of a run that is {run['status']}: "
                    f"lottery tickets {pct(last['lottery'])}, full images {pct(last['full'])}.")
        value, best = float(last["lottery"]), None
    return Section.of("convergence", sentence, convergence(frame, best), value)


def _numbers(run: dict) -> dict:
    """What the sentence of a finished lottery-training run states, read off its stored config and summary
    (accuracies are fractions; ``*_ticket`` is None for runs stored before the ticket test)."""
    summary = run["summary"]
    lot, full = summary["lottery"], summary["full"]
    return {"drop": run["config"]["drop"], "epochs": int(summary["epochs"]), "best": summary["best_full_accuracy"],
            "lottery": lot["final_accuracy"], "full": full["final_accuracy"],
            "e_lottery": lot["epochs_to_within_1pt"], "e_full": full["epochs_to_within_1pt"],
            "lottery_ticket": lot.get("final_ticket_accuracy"), "full_ticket": full.get("final_ticket_accuracy")}


def _finished(n: dict) -> str:
    """The sentence of a finished lottery-training run from its :func:`_numbers`."""
    epochs, best = count_text(n["epochs"], "epoch"), pct(n["best"])
    reach = (f"it comes within 1 point of the best full-image accuracy ({best}) at epoch {n['e_lottery']}"
             if n["e_lottery"] else f"it does not come within 1 point of the best full-image accuracy ({best}) in {epochs}")
    full_reach = f"epoch {n['e_full']}" if n["e_full"] else f"not within {epochs}"
    sentence = (f"Trained on data lottery tickets ({pct(n['drop'], 0)} of each image's patches hidden), the model reaches "
                f"{pct(n['lottery'])} after {epochs}, against {pct(n['full'])} on full images; {reach} (full images: "
                f"{full_reach}).")
    if n["lottery_ticket"] is not None:
        sentence += (f" On the test images' own tickets it scores {pct(n['lottery_ticket'])} (the full-image model: "
                     f"{pct(n['full_ticket'])}): a large gap to its whole-image accuracy means the hidden patches' "
                     "positions, not the image, taught it.")
    return sentence
