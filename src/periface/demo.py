"""``periface demo``: the whole pipeline on the bundled sample images, in under a minute."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from rich.console import Console

from .privacy.consent import Consent

SAMPLES = Path(__file__).parent / "samples"
PEOPLE = ["alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"]


def run_demo(out_dir: Path, console: Console | None = None) -> dict[str, Any]:
    from .engine import Engine
    from .gallery import Gallery
    from .visual import draw_faces

    say = console.print if console else (lambda *a, **k: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    engine = Engine()
    doc: dict[str, Any] = {}

    say("[bold]1. Detect faces and mask state in group photos[/bold]")
    doc["detect"] = []
    for name in ("group_obama_and_biden.jpg", "group_kit_with_rose.jpg"):
        rgb = engine.load(SAMPLES / name)
        faces = engine.describe(rgb, engine.finder.find(rgb), embed=False)
        annotated = out_dir / f"annotated_{name}"
        draw_faces(rgb, faces, annotated)
        doc["detect"].append({"file": name, "faces": len(faces), "mask": faces.mask, "annotated": str(annotated)})
        say(f"  {name}: {len(faces)} faces, mask states {faces.mask} -> {annotated}")

    say("[bold]2. Mask state on a photo and on the same photo with a rendered mask[/bold]")
    probe = engine.load(SAMPLES / "probe_obama.jpg")
    masked_probe = _masked(probe)
    doc["mask"] = {"original": engine.face(probe).mask[0]}
    if masked_probe is not None:
        import cv2

        masked_path = out_dir / "probe_obama_masked.jpg"
        cv2.imwrite(str(masked_path), cv2.cvtColor(masked_probe, cv2.COLOR_RGB2BGR))
        doc["mask"]["rendered_mask"] = engine.face(masked_probe).mask[0]
        say(f"  original: {doc['mask']['original']}; with a rendered mask: {doc['mask']['rendered_mask']} -> {masked_path}")
    else:
        say(f"  original: {doc['mask']['original']} (mask renderer not available)")

    say("[bold]3. Verify (1:1) at FAR 1e-3[/bold]")
    doc["verify"] = []
    for a, b in (("verify_obama_a.jpg", "verify_obama_b.jpg"), ("verify_obama_a.jpg", "enrol_biden.jpg")):
        v = engine.verify(SAMPLES / a, SAMPLES / b)
        doc["verify"].append({"a": a, "b": b, "same": v.same, "score": round(v.score, 3), "far": v.far})
        say(f"  {a} vs {b}: {'same' if v.same else 'different'} (score {v.score:.3f}, threshold {v.threshold:.3f})")

    say("[bold]4. Enrol five consenting people[/bold]")
    gallery_dir = out_dir / "gallery"
    shutil.rmtree(gallery_dir, ignore_errors=True)
    for stale in (out_dir / "gallery.key",):
        stale.unlink(missing_ok=True)
    gallery = Gallery(gallery_dir, engine=engine, actor="demo")
    for person in PEOPLE:
        consent = Consent(subject=person, purpose="periface demo", collected_by="demo script")
        gallery.enroll(person, [SAMPLES / f"enrol_{person}.jpg"], consent=consent)
    say(f"  {len(gallery)} identities in {gallery_dir} (templates encrypted; key in {out_dir / 'gallery.key'})")

    say("[bold]5. Search (1:N): top 3 candidates for each probe[/bold]")
    doc["search"] = []
    probes: list[tuple[str, Any]] = [(p, SAMPLES / f"probe_{p}.jpg") for p in ("obama", "kit_harington", "alex_lacamoire")]
    if masked_probe is not None:
        probes.append(("obama (rendered mask)", masked_probe))
    for truth, img in probes:
        candidates = gallery.search(img, k=3, purpose="periface demo")
        doc["search"].append({"probe": truth, "candidates": [c.to_dict() for c in candidates]})
        ranked = ", ".join(f"{c.identity} {c.score:.2f} (FAR {c.far:.1g})" for c in candidates)
        say(f"  {truth}: {ranked}")
    report = gallery.audit.verify()
    doc["audit"] = {"records": report.records, "ok": report.ok}
    say(f"[bold]6. Audit log[/bold]: {report.records} records, chain {'verifies' if report.ok else 'BROKEN'}")
    return doc


def _masked(rgb):
    """The probe with a rendered surgical mask, or None when no face mesh was found."""
    from .mask.render import add_mask

    result = add_mask(rgb, seed=3)
    return None if result is None else result.image
