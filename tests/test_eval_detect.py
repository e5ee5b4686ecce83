"""``periface eval detect``: Pascal-VOC sets in their usual layouts and label names, bad files, difficult faces,
the images periface was fitted on, and the command itself on fixture photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from periface.cli import app
from periface.errors import AnnotationError
from periface.evaluation.datasets import datasets_root
from periface.evaluation.detect_eval import FITTING_IMAGES, FittingImages, image_fingerprint, load_scene_image
from periface.evaluation.detection import DetectionTally
from periface.evaluation.voc import parse_label_overrides, read_voc_folder, split_of

FIXTURES = Path(__file__).parent / "fixtures"
# Boxes drawn around the fixture faces (annotation style: brow to chin).
TWO_PEOPLE = [("with_mask", (235, 60, 385, 240)), ("without_mask", (790, 80, 940, 255))]
OBAMA_SMALL = [("face", (105, 70, 212, 199))]


def voc_xml(filename: str, objects: list[tuple[str, tuple]], size: tuple[int, int] | None = None,
            difficult: set[int] = frozenset()) -> str:
    parts = [f"<annotation><folder>images</folder><filename>{filename}</filename>"]
    if size:
        parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    for k, (label, box) in enumerate(objects):
        parts.append(f"<object><name>{label}</name><difficult>{int(k in difficult)}</difficult><bndbox>"
                     + "".join(f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
                     + "</bndbox></object>")
    return "".join(parts) + "</annotation>"


def make_set(root: Path, layout: tuple[str, str] = ("annotations", "images"),
             scenes: dict[str, list] | None = None) -> Path:
    scenes = scenes or {"two_people.jpg": TWO_PEOPLE, "obama_small.jpg": OBAMA_SMALL}
    ann, img = (root / layout[0], root / layout[1])
    ann.mkdir(parents=True, exist_ok=True)
    img.mkdir(parents=True, exist_ok=True)
    for name, objects in scenes.items():
        shutil.copy(FIXTURES / name, img / name)
        (ann / f"{Path(name).stem}.xml").write_text(voc_xml(name, objects))
    return root


def test_the_usual_layouts_read_alike(tmp_path):
    sets = [read_voc_folder(make_set(tmp_path / "kaggle")),
            read_voc_folder(make_set(tmp_path / "voc", ("Annotations", "JPEGImages"))),
            read_voc_folder(make_set(tmp_path / "flat", (".", ".")))]
    for s in sets:
        assert [sc.image.name for sc in s.scenes] == ["obama_small.jpg", "two_people.jpg"]
        assert [sc.states for sc in s.scenes] == [["none"], ["correct", "none"]]
        np.testing.assert_array_equal(s.scenes[1].boxes, np.array([b for _, b in TWO_PEOPLE], np.float32))


def test_labels_of_public_sets_map_to_mask_states_and_unknown_ones_are_left_out(tmp_path):
    objects = [("Face_Mask", (1, 1, 50, 50)), ("face no mask", (60, 1, 110, 50)),
               ("mask_weared_incorrect", (120, 1, 170, 50)), ("hat", (1, 60, 50, 110)),
               ("face_other_covering", (60, 60, 110, 110))]
    root = make_set(tmp_path, scenes={"two_people.jpg": objects})
    voc = read_voc_folder(root)
    assert voc.scenes[0].states == ["correct", "none", "incorrect", "face"]
    assert dict(voc.unknown_labels) == {"hat": 1} and voc.labels["hat"] == 1
    told = read_voc_folder(root, parse_label_overrides(["hat=ignore", "face_other_covering=none"]))
    assert told.scenes[0].states == ["correct", "none", "incorrect", "none"] and not told.unknown_labels
    with pytest.raises(ValueError, match="STATE"):
        parse_label_overrides(["hat"])
    with pytest.raises(ValueError, match="STATE"):
        parse_label_overrides(["hat=maybe"])


def test_a_set_whose_labels_are_all_unknown_is_refused(tmp_path):
    root = make_set(tmp_path, scenes={"two_people.jpg": [("person", (1, 1, 50, 50))]})
    with pytest.raises(AnnotationError, match="--label"):
        read_voc_folder(root)
    assert read_voc_folder(root, {"person": "face"}).scenes[0].states == ["face"]


def test_unusable_files_are_named_and_the_rest_evaluated(tmp_path):
    root = make_set(tmp_path)
    ann = root / "annotations"
    (ann / "broken.xml").write_text("<annotation><object>")
    (ann / "gone.xml").write_text(voc_xml("gone.jpg", TWO_PEOPLE))
    (ann / "nobox.xml").write_text(voc_xml("obama_small.jpg", [("with_mask", ("a", 1, 2, 3))]))
    (ann / "other.xml").write_text("<svg></svg>")
    voc = read_voc_folder(root)
    assert len(voc.scenes) == 2
    reasons = {Path(f).name: r for f, r in voc.skipped}
    assert set(reasons) == {"broken.xml", "gone.xml", "nobox.xml", "other.xml"}
    assert "not a readable Pascal-VOC XML" in reasons["broken.xml"]
    assert "gone.jpg is not in" in reasons["gone.xml"]
    assert "no numeric <bndbox>" in reasons["nobox.xml"]
    assert "<svg>" in reasons["other.xml"]
    for f in ("obama_small.xml", "two_people.xml"):
        (ann / f).unlink()
    with pytest.raises(AnnotationError, match="no usable annotation file"):
        read_voc_folder(root)
    with pytest.raises(AnnotationError, match="no Pascal-VOC annotations"):
        read_voc_folder(make_empty(tmp_path / "empty"))
    with pytest.raises(AnnotationError, match="not a folder"):
        read_voc_folder(tmp_path / "missing")


def make_empty(folder: Path) -> Path:
    folder.mkdir()
    return folder


def test_a_stale_filename_falls_back_to_the_annotation_name(tmp_path):
    root = make_set(tmp_path)
    (root / "annotations" / "two_people.xml").write_text(voc_xml("IMG_0001.JPG", TWO_PEOPLE))
    assert read_voc_folder(root).scenes[1].image == root / "images" / "two_people.jpg"


def test_difficult_faces_count_neither_way():
    gt = np.array([[0, 0, 40, 40], [100, 0, 140, 40]], np.float32)
    det = np.array([[0, 0, 40, 40], [100, 0, 140, 40], [300, 0, 340, 40]], np.float32)
    tally = DetectionTally()
    taken_by = tally.add(gt, ["correct", "none"], det, np.array([0.9, 0.8, 0.7]), np.array([False, True]))
    assert taken_by.tolist() == [0, 1, -1]
    s = tally.summary()
    assert s["all"]["faces"] == 1 and s["all"]["found"] == 1
    assert s["all"]["detections"] == 2 and s["all"]["false_boxes"] == 1


def test_fitting_images_are_known_by_bytes_and_by_pixels(tmp_path):
    rgb = np.asarray(Image.open(FIXTURES / "two_people.jpg").convert("RGB"))
    other = np.asarray(Image.open(FIXTURES / "obama.jpg").convert("RGB"))
    fitted = [image_fingerprint(FIXTURES / "two_people.jpg", rgb)]
    listing = tmp_path / "fitting.txt"
    listing.write_text("".join(f"{sha} {np.packbits(bits).tobytes().hex()} x\n" for sha, bits in fitted))
    fitting = FittingImages.load(listing)
    copy = tmp_path / "renamed.png"  # re-encoded losslessly under another name: other bytes, same pixels
    Image.fromarray(rgb).save(copy)
    resaved = tmp_path / "resaved.jpg"
    Image.fromarray(rgb).save(resaved, quality=70)
    assert fitting.contains(image_fingerprint(FIXTURES / "two_people.jpg", rgb))
    assert fitting.contains(image_fingerprint(copy, rgb))
    assert fitting.contains(image_fingerprint(resaved, np.asarray(Image.open(resaved).convert("RGB"))))
    assert not fitting.contains(image_fingerprint(FIXTURES / "obama.jpg", other))


def test_the_stored_pixel_grid_is_used_unless_the_annotation_says_otherwise(tmp_path):
    rgb = np.asarray(Image.open(FIXTURES / "obama_small.jpg").convert("RGB"))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: viewers show it upright, the stored grid is sideways
    path = tmp_path / "rotated.jpg"
    Image.fromarray(rgb).save(path, exif=exif)
    (tmp_path / "rotated.xml").write_text(voc_xml("rotated.jpg", OBAMA_SMALL, size=(320, 240)))
    stored = load_scene_image(read_voc_folder(tmp_path).scenes[0])
    assert stored.shape[:2] == (240, 320)
    (tmp_path / "rotated.xml").write_text(voc_xml("rotated.jpg", OBAMA_SMALL, size=(240, 320)))
    assert load_scene_image(read_voc_folder(tmp_path).scenes[0]).shape[:2] == (320, 240)


def test_eval_detect_command(tmp_path):
    root = make_set(tmp_path / "set")
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "detect", "--voc", str(root), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    assert doc["images"] == 2 and doc["images_seen_in_fitting"] == 0 and list(doc["subsets"]) == ["all"]
    subset = doc["subsets"]["all"]
    ours, theirs = subset["detection"]["periface"], subset["detection"]["face_recognition"]
    assert ours["all"]["faces"] == 3 and ours["all"]["found"] == 3 and ours["all"]["false_boxes"] == 0
    assert ours["masked>=32"]["faces"] == 1 and ours["per_class"]["correct"]["all"]["faces"] == 1
    assert theirs["all"]["faces"] == 3
    # Every face found is scored against its label ("face" is an unmasked face, as in the AIZOO set); none of these
    # three people wears a mask, so the one labelled with_mask here is called "none".
    mask = subset["mask_state"]
    assert mask["faces"] == 3 and mask["confusion"]["correct"]["none"] == 1 and mask["confusion"]["none"]["none"] == 2
    assert doc["seconds_per_image"]["periface"] > 0 and doc["time_ratio_to_face_recognition"] > 0
    curve = subset["curves"]["all"]
    assert curve["recall"][-1] == 1.0 and np.all(np.diff(curve["recall"]) >= 0) and np.all(np.diff(curve["score"]) <= 0)
    assert all((out / f"detect_set_crowd{end}").exists() for end in (".json", ".html", "_pr.png"))
    # one photo holds the masked face >= 32 px, and it is found without a false box: every judged draw meets the goal
    goal = subset["goal"]
    assert goal["met"] and goal["interval"]["masked>=32 recall"] == [1.0, 1.0]
    assert goal["interval"]["share_of_resamples_meeting_goal"] == 1.0

    text = runner.invoke(app, ["eval", "detect", "--voc", str(root), "--out", str(out), "--no-reference"])
    assert text.exit_code == 0 and "masked >= 32 px" in text.stdout and "face_recognition" not in text.stdout
    assert "resamples of the images" in " ".join(text.stdout.split())  # the caption wraps

    # Another operating point: past every face's probability nothing is kept, so nothing is found.
    strict = runner.invoke(app, ["eval", "detect", "--voc", str(root), "--out", str(out), "--no-reference", "--json",
                                 "--min-probability", "1"])
    assert strict.exit_code == 0, strict.output
    doc = json.loads(strict.stdout.strip().splitlines()[-1])
    assert doc["min_probability"] == 1.0 and doc["subsets"]["all"]["detection"]["periface"]["all"]["found"] == 0
    assert (out / "detect_set_crowd_p1.json").exists()  # beside the default run's files, not over them


def test_eval_detect_refuses_bad_input_with_its_own_exit_code(tmp_path):
    runner = CliRunner()
    empty = runner.invoke(app, ["eval", "detect", "--voc", str(make_empty(tmp_path / "empty")), "--json"])
    assert empty.exit_code == AnnotationError.exit_code
    assert json.loads(empty.stdout)["error"]["code"] == "bad_annotation"
    bad_label = runner.invoke(app, ["eval", "detect", "--voc", str(tmp_path), "--label", "hat"])
    assert bad_label.exit_code == 2 and "LABEL=STATE" in bad_label.output


@pytest.mark.skipif(datasets_root() is None, reason="needs ../shared/datasets (mask-scenes)")
def test_the_fitting_list_is_the_train_split_of_mask_scenes():
    from periface.evaluation.voc import read_scenes

    scenes = read_scenes(datasets_root() / "mask-scenes")
    listed = [line.split()[2] for line in FITTING_IMAGES.read_text().splitlines()]
    assert listed == [s.image.name for s in scenes if split_of(s.image.name) == "train"]
    fitting = FittingImages.load()
    test_scenes = [s for s in scenes if split_of(s.image.name) == "test"]
    seen = [s.image.name for s in test_scenes if fitting.contains(image_fingerprint(s.image, load_scene_image(s)))]
    # Two held-out photos are copies of training photos (one byte for byte, one re-encoded).
    assert seen == ["scene_428.jpg", "scene_514.jpg"]


def test_goal_counts_are_kept_per_image():
    tally = DetectionTally()
    big = np.array([[0, 0, 40, 40], [100, 0, 140, 40]], np.float32)
    # a masked face found, an unmasked face missed, a false box >= 32 px and a small false box
    tally.add(big, ["correct", "none"], np.array([[1, 1, 40, 40], [200, 0, 240, 40], [300, 0, 310, 10]]),
              np.array([0.9, 0.8, 0.7]))
    tally.add(big[:1], ["incorrect"], np.zeros((0, 4)), np.zeros(0))
    assert tally.goal_counts().tolist() == [[1, 1, 2, 1], [1, 0, 0, 0]]
    s = tally.summary()
    counts = tally.goal_counts().sum(0)
    assert counts[1] / counts[0] == s["masked>=32"]["recall"] and counts[3] == s[">=32"]["false_boxes"]


def test_resampling_draws_whole_rows_with_replacement():
    from periface.evaluation.metrics import percentile_interval, resampled_sums

    sums = resampled_sums(np.array([[1, 1], [0, 1], [1, 1], [0, 1]]), resamples=500)
    assert sums.shape == (500, 2) and np.all(sums[:, 1] == 4)  # four photos drawn each time
    assert set(np.unique(sums[:, 0])) == {0, 1, 2, 3, 4}  # 0 to 4 of them the right kind
    lo, hi = percentile_interval(sums[:, 0] / sums[:, 1])
    assert lo <= 0.25 and hi >= 0.75


def test_goal_interval_resamples_images():
    from periface.evaluation.detect_eval import goal_check, goal_interval

    # 92 masked faces >= 32 px on 46 photos, 86 found; 112 boxes >= 32 px, 8 false: the held-out split's numbers
    counts = np.array([[2, 2, 2, 0]] * 40 + [[2, 1, 3, 1]] * 6 + [[0, 0, 2, 2]] + [[0, 0, 2, 0]] * 6, np.int64)
    sums = counts.sum(0)
    assert sums.tolist() == [92, 86, 112, 8]
    a = goal_interval(counts)
    (r0, r1), (f0, f1) = a["masked>=32 recall"], a["false boxes >=32"]
    assert r0 < 86 / 92 < r1 and f0 < 8 / 112 < f1 and r1 - r0 > 0.05
    assert 0 < a["share_of_resamples_meeting_goal"] < 0.2 and a == goal_interval(counts)  # seeded
    # ten times the photos, the same rates: the interval narrows to about a third
    wide = goal_interval(np.repeat(counts, 10, axis=0))
    assert (wide["masked>=32 recall"][1] - wide["masked>=32 recall"][0]) < 0.45 * (r1 - r0)
    # every photo meets the goal: so does every draw
    assert goal_interval(np.array([[3, 3, 3, 0]] * 5))["share_of_resamples_meeting_goal"] == 1.0
    assert goal_interval(np.array([[0, 0, 4, 1]])) is None  # no masked face >= 32 px: nothing to judge
    tally = DetectionTally()
    tally.add(np.array([[0, 0, 40, 40]]), ["correct"], np.array([[0, 0, 40, 40]]), np.array([0.9]))
    goal = goal_check(tally.summary(), tally.goal_counts())
    assert goal["met"] and goal["interval"]["share_of_resamples_meeting_goal"] == 1.0


def test_the_large_frame_benchmark_maps_each_scene_into_its_frame_and_back(tmp_path):
    """A finder that returns every annotated box where the frame builder put it must score 100% with no false box,
    for mosaics of enlarged scenes, enlarged scenes and scenes enlarged to a given length."""
    import importlib.util

    from periface.evaluation.voc import Scene

    spec = importlib.util.spec_from_file_location(
        "detect_large_frames", Path(__file__).parents[1] / "benchmarks" / "detect_large_frames.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rng = np.random.default_rng(0)
    scenes = []
    for i, (h, w) in enumerate([(200, 300), (240, 260), (180, 320), (200, 200), (220, 300)]):
        path = tmp_path / f"scene_{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        boxes = np.array([[10, 20, 60, 80], [w - 50, h - 45, w - 5, h - 3]], np.float32) + i
        scenes.append(Scene(path, boxes, ["correct", "none"]))
    assert bench.parse_frames("mosaic:2@2.5") == ("mosaic", 2, 2.5) and bench.parse_frames("longer:900")[2] == 1.0
    for kind, k, zoom in [("mosaic", 2, 2.5), ("enlarged", 3, 1.0), ("longer", 900, 1.0)]:
        frames = list(bench.large_frames(scenes, kind, k, zoom))
        if kind == "mosaic":
            assert len(frames) == 1 and frames[0][0].shape[:2] == (1200, 1600)  # 2 x 2 cells of the largest scene, 2.5x
        else:
            assert len(frames) == 5 and all(max(f.shape[:2]) == 900 for f, _ in frames) == (kind == "longer")
        truth = iter([np.concatenate([s.boxes * scale + np.array([x, y, x, y], np.float32)
                                      for s, x, y, scale, _ in cells]) for _, cells in frames])
        result = bench.score(lambda rgb: (lambda b: (b, np.ones(len(b))))(next(truth)), scenes, kind, k, zoom)
        summary = result["summary"]
        assert summary["all"]["recall"] == 1.0 and summary["all"]["false_boxes"] == 0
        assert summary["faces"] == (8 if kind == "mosaic" else 10)
