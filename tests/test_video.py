"""Video: the tracker keeps identities, ``watch`` yields one record per track, COCO export, the watch command."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from periface.faces import Faces
from periface.image import load_image
from periface.video import IoUTracker, coco_detections, face_quality, frames, watch


def test_tracker_keeps_one_id_for_a_moving_face():
    t = IoUTracker()
    ids = []
    for step in range(20):
        x = 10 + 6 * step  # moves 6 px a frame, a 40 px box: consecutive IoU ~0.74
        ids.append(int(t.update(np.array([[x, 50, x + 40, 90]], np.float32), np.array([0.9]))[0]))
    assert set(ids) == {0}


def test_tracker_separates_two_faces_and_survives_a_gap():
    t = IoUTracker(max_missed=3)
    a, b = np.array([0, 0, 40, 40], np.float32), np.array([200, 0, 240, 40], np.float32)
    first = t.update(np.stack([a, b]), np.array([0.9, 0.9]))
    assert len(set(first.tolist())) == 2
    t.update(b[None], np.array([0.9]))  # a is hidden for a frame
    again = t.update(np.stack([b, a]), np.array([0.9, 0.9]))
    assert again.tolist() == first[::-1].tolist()
    for _ in range(5):  # a disappears for good
        t.update(b[None], np.array([0.9]))
    assert [tr.id for tr in t.tracks] == [first[1]]


def test_weak_detections_extend_but_do_not_start_tracks():
    t = IoUTracker(high_score=0.5)
    assert t.update(np.array([[0, 0, 40, 40]], np.float32), np.array([0.3]))[0] == -1
    tid = t.update(np.array([[0, 0, 40, 40]], np.float32), np.array([0.9]))[0]
    assert t.update(np.array([[2, 0, 42, 40]], np.float32), np.array([0.3]))[0] == tid


def test_quality_prefers_large_frontal_faces():
    lm_frontal = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], np.float32)
    lm_turned = np.array([[30, 40], [70, 40], [68, 60], [50, 80], [75, 80]], np.float32)
    f = Faces(np.array([[0, 0, 100, 100]] * 2 + [[0, 0, 30, 30]], np.float32), np.array([0.9, 0.9, 0.9], np.float32),
              np.stack([lm_frontal, lm_turned, lm_frontal * 0.3]), (200, 200))
    q = face_quality(f)
    assert q[0] > q[1] and q[0] > q[2]


@pytest.fixture()
def moving_face_dir(tmp_path, fixtures):
    """Eight frames of obama's face sliding across a grey canvas."""
    face = cv2.resize(cv2.imread(str(fixtures / "obama.jpg")), (320, 400))
    for i in range(8):
        canvas = np.full((480, 640, 3), 120, np.uint8)
        x = 20 + 15 * i  # 15 px a frame; the face is ~90 px wide
        canvas[40:440, x:x + 320] = face
        cv2.imwrite(str(tmp_path / f"frame_{i:03d}.jpg"), canvas)
    return tmp_path


def test_watch_yields_one_track_for_one_moving_face(moving_face_dir, tmp_path):
    out_video = tmp_path / "annotated.mp4"
    records = list(watch(moving_face_dir, annotate=out_video))
    assert len(records) == 1
    r = records[0]
    assert r["frames"] == 8 and r["first_seen"]["frame"] == 0 and r["last_seen"]["frame"] == 7
    assert sum(r["mask_votes"].values()) == 8 and r["mask"] in ("none", "correct", "incorrect")
    assert 0 <= r["best_frame"]["frame"] <= 7
    assert out_video.exists() and out_video.stat().st_size > 1000
    video = cv2.VideoCapture(str(out_video))
    assert video.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0) and video.get(cv2.CAP_PROP_FRAME_COUNT) == 8
    json.dumps(r)


def test_an_annotated_video_of_every_fifth_frame_plays_at_the_clips_pace(fixtures, tmp_path):
    from periface.detect.crowd import CrowdFinder

    out_video = tmp_path / "every5.mp4"
    list(watch(fixtures / "short_hamilton_clip.mp4", finder=CrowdFinder.fast(), every=5, max_frames=6,
               annotate=out_video))
    video = cv2.VideoCapture(str(out_video))
    assert video.get(cv2.CAP_PROP_FRAME_COUNT) == 6
    assert video.get(cv2.CAP_PROP_FPS) == pytest.approx(29.97 / 5, rel=0.01)  # 6 frames last 1 s, as in the clip


