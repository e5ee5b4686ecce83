"""FaceFinder: the fallback chain, crop mode, and the grey-border retry for faces that fill the frame."""

import numpy as np

from periface.detect import FaceFinder
from periface.faces import Faces


class NeedsContext:
    """A stand-in detector that, like real ones, misses a face filling the frame: it fires only on images at least
    1.5x the size of the face crop it was built for, and reports the face where the crop's pixels are."""

    name = "needs-context"

    def __init__(self, crop_size: int) -> None:
        self.crop_size = crop_size
        self.calls = 0

    def detect(self, rgb: np.ndarray) -> Faces:
        self.calls += 1
        h, w = rgb.shape[:2]
        if min(h, w) < 1.5 * self.crop_size:
            return Faces.empty((h, w))
        # the crop sits in the middle of the padded image
        y0, x0 = (h - self.crop_size) / 2, (w - self.crop_size) / 2
        box = np.array([[x0, y0, x0 + self.crop_size, y0 + self.crop_size]], np.float32)
        lm = np.array([[[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]]], np.float32)
        return Faces(boxes=box, scores=np.ones(1, np.float32), landmarks=lm * self.crop_size + [x0, y0],
                     image_size=(h, w))


def test_a_face_filling_the_frame_is_found_with_a_border_and_mapped_back():
    crop = np.full((100, 100, 3), 90, np.uint8)
    det = NeedsContext(100)
    faces = FaceFinder([det]).find(crop)
    assert len(faces) == 1 and det.calls == 2  # first look found nothing, the bordered look found the face
    assert faces.image_size == (100, 100)
    np.testing.assert_allclose(faces.boxes[0], [0, 0, 100, 100], atol=1e-4)
    np.testing.assert_allclose(faces.landmarks[0, 0], [30, 40], atol=1e-4)


def test_the_retry_can_be_switched_off_and_costs_nothing_when_the_first_look_finds_a_face():
    crop = np.full((100, 100, 3), 90, np.uint8)
    det = NeedsContext(100)
    assert len(FaceFinder([det], second_look=False).find(crop)) == 0 and det.calls == 1
    det = NeedsContext(60)  # small enough to be found at once
    assert len(FaceFinder([det]).find(crop)) == 1 and det.calls == 1


def test_a_tight_real_face_crop_is_found_as_a_photo(engine, fixtures):
    rgb = engine.load(fixtures / "obama.jpg")
    box = engine.analyze(rgb).boxes[0]
    # tighter than the detector's own box: brows to chin, cheek to cheek
    w, h = box[2] - box[0], box[3] - box[1]
    x0, y0, x1, y1 = (box + [0.12 * w, 0.12 * h, -0.12 * w, -0.05 * h]).astype(int)
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    faces = engine.finder.find(crop)
    assert len(faces) >= 1
    centre = faces.boxes[faces.largest()].reshape(2, 2).mean(0)
    assert 0 <= centre[0] <= crop.shape[1] and 0 <= centre[1] <= crop.shape[0]
    assert engine.verify(crop, rgb).same


def test_real_masked_crops_that_need_the_border_are_found(engine, datasets):
    # the first two of the real masked crops in which no detector fires without the grey border
    for name in ("with_mask_00009.jpg", "with_mask_00123.jpg"):
        rgb = engine.load(datasets / "mask-crops" / "with_mask" / name)
        without = FaceFinder(engine.finder.detectors, engine.finder.min_face_px, second_look=False)
        assert len(without.find(rgb)) == 0
        face = engine.face(rgb, name=name)
        assert face.mask[0] != "none"


def test_no_face_stays_no_face_after_the_retry(engine):
    assert len(engine.finder.find(np.full((200, 200, 3), 128, np.uint8))) == 0


class NeedsNoBorder(NeedsContext):
    """The opposite case: fires only on the crop as it is, not inside a border."""

    def detect(self, rgb: np.ndarray) -> Faces:
        self.calls += 1
        h, w = rgb.shape[:2]
        if max(h, w) > self.crop_size:
            return Faces.empty((h, w))
        return Faces(boxes=np.array([[10, 10, w - 10, h - 10]], np.float32), scores=np.ones(1, np.float32),
                     landmarks=np.full((1, 5, 2), w / 2, np.float32), image_size=(h, w))


def test_crop_mode_looks_at_the_crop_as_it_is_when_the_bordered_look_finds_nothing():
    crop = np.full((100, 100, 3), 90, np.uint8)
    faces = FaceFinder([NeedsNoBorder(100)]).find_in_crop(crop)
    assert faces.detector != ["crop"]
    np.testing.assert_allclose(faces.boxes[0], [10, 10, 90, 90])
    assert FaceFinder([NeedsNoBorder(100)], second_look=False).find_in_crop(crop).detector == ["crop"]


class OnlyTheShrunkBorderedCopy(NeedsContext):
    """Fires only on a 1280 px image inside a 30% grey border, and reports that image as the face."""

    def detect(self, rgb: np.ndarray) -> Faces:
        if rgb.shape[:2] != (2048, 2048):  # 1280 + 2 x 384
            self.calls += 1
            return Faces.empty(rgb.shape[:2])
        return super().detect(rgb)


def test_the_bordered_look_at_a_large_image_works_on_a_shrunk_copy_and_maps_back():
    big = np.full((3000, 3000, 3), 90, np.uint8)
    det = OnlyTheShrunkBorderedCopy(1280)
    faces = FaceFinder([det]).find(big)
    assert len(faces) == 1 and det.calls == 2 and faces.image_size == (3000, 3000)
    np.testing.assert_allclose(faces.boxes[0], [0, 0, 3000, 3000], atol=3)
    np.testing.assert_allclose(faces.landmarks[0, 0], [900, 1200], atol=3)
