"""``periface eval ...``: the evaluation protocols as commands; JSON, PNG plots and an HTML report per run."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..cli_options import MinProbabilityOpt
from .report import Bars, pct, pct_or_dash, write_html, write_json

eval_app = typer.Typer(no_args_is_help=True, help="Evaluation protocols (LFW verification, identification, detection).")
console = Console()
stderr = Console(stderr=True, soft_wrap=True)

PipelinesOpt = typer.Option("periface-sface,face_recognition", "--pipelines",
                            help="comma-separated: periface-<embedder> (sface, dlib, fusion, ...) and face_recognition")


def _lfw() -> Path:
    from .datasets import require_datasets

    return require_datasets() / "lfw"


@eval_app.command("lfw-verify")
def lfw_verify(
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="pair list in LFW format (default: LFW pairs.txt)"),
    root: Optional[Path] = typer.Option(None, "--root", help="image folder the pair list refers to"),
    mask: str = typer.Option("none", "--mask", help="none | probe | both: render masks on the pairs' images"),
    pipelines: str = PipelinesOpt,
    seed: int = typer.Option(0, "--seed", help="mask rendering seed"),
    out: Path = typer.Option(Path("results/eval"), "--out", help="folder for JSON, PNG and HTML"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """10-fold accuracy, TAR at FAR 1e-2 / 1e-3, EER and ROC on a pair list; face_recognition in the same run."""
    from .pipelines import build_pipelines
    from .verification import evaluate_pairs, plot_roc, public

    if mask not in ("none", "probe", "both"):
        raise typer.BadParameter("--mask must be none, probe or both")
    pairs = pairs or _lfw() / "pairs.txt"
    root = root or _lfw() / "images"
    names = pipelines.split(",")
    masked_methods: dict = {}
    with Bars() as bars:
        report = evaluate_pairs(pairs, root, build_pipelines(names), mask=mask, seed=seed, progress=bars)
        if mask == "probe":
            # What the product does with a masked probe (the masked path), beside the plain comparison above.
            from ..engine import Engine
            from .masked_eval import evaluate_masked_methods

            for name in (n for n in names if n.startswith("periface-")):
                engine = Engine(name.removeprefix("periface-"))
                if engine.has_masked_path:
                    masked_methods[name] = evaluate_masked_methods(pairs, root, engine, name, seed=seed, progress=bars)
    stem = f"verify_{Path(pairs).stem}_mask-{mask}"
    png = out / f"{stem}_roc.png"
    plot_roc(report, png, f"{Path(pairs).name}, mask={mask}")
    doc = public(report) | {"masked_path": masked_methods}
    write_json(out / f"{stem}.json", doc)
    header = ["pipeline", "accuracy", "TAR@FAR1e-2", "TAR@FAR1e-3", "EER", "images without face"]
    rows = [[n, f"{pct(r['accuracy'])} ± {pct(r['accuracy_std'])}", pct(r["tar_at_far_1e-2"]), pct(r["tar_at_far_1e-3"]),
             pct(r["eer"]), str(r["images_without_face"])] for n, r in doc["pipelines"].items()]
    rows += [[f"{n} / masked path: {m}", f"{pct(r['accuracy'])} ± {pct(r['accuracy_std'])}", pct(r["tar_at_far_1e-2"]),
              pct(r["tar_at_far_1e-3"]), pct(r["eer"]), "-"]
             for n, rep in masked_methods.items() for m, r in rep["methods"].items()]
    write_html(out / f"{stem}.html", f"Verification on {Path(pairs).name}, mask={mask}",
               [(f"{doc['pairs']} pairs", header, rows)], [png])
    _show(as_json, doc, header, rows, f"{Path(pairs).name}, mask={mask}")


@eval_app.command("lfw-identify")
def lfw_identify(
    mask: str = typer.Option("probe", "--mask", help="none | probe"),
    pipelines: str = PipelinesOpt,
    max_probes: Optional[int] = typer.Option(None, "--max-probes", help="seeded subsample of the mated probes"),
    masked_path: bool = typer.Option(True, "--masked-path/--no-masked-path",
                                     help="also run each backbone's masked path (renders masks on every gallery photo)"),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("results/eval"), "--out"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Gallery of one unmasked photo per person + single-image distractors; masked probes; CMC and DIR@FPIR 1%."""
    from .identification import evaluate_identification, plot_cmc
    from .pipelines import build_pipelines

    names = pipelines.split(",")
    with Bars() as bars:
        doc = evaluate_identification(_lfw() / "images", build_pipelines(names), mask=mask, seed=seed,
                                      max_probes=max_probes, progress=bars)
        doc["masked_path"] = {}
        if mask == "probe" and masked_path:
            from ..engine import Engine
            from .masked_eval import evaluate_identification_methods

            for name in (n for n in names if n.startswith("periface-")):
                engine = Engine(name.removeprefix("periface-"))
                if engine.has_masked_path:
                    doc["masked_path"][name] = evaluate_identification_methods(
                        _lfw() / "images", engine, name, seed=seed, max_probes=max_probes, progress=bars)
    stem = f"identify_lfw_mask-{mask}"
    png = out / f"{stem}_cmc.png"
    plot_cmc(doc, png, f"LFW identification, mask={mask}")
    write_json(out / f"{stem}.json", doc)
    header = ["pipeline", "rank-1", "rank-5", "rank-10", "DIR@FPIR1%", "probes without face"]
    rows = [[n, pct(r["rank1"]), pct(r["rank5"]), pct(r["rank10"]), pct(r.get("dir_at_fpir_1e-2", float("nan"))),
             str(r["probes_without_face"])] for n, r in doc["pipelines"].items()]
    rows += [[f"{n} / masked path: {m}", pct(r["rank1"]), pct(r["rank5"]), pct(r["rank10"]),
              pct(r.get("dir_at_fpir_1e-2", float("nan"))), str(r["probes_without_face"])]
             for n, rep in doc["masked_path"].items() for m, r in rep["methods"].items()]
    write_html(out / f"{stem}.html", f"LFW identification, mask={mask}",
               [(f"gallery {doc['gallery']}, mated probes {doc['mated_probes']}, non-mated {doc['non_mated_probes']}",
                 header, rows)], [png])
    _show(as_json, doc, header, rows, f"LFW identification, mask={mask}")