def test_watch_on_the_hamilton_clip(fixtures):
    clip = fixtures / "short_hamilton_clip.mp4"
    assert sum(1 for _ in frames(clip, every=5, max_frames=10)) == 10
    from periface.detect.crowd import CrowdFinder

    records = list(watch(clip, finder=CrowdFinder.fast(), max_frames=30))
    assert records, "the clip shows two people talking: at least one track"
    assert all(r["frames"] >= 2 and r["mask"] in ("none", "correct", "incorrect") for r in records)
    assert max(r["frames"] for r in records) >= 20  # a face followed over most of the 30 frames


class FakeCamera:
    """A capture whose frames (grey level = frame number) are all read before anyone takes one."""

    def __init__(self, n: int) -> None:
        self.n, self.read_count, self.released = n, 0, False

    def read(self):
        if self.read_count == self.n:
            return False, None
        self.read_count += 1
        return True, np.full((4, 6, 3), self.read_count - 1, np.uint8)

    def release(self) -> None:
        self.released = True


def test_a_live_source_gives_its_newest_frame_not_a_backlog():
    from periface.video import LatestFrame

    camera = FakeCamera(10)
    latest = LatestFrame(camera, fps=25.0)
    latest._reader.join(timeout=10)  # the camera has delivered everything while nobody took a frame
    index, t, bgr = latest.take()
    assert (index, t, int(bgr[0, 0, 0])) == (9, 9 / 25, 9)  # the newest; the nine before it were skipped
    assert latest.take() is None and camera.released  # then the end


def test_frames_of_a_clip_read_live_come_in_order(fixtures):
    clip = fixtures / "short_hamilton_clip.mp4"
    taken = [(f.index, f.time_s, f.rgb.shape) for f in frames(clip, live=True, max_frames=40)]
    indices = [i for i, _, _ in taken]
    assert 1 <= len(taken) <= 40 and indices == sorted(set(indices)) and indices[-1] < 275
    assert all(shape == (360, 640, 3) for _, _, shape in taken)
    assert all(t == pytest.approx(i / 29.97, abs=1e-3) for i, t, _ in taken)  # the clip's own clock
    assert len(list(frames(clip, live=False, max_frames=40))) == 40  # files are read frame by frame by default


def test_a_video_file_served_over_http_is_read_frame_by_frame(tmp_path):
    import functools
    import http.server
    import threading

    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
    for i in range(30):
        writer.write(np.full((48, 64, 3), 8 * i, np.uint8))
    writer.release()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.avi"
        assert [f.index for f in frames(url)] == list(range(30))  # a URL with a length is a file, not a camera
    finally:
        server.shutdown()
        server.server_close()


def test_watch_searches_each_track_once(moving_face_dir, fixtures, key_env):
    from periface.gallery import Gallery
    from periface.privacy.consent import Consent

    g = Gallery(key_env / "g")
    g.enroll("obama", [fixtures / "obama2.jpg"], consent=Consent(subject="obama", purpose="test"))
    calls = []
    search = g.search

    def counting(*a, **kw):
        calls.append(1)
        return search(*a, **kw)

    g.search = counting
    records = list(watch(moving_face_dir, gallery=g, k=1))
    assert len(records) == 1 and len(calls) == 1
    assert records[0]["candidates"][0]["identity"] == "obama"


def test_a_track_keeps_its_best_frames_apart_for_its_search():
    from periface.video import SEARCH_FRAMES, SEARCH_FRAMES_APART, keep_for_search

    kept, cut = [], []

    def crop(frame):
        return lambda: cut.append(frame) or np.full((2, 2, 3), frame, np.uint8)

    for frame, quality in [(0, 0.5), (3, 0.6), (20, 0.4), (40, 0.9), (45, 0.7), (60, 0.3), (80, 0.55)]:
        keep_for_search(kept, quality, frame, crop(frame))
    assert SEARCH_FRAMES == 3 and SEARCH_FRAMES_APART == 10
    # frame 3 replaced frame 0 (nearer than 10 frames, better); frame 45 lost to frame 40; the three best stay
    assert [(q, f) for q, f, _ in kept] == [(0.9, 40), (0.6, 3), (0.55, 80)]
    assert all(int(c[0, 0, 0]) == f for _, f, c in kept) and 45 not in cut and 60 not in cut  # cut only when kept


def test_coco_detections_layout(fixtures):
    rgb = load_image(fixtures / "two_people.jpg")
    from periface.detect import FaceFinder

    faces = FaceFinder.default().find(rgb)
    faces.mask, faces.mask_score = ["none", "correct"], np.array([0.1, 0.9], np.float32)
    doc = coco_detections([("two_people.jpg", faces)])
    assert doc["images"][0]["width"] == rgb.shape[1] and len(doc["annotations"]) == 2
    a = doc["annotations"][1]
    x, y, w, h = a["bbox"]
    assert w > 0 and h > 0 and a["category_id"] == 2 and len(a["keypoints"]) == 15
    assert {c["id"] for c in doc["categories"]} == {1, 2, 3}
    json.dumps(doc)


