"""``periface eval ...``: the evaluation protocols as commands; JSON, PNG plots and an HTML report per run."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .report import Bars, pct, write_html, write_json

eval_app = typer.Typer(no_args_is_help=True, help="Evaluation protocols (LFW verification, identification, detection).")
console = Console()

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