def _show(as_json: bool, doc: dict, header: list[str], rows: list[list[str]], title: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(doc, default=str) + "\n")
        return
    table = Table(*header, title=title)
    for r in rows:
        table.add_row(*r)
    console.print(table)


@eval_app.command("detect")
def eval_detect(
    voc: Path = typer.Option(..., "--voc", help="Pascal-VOC folder: annotations/ + images/, Annotations/ + "
                                                "JPEGImages/, or XML beside the images"),
    finder: str = typer.Option("crowd", "--finder", help="crowd (scenes, the default) | fast (video) | plain "
                                                         "(the single-face photo finder)"),
    label: List[str] = typer.Option([], "--label", help="what a label means, LABEL=STATE with STATE none, correct, "
                                                        "incorrect, face (state not given) or ignore; repeatable"),
    reference: bool = typer.Option(True, "--reference/--no-reference",
                                   help="face_recognition's detector (dlib HOG, upsample 1) in the same run"),
    limit: Optional[int] = typer.Option(None, "--limit", help="the first N annotation files only"),
    out: Path = typer.Option(Path("results/eval"), "--out", help="folder for JSON and HTML"),
    as_json: bool = typer.Option(False, "--json"),
    min_probability: Optional[float] = MinProbabilityOpt,
) -> None:
    """Recall, precision and AP at IoU 0.5 per mask class and face size, and the mask state of each face found;
    face_recognition in the same run."""
    from ..cli import fail
    from ..errors import AnnotationError
    from .detect_eval import plot_precision_recall
    from .voc import parse_label_overrides, read_voc_folder

    try:
        overrides = parse_label_overrides(label)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    if finder not in ("crowd", "fast", "plain"):
        raise typer.BadParameter("--finder must be crowd, fast or plain")
    if min_probability is not None and finder == "plain":
        raise typer.BadParameter("applies to the crowd finders' calibrated scores, not --finder plain",
                                 param_hint="--min-probability")
    try:
        voc_set = read_voc_folder(voc, overrides, limit)
    except AnnotationError as e:
        fail(e, as_json)
    for file, reason in voc_set.skipped:
        stderr.print(f"[yellow]skipped[/yellow] {file}: {reason}", highlight=False)
    if voc_set.unknown_labels:
        stderr.print("[yellow]left out, label not known[/yellow] (say what it means with --label NAME=STATE): "
                     + ", ".join(f"{k} ({v})" for k, v in voc_set.unknown_labels.most_common()), highlight=False)
    doc = run_detection_eval(voc, voc_set, finder, reference, min_probability)
    for file, reason in doc["unreadable_images"]:
        stderr.print(f"[yellow]skipped[/yellow] {file}: {reason}", highlight=False)
    if doc["images"] == 0:
        fail(AnnotationError("none of the annotated images could be read", source=str(voc)), as_json)
    doc["labels"] = dict(voc_set.labels)
    doc["labels_left_out"] = dict(voc_set.unknown_labels)
    doc["files_skipped"] = voc_set.skipped
    stem = f"detect_{Path(voc).resolve().name}_{finder}" + (f"_p{min_probability:g}" if min_probability is not None else "")
    write_json(out / f"{stem}.json", doc)
    tables = detection_tables(doc)
    png = plot_precision_recall(doc, out / f"{stem}_pr.png", f"{Path(voc).name}: precision-recall, IoU 0.5")
    write_html(out / f"{stem}.html", f"Detection on {voc}", tables, [png])
    if as_json:
        sys.stdout.write(json.dumps(doc, default=str) + "\n")
        return
    wide = Console(width=max(console.width, 150))  # two methods side by side
    for caption, header, rows in tables:
        table = Table(*header, title=caption)
        for r in rows:
            table.add_row(*r)
        wide.print(table)
    wide.print(f"JSON and HTML in {out}/{stem}.*")