def test_watch_command_writes_json_lines(moving_face_dir, tmp_path):
    import typer
    from typer.testing import CliRunner

    from periface.video_commands import watch as watch_command

    app = typer.Typer()
    app.command()(watch_command)
    app.command("noop")(lambda: None)  # two commands, so Typer keeps "watch" as a sub-command name
    out = tmp_path / "tracks.jsonl"
    res = CliRunner().invoke(app, ["watch", str(moving_face_dir), "--out", str(out)])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["frames"] == 8
    res = CliRunner().invoke(app, ["watch", str(moving_face_dir), "--out", str(out), "--min-probability", "1"])
    assert res.exit_code == 0, res.output
    assert out.read_text() == "" and "0 track(s)" in res.output  # no face is certain: the operating point is used


class InterruptedFinder:
    """The real finder until its ``stop_at``-th frame, where the user presses Ctrl-C."""

    def __init__(self, stop_at: int) -> None:
        from periface.detect.crowd import CrowdFinder

        self.finder, self.calls, self.stop_at = CrowdFinder.fast(), 0, stop_at

    def find(self, rgb):
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return self.finder.find(rgb)


def test_ctrl_c_ends_a_watch_with_the_open_tracks_given(moving_face_dir):
    records, gen = [], watch(moving_face_dir, finder=InterruptedFinder(stop_at=6))
    with pytest.raises(KeyboardInterrupt):
        for record in gen:
            records.append(record)
    assert len(records) == 1 and records[0]["frames"] == 5 and records[0]["last_seen"]["frame"] == 4


def test_the_watch_command_stopped_by_ctrl_c_writes_the_open_tracks_and_says_so(moving_face_dir, tmp_path,
                                                                                  monkeypatch):
    import typer
    from typer.testing import CliRunner

    from periface.detect.crowd import CrowdFinder
    from periface.video_commands import watch as watch_command

    monkeypatch.setattr(CrowdFinder, "default", classmethod(lambda cls, **kw: InterruptedFinder(stop_at=6)))
    app = typer.Typer()
    app.command()(watch_command)
    app.command("noop")(lambda: None)
    out = tmp_path / "tracks.jsonl"
    res = CliRunner().invoke(app, ["watch", str(moving_face_dir), "--out", str(out)])
    assert res.exit_code == 130
    assert [json.loads(x)["frames"] for x in out.read_text().splitlines()] == [5]
    assert "stopped: 1 track(s): 1 " in res.output


def test_a_source_that_is_not_a_video_is_refused_with_its_name_and_reason(tmp_path):
    from periface.errors import VideoError

    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    clipped = tmp_path / "clipped.jpg"
    clipped.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    for source, reason in [(text, "cannot open"), (tmp_path / "missing.mp4", "file not found"),
                           (clipped, "no frame could be decoded")]:
        with pytest.raises(VideoError, match=reason) as e:
            list(frames(source))
        assert e.value.source == str(source) and e.value.exit_code != 0
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoError, match="no images"):
        list(frames(empty))


def test_an_unreadable_image_in_a_folder_is_skipped_and_named(moving_face_dir):
    from periface.errors import VideoError

    (moving_face_dir / "frame_003.jpg").write_bytes(b"broken")
    skipped = []
    kept = list(frames(moving_face_dir, on_unreadable=lambda f, why: skipped.append((f, why))))
    assert [f.index for f in kept] == [0, 1, 2, 4, 5, 6, 7]
    quiet = lambda f, why: None  # noqa: E731
    assert [f.index for f in frames(moving_face_dir, max_frames=4, on_unreadable=quiet)] == [0, 1, 2, 4]
    assert len(skipped) == 1 and skipped[0][0].endswith("frame_003.jpg") and "not an image" in skipped[0][1]
    with pytest.warns(UserWarning, match="frame_003.jpg: skipped"):
        assert len(list(frames(moving_face_dir))) == 7
    for f in moving_face_dir.glob("*.jpg"):
        f.write_bytes(b"")
    with pytest.raises(VideoError, match="none of the folder's images could be read"):
        list(frames(moving_face_dir, on_unreadable=lambda f, why: None))


def test_watch_command_exits_non_zero_on_a_bad_source(tmp_path):
    import typer
    from typer.testing import CliRunner

    from periface.errors import VideoError
    from periface.video_commands import watch as watch_command

    app = typer.Typer()
    app.command()(watch_command)
    app.command("noop")(lambda: None)
    bad = tmp_path / "holiday.mp4"
    bad.write_bytes(b"\x00" * 64)
    res = CliRunner().invoke(app, ["watch", str(bad), "--fast"])
    assert res.exit_code == VideoError.exit_code
    assert "holiday.mp4" in res.output and "cannot open" in res.output
