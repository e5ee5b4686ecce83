import json

from typer.testing import CliRunner

from periface.cli import app

from periface.demo import SAMPLES

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_detect_json(fixtures):
    r = run("detect", fixtures / "two_people.jpg", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert len(doc["faces"]) == 2 and doc["faces"][0]["mask"] in ("none", "correct", "incorrect")


def test_detect_min_probability_sets_the_crowd_operating_point(fixtures):
    def faces(*extra: str) -> list[dict]:
        r = run("detect", fixtures / "two_people.jpg", "--crowd", "--json", *extra)
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)["faces"]

    shipped = faces()
    assert len(shipped) == 2
    assert len(faces("--min-probability", "0.01")) >= 2  # a lower bar keeps at least as many
    strict = faces("--min-probability", "0.9999")
    assert len(strict) < 2 and all(f["score"] >= 0.9999 for f in strict)
    r = run("detect", fixtures / "two_people.jpg", "--min-probability", "0.5")
    assert r.exit_code == 2 and "--crowd" in r.output  # the plain finder's scores are not calibrated probabilities


def test_detect_bad_file_nonzero_and_named(tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_text("nope")
    r = run("detect", bad)
    assert r.exit_code != 0 and "x.jpg" in r.stderr


def test_verify_json(fixtures):
    r = run("verify", fixtures / "obama.jpg", fixtures / "obama2.jpg", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["same"] is True and doc["far"] < 1e-3


def test_enroll_search_remove_roundtrip(tmp_path, key_env):
    g = tmp_path / "g"
    for p in ("obama", "biden", "kit_harington"):
        r = run("enroll", "--gallery", g, "--id", p, "--purpose", "door access", SAMPLES / f"enrol_{p}.jpg", "--json")
        assert r.exit_code == 0, r.output
    r = run("search", "--gallery", g, SAMPLES / "probe_obama.jpg", "-k", "2", "--json")
    assert r.exit_code == 7 and "purpose" in r.stderr  # every search says why
    r = run("search", "--gallery", g, SAMPLES / "probe_obama.jpg", "-k", "2", "--purpose", "door check", "--json")
    assert r.exit_code == 0, r.output
    cands = json.loads(r.stdout)["candidates"]
    assert cands[0]["identity"] == "obama" and len(cands) == 2 and "far" in cands[0]
    from periface.gallery import Gallery

    searches = Gallery(g).audit.records(action="search")
    assert len(searches) == 1  # the refused search left no record and returned no candidates
    assert searches[0].purpose == "door check" and searches[0].actor.startswith("cli:")
    r = run("remove", "--gallery", g, "--id", "obama", "--purpose", "  ", "--json")
    assert r.exit_code == 7 and "purpose" in r.stderr and any(i.identity == "obama" for i in Gallery(g).identities())
    r = run("remove", "--gallery", g, "--id", "obama", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["erased_templates"] >= 1
    assert Gallery(g).audit.records(action="erase")[-1].purpose == "erasure request"  # said, as the service says it
    r = run("remove", "--gallery", g, "--id", "obama")
    assert r.exit_code != 0 and "obama" in r.stderr


def test_several_photos_of_one_person_make_one_search(tmp_path, key_env):
    g = tmp_path / "g"
    for p in ("obama", "biden", "kit_harington"):
        assert run("enroll", "--gallery", g, "--id", p, "--purpose", "door access", SAMPLES / f"enrol_{p}.jpg").exit_code == 0
    photos = [SAMPLES / "probe_obama.jpg", SAMPLES / "verify_obama_a.jpg", SAMPLES / "verify_obama_b.jpg"]
    r = run("search", "--gallery", g, *photos, "-k", "2", "--purpose", "missing person, family's photos", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["probe"] == [str(p) for p in photos] and doc["candidates"][0]["identity"] == "obama"
    from periface.gallery import Gallery

    (record,) = Gallery(g).audit.records(action="search")
    assert len(record.inputs) == 3 and record.details["pictures_used"] == 3


def test_search_in_a_non_gallery_fails_cleanly(tmp_path):
    r = run("search", "--gallery", tmp_path / "nothing", SAMPLES / "probe_obama.jpg", "--purpose", "door check")
    assert r.exit_code != 0 and "no periface gallery" in r.stderr


def test_enroll_without_face_leaves_no_identity(tmp_path, key_env):
    from PIL import Image

    grey = tmp_path / "grey.png"
    Image.new("RGB", (200, 200), (90, 90, 90)).save(grey)
    r = run("enroll", "--gallery", tmp_path / "g", "--id", "x", "--purpose", "door access", grey)
    assert r.exit_code != 0 and "grey.png" in r.stderr and "no face" in r.stderr
