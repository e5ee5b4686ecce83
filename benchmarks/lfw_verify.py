"""LFW View-2 verification: periface (sface-robust, SFace and dlib backends) and the face_recognition approach, same run.

    python benchmarks/lfw_verify.py                        # unmasked, all 6,000 pairs
    python benchmarks/lfw_verify.py --mask probe           # second image of each pair masked by the renderer

Writes results/lfw_verify[_mask-probe].json and a ROC plot; prints a summary table. Embeddings are cached in
.cache/embeddings, so a rerun only computes what is new.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, write_result  # noqa: E402

from periface.evaluation.datasets import require_datasets  # noqa: E402
from periface.evaluation.pipelines import build_pipelines  # noqa: E402
from periface.evaluation.report import Bars  # noqa: E402
from periface.evaluation.verification import evaluate_pairs, plot_roc, public  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=Path, default=None, help="pair list (default LFW pairs.txt)")
    ap.add_argument("--root", type=Path, default=None, help="image root (default LFW images)")
    ap.add_argument("--mask", choices=["none", "probe", "both"], default="none")
    ap.add_argument("--pipelines", default="periface-sface-robust,periface-sface,periface-dlib,face_recognition")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    lfw = require_datasets() / "lfw"
    pairs = args.pairs or lfw / "pairs.txt"
    root = args.root or lfw / "images"
    pipelines = build_pipelines(args.pipelines.split(","))
    with Bars() as bars:
        report = evaluate_pairs(pairs, root, pipelines, mask=args.mask, seed=args.seed, progress=bars)
    suffix = "" if args.mask == "none" else f"_mask-{args.mask}"
    plot_roc(report, RESULTS / f"lfw_verify{suffix}.png", f"LFW View-2, mask={args.mask}")
    ref = report["pipelines"].get("face_recognition")
    for r in report["pipelines"].values():
        if ref:
            r["accuracy_ratio_to_face_recognition"] = r["accuracy"] / ref["accuracy"]
            r["tar_1e-3_ratio_to_face_recognition"] = r["tar_at_far_1e-3"] / max(ref["tar_at_far_1e-3"], 1e-9)
    path = write_result(f"lfw_verify{suffix}", public(report))
    table = Table("pipeline", "accuracy (10-fold)", "TAR@FAR1e-2", "TAR@FAR1e-3", "EER", "images without face",
                  "acc ratio vs face_recognition", title=f"LFW View-2 ({report['pairs']} pairs), mask={args.mask}")
    for name, r in report["pipelines"].items():
        table.add_row(name, f"{r['accuracy']*100:.2f}% ± {r['accuracy_std']*100:.2f}", f"{r['tar_at_far_1e-2']*100:.2f}%",
                      f"{r['tar_at_far_1e-3']*100:.2f}%", f"{r['eer']*100:.2f}%", str(r["images_without_face"]),
                      f"{r.get('accuracy_ratio_to_face_recognition', float('nan')):.4f}")
    Console().print(table)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