def run_detection_eval(folder: Path, voc_set, finder: str, reference: bool, min_probability: float | None = None,
                       ) -> dict:
    from ..detect.crowd import CrowdFinder
    from ..engine import Engine
    from .detect_eval import FittingImages, evaluate_scenes, unseen_subset
    from .reference import FaceRecognitionReference

    engine = Engine()
    finders = {"crowd": lambda: CrowdFinder.default(threshold=min_probability),
               "fast": lambda: CrowdFinder.fast(threshold=min_probability), "plain": lambda: engine.finder}
    with Bars() as bars:
        doc = evaluate_scenes(voc_set.scenes, finders[finder](),
                              describe=lambda rgb, faces: engine.describe(rgb, faces, embed=False, visibility=False),
                              reference=FaceRecognitionReference(upsample=1) if reference else None,
                              subsets_of=unseen_subset(FittingImages.load()),
                              progress=bars("images", len(voc_set.scenes)))
    unseen = doc["subsets"].get("unseen")
    doc["images_seen_in_fitting"] = doc["images"] - (unseen["detection"]["periface"]["images"] if unseen else 0)
    if doc["images_seen_in_fitting"] == 0:
        del doc["subsets"]["unseen"]  # the same images as "all"
    if doc["images"] == 0:
        return doc
    doc = {"dataset": str(folder), "finder": finder, "min_probability": min_probability,
           "protocol": "IoU 0.5, VOC greedy matching by score; bands by the box's shorter side (< 32, 32-96, > 96 px); "
                       "'unseen': images periface was not fitted on", **doc}
    seconds = doc["seconds_per_image"]
    if seconds.get("face_recognition"):
        doc["time_ratio_to_face_recognition"] = seconds["periface"] / seconds["face_recognition"]
    return doc


def detection_tables(doc: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    from .detect_eval import goal_sentence

    tables = []
    bands = [("all", "all faces"), ("small", "< 32 px"), ("medium", "32-96 px"), ("large", "> 96 px"),
             (">=32", ">= 32 px"), ("masked>=32", "masked >= 32 px")]
    for name, subset in doc["subsets"].items():
        det = subset["detection"]
        methods = list(det)
        header = ["faces"] + [f"{m} {k}" for m in methods for k in ("recall", "precision", "AP")]
        rows = []
        for key, title in bands:
            row = [f"{title} ({det['periface'][key]['faces']})"]
            for m in methods:
                r = det[m][key]
                false = f", {r['false_boxes']} false" if "false_boxes" in r else ""
                row += [f"{pct_or_dash(r['recall'])} ({r['found']}{false})", pct_or_dash(r.get("precision")),
                        pct_or_dash(r.get("ap"))]
            rows.append(row)
        for state, per in det["periface"]["per_class"].items():
            if per["all"]["faces"]:
                row = [f"class {state} ({per['all']['faces']})"]
                for m in methods:
                    row += [pct_or_dash(det[m]["per_class"][state]["all"]["recall"]), "", ""]
                rows.append(row)
        caption = (f"{'every image' if name == 'all' else 'images periface was not fitted on'}: "
                   f"{det['periface']['images']} images; {goal_sentence(subset['goal'])}")
        tables.append((caption, header, rows))
        mask = subset["mask_state"]
        if mask and mask["faces"]:
            said = ["none", "correct", "incorrect"]
            rows = [[f"annotated {t} ({sum(c.values())})"] + [str(c[s]) for s in said]
                    for t, c in mask["confusion"].items()]
            tables.append((f"mask state of the faces found ({name}): three-way "
                           f"{pct_or_dash(mask['three_way_accuracy'])}, masked vs none "
                           f"{pct_or_dash(mask['masked_vs_none_accuracy'])}", ["", *said], rows))
    seconds = doc["seconds_per_image"]
    tables.append(("seconds per image", list(seconds) + (["ratio"] if len(seconds) > 1 else []),
                   [[f"{v:.3f}" for v in seconds.values()]
                    + ([f"{doc['time_ratio_to_face_recognition']:.2f}x"] if len(seconds) > 1 else [])]))
    return tables
