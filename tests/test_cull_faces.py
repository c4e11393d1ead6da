"""pifocus.cull.subject on real faces: OpenCV's Haar cascades (from the opencv-python wheel's
``cv2.data.haarcascades``, else Debian's ``opencv-data``) find the face and the eyes of real
photographs that scikit-image ships in its wheel (no network): the NASA portrait of astronaut
Eileen Collins (``skimage.data.astronaut``) and the 100 face / 100 non-face patches of
Labeled Faces in the Wild (``skimage/data/lfw_subset.npy``).  Nothing here is drawn."""

import json
import os
import types
from pathlib import Path

import numpy as np
import pytest

from pifocus.cull import subject

cv2 = pytest.importorskip("cv2")
skdata = pytest.importorskip("skimage.data")

needs_haar = pytest.mark.skipif(
    not hasattr(cv2, "CascadeClassifier") or subject.find_cascade(subject.FACE_CASCADE) is None,
    reason="no CascadeClassifier / Haar cascade files (opencv-python-headless<5 ships both)")

#: The astronaut's face in the 512x512 portrait (px box, judged by eye on the photo).
FACE_REGION = (165, 55, 115, 115)


def _astronaut():
    return cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2GRAY)


def _inside(inner, outer, slack=0):
    x, y, w, h = inner
    X, Y, W, H = outer
    return X - slack <= x and Y - slack <= y and x + w <= X + W + slack and y + h <= Y + H + slack


def test_cascades_come_from_the_wheel_then_debian(monkeypatch):
    wheel = getattr(getattr(cv2, "data", None), "haarcascades", "")
    path = subject.find_cascade(subject.FACE_CASCADE)
    if wheel and os.path.isfile(os.path.join(wheel, subject.FACE_CASCADE)):
        assert path == os.path.join(wheel, subject.FACE_CASCADE)
    # Without the wheel's files (apt's python3-opencv has no cv2.data): Debian's opencv-data.
    monkeypatch.setattr(cv2, "data", types.SimpleNamespace(haarcascades="/nonexistent/"), raising=False)
    debian = [d for d in subject.CASCADE_DIRS if os.path.isfile(os.path.join(d, subject.FACE_CASCADE))]
    got = subject.find_cascade(subject.FACE_CASCADE)
    assert got == (os.path.join(debian[0], subject.FACE_CASCADE) if debian else None)
    assert subject.find_cascade("no_such_cascade.xml") is None


@needs_haar
def test_haar_finds_the_face_and_eyes_of_a_portrait():
    img = _astronaut()
    f = subject.SubjectFinder("auto")
    assert f.has_faces
    scored = f.faces_scored(img)
    assert len(scored) == 1, scored  # her face; not the flag, the shuttle or the helmet
    face, conf = scored[0]
    assert _inside(face, FACE_REGION), face
    assert conf >= subject.HAAR_MIN_NEIGHBORS
    eyes = f.eyes(img, face)
    assert eyes is not None, "no eyes found in the face"
    assert _inside(eyes, face), (eyes, face)  # eyes within the face, in its upper half
    assert eyes[1] + eyes[3] / 2 < face[1] + face[3] / 2 and eyes[2] > face[2] / 2  # both eyes, not one
    s = f.find(img)
    assert s.kind == "eyes" and s.faces == 1 and s.confidence == conf
    assert _inside(eyes, s.box_px)
    assert f.find(np.full((480, 640), 100, np.uint8)).kind == "centre"


@needs_haar
def test_haar_on_the_real_faces_of_labeled_faces_in_the_wild():
    patches = np.load(Path(skdata.__file__).parent / "lfw_subset.npy")  # 100 faces, then 100 non-faces
    assert patches.shape == (200, 25, 25)
    f = subject.SubjectFinder("face")
    found = []
    for p in patches:
        g = cv2.resize((p * 255).astype(np.uint8), (64, 64), interpolation=cv2.INTER_CUBIC)
        g = cv2.copyMakeBorder(g, 64, 64, 64, 64, cv2.BORDER_CONSTANT, value=int(g.mean()))
        boxes = f.faces(g)
        found.append(bool(boxes) and _inside((96, 96, 1, 1), boxes[0]))  # the face is the patch's
    faces, others = sum(found[:100]), sum(found[100:])
    assert faces >= 90, f"{faces}/100 real faces found"
    assert others <= 10, f"{others}/100 non-face patches called a face"


@needs_haar
def test_cull_judges_the_portrait_on_her_eyes(tmp_path, capsys):
    from pifocus.cli import main
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert main(["cull", str(photo), "--json", "--no-sidecars", "--jobs", "1"]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["subject"]["kind"] == "eyes" and row["subject"]["faces"] == 1
    x, y, w, h = row["subject"]["box_px"]
    assert x <= FACE_REGION[0] + FACE_REGION[2] / 2 <= x + w and y <= FACE_REGION[1] + FACE_REGION[3] / 2 <= y + h
