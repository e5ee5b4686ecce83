"""Masked recognition on LFW: every masked-path method alone and combined, and the face_recognition approach,
on the same pairs / probes in the same run.

    python benchmarks/lfw_masked.py                       # View-2 verification (probe masked) + identification
    python benchmarks/lfw_masked.py --backbones sface,sface-masked --max-probes 3000

Verification: LFW View-2 pairs.txt, the second image of every pair masked by the renderer (worn correctly),
10-fold accuracy, TAR at FAR 1e-2/1e-3, EER. Identification: gallery = first image of each of the 1,680 people
with 2+ images (less a fixed tenth kept out for the open-set test) + all single-image people as distractors,
probes = their other images, masked; rank-1/5/10 and DIR at FPIR 1%. Writes results/lfw_masked.json and .html.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS  # noqa: E402

from periface import Engine  # noqa: E402
from periface.evaluation.datasets import require_datasets  # noqa: E402
from periface.evaluation.identification import evaluate_identification  # noqa: E402
from periface.evaluation.masked_eval import (  # noqa: E402
    evaluate_fusion_masked,
    evaluate_identification_methods,
    evaluate_masked_methods,
)
from periface.evaluation.pipelines import build_pipelines  # noqa: E402
from periface.evaluation.report import Bars, pct, write_html, write_json  # noqa: E402
from periface.evaluation.verification import evaluate_pairs, public  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", default="sface", help="periface embedders whose masked path is evaluated")
    ap.add_argument("--reference", default="face_recognition", help="comma list of plain pipelines run alongside")
    ap.add_argument("--max-probes", type=int, default=3000, help="seeded subsample of identification probes (0 = all)")
    ap.add_argument("--skip-identification", action="store_true")
    ap.add_argument("--skip-verification", action="store_true")
    ap.add_argument("--fusion", action="store_true",
                    help="also score the SFace+dlib fusion backend on masked probes, as Engine('fusion') runs it")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    lfw = require_datasets() / "lfw"
    doc: dict = {"verification": {}, "identification": {}}
    ver_rows, id_rows = [], []
    with Bars() as bars:
        for name in ([] if args.skip_verification else args.backbones.split(",")):
            engine = Engine(name)
            rep = evaluate_masked_methods(lfw / "pairs.txt", lfw / "images", engine, f"periface-{name}", seed=args.seed,
                                          progress=bars)
            doc["verification"][f"periface-{name}"] = rep
            for m, r in rep["methods"].items():
                ver_rows.append([f"periface-{name} / {m}", pct(r["accuracy"]), pct(r["tar_at_far_1e-2"]),
                                 pct(r["tar_at_far_1e-3"]), pct(r["eer"])])
        if args.fusion and not args.skip_verification:
            r = evaluate_fusion_masked(lfw / "pairs.txt", lfw / "images", seed=args.seed, progress=bars)
            doc["verification"]["periface-fusion (SFace+dlib, weights from View-1)"] = r
            ver_rows.append(["periface-fusion (SFace+dlib)", pct(r["accuracy"]), pct(r["tar_at_far_1e-2"]),
                             pct(r["tar_at_far_1e-3"]), pct(r["eer"])])
        refs = [p for p in args.reference.split(",") if p]
        if refs and not args.skip_verification:
            rep = public(evaluate_pairs(lfw / "pairs.txt", lfw / "images", build_pipelines(refs), mask="probe",
                                        seed=args.seed, progress=bars))
            for n, r in rep["pipelines"].items():
                doc["verification"][n] = r
                ver_rows.append([n, pct(r["accuracy"]), pct(r["tar_at_far_1e-2"]), pct(r["tar_at_far_1e-3"]), pct(r["eer"])])
        if not args.skip_identification:
            mp = args.max_probes or None
            for name in args.backbones.split(","):
                rep = evaluate_identification_methods(lfw / "images", Engine(name), f"periface-{name}", seed=args.seed,
                                                      max_probes=mp, progress=bars)
                doc["identification"][f"periface-{name}"] = rep
                for m, r in rep["methods"].items():
                    id_rows.append([f"periface-{name} / {m}", pct(r["rank1"]), pct(r["rank5"]), pct(r["rank10"]),
                                    pct(r.get("dir_at_fpir_1e-2", float("nan")))])
            if refs:
                rep = evaluate_identification(lfw / "images", build_pipelines(refs), mask="probe", seed=args.seed,
                                              max_probes=mp, progress=bars)
                for n, r in rep["pipelines"].items():
                    doc["identification"][n] = r
                    id_rows.append([n, pct(r["rank1"]), pct(r["rank5"]), pct(r["rank10"]),
                                    pct(r.get("dir_at_fpir_1e-2", float("nan")))])
    write_json(RESULTS / "lfw_masked.json", doc)
    vh = ["method", "accuracy", "TAR@FAR1e-2", "TAR@FAR1e-3", "EER"]
    ih = ["method", "rank-1", "rank-5", "rank-10", "DIR@FPIR1%"]
    write_html(RESULTS / "lfw_masked.html", "LFW with masked probes",
               [("View-2 verification, probe masked", vh, ver_rows), ("identification, masked probes", ih, id_rows)], [])
    console = Console()
    for title, header, rows in (("View-2 verification, probe masked", vh, ver_rows),
                                ("identification, masked probes", ih, id_rows)):
        if rows:
            t = Table(*header, title=title)
            for r in rows:
                t.add_row(*r)
            console.print(t)
    for name, r in doc["verification"].items():
        for far, a in r.get("impostors_above_shipped_thresholds", {}).items():
            print(f"{name}: of {r['impostor_pairs']} mismatched pairs at FAR {far}: {pct(a['masked_probe'])} above "
                  f"{a['masked_threshold']:.3f} with the probe masked, {pct(a['unmasked'])} above {a['threshold']:.3f} "
                  f"unmasked")
    print(f"wrote {RESULTS / 'lfw_masked.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
