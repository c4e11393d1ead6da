"""pifocus.cull.xmp: sidecars parse as RDF with the standard library (and with exiftool when
it is installed), merge into an existing sidecar without losing its fields, write atomically."""

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from pifocus.cull import xmp

RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
XMP = "{http://ns.adobe.com/xap/1.0/}"
DT = "{http://darktable.sf.net/}"

#: A sidecar as another tool (darktable-like) would have left it: element-form rating, a
#: blue colour label, history and a tag we must keep.
FOREIGN = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <!-- written by another tool -->
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:darktable="http://darktable.sf.net/"
    darktable:xmp_version="5" darktable:history_end="3">
   <xmp:Rating>3</xmp:Rating>
   <darktable:colorlabels><rdf:Seq><rdf:li>3</rdf:li><rdf:li>0</rdf:li></rdf:Seq></darktable:colorlabels>
   <dc:subject><rdf:Bag><rdf:li>holiday</rdf:li></rdf:Bag></dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def _desc(text):
    root = ET.fromstring(text.split("?>", 1)[1].rsplit("<?xpacket", 1)[0])
    assert root.tag == "{adobe:ns:meta/}xmpmeta"
    d = root.find(f"{RDF}RDF/{RDF}Description")
    assert d is not None
    return d


def _colors(d):
    return [int(li.text) for li in d.iter(f"{RDF}li") if li.text.isdigit()
            and any(li in list(c.iter()) for c in d.findall(f"{DT}colorlabels"))]


@pytest.mark.parametrize("verdict,rating,label,colour", [("keep", 5, "Select", 2), ("maybe", 2, None, 1),
                                                          ("reject", 1, "Reject", 0)])
def test_fresh_sidecar_is_rdf_with_rating_label_colour(verdict, rating, label, colour):
    d = _desc(xmp.render(verdict, rating))
    assert d.get(f"{XMP}Rating") == str(rating)
    assert d.get(f"{XMP}Label") == label
    assert _colors(d) == [colour]


def test_merge_keeps_foreign_fields_and_replaces_ours():
    out = xmp.render("reject", 1, FOREIGN)
    d = _desc(out)
    assert d.get(f"{XMP}Rating") == "1" and d.findall(f"{XMP}Rating") == []  # one rating, ours
    assert d.get(f"{XMP}Label") == "Reject"
    assert _colors(d) == [0, 3]  # the blue label survives; red is ours
    assert d.get(f"{DT}history_end") == "3" and d.get(f"{DT}xmp_version") == "5"
    tags = [li.text for li in d.find("{http://purl.org/dc/elements/1.1/}subject").iter(f"{RDF}li")]
    assert tags == ["holiday"]
    assert "written by another tool" in out and "dc:subject" in out  # comment and prefixes kept
    # Merging again is stable (idempotent).
    assert xmp.render("reject", 1, out) == out
    # A later "maybe" drops our Reject label, keeps blue, sets yellow.
    d2 = _desc(xmp.render("maybe", 2, out))
    assert d2.get(f"{XMP}Label") is None and _colors(d2) == [1, 3]


def test_someone_elses_label_survives_a_maybe():
    text = FOREIGN.replace("<xmp:Rating>3</xmp:Rating>", "<xmp:Label>Client pick</xmp:Label>")
    assert _desc(xmp.render("maybe", 2, text)).get(f"{XMP}Label") == "Client pick"


def test_bad_values_and_non_xmp_sidecars_are_refused(tmp_path):
    with pytest.raises(ValueError, match="rating"):
        xmp.render("keep", 7)
    with pytest.raises(ValueError, match="verdict"):
        xmp.render("great", 3)
    with pytest.raises(xmp.SidecarError, match="not valid XML"):
        xmp.render("keep", 4, "<x:xmpmeta")
    with pytest.raises(xmp.SidecarError, match="no rdf:RDF"):
        xmp.render("keep", 4, "<root/>")
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xd9")
    side = tmp_path / "a.jpg.xmp"
    side.write_text("not xml at all")
    with pytest.raises(xmp.SidecarError):
        xmp.write_sidecar(str(photo), "keep", 4)
    assert side.read_text() == "not xml at all"  # left untouched


def test_write_sidecar_paths_atomic_and_photo_untouched(tmp_path):
    photo = tmp_path / "IMG_1.JPG"
    photo.write_bytes(b"\xff\xd8 photo bytes \xff\xd9")
    before = photo.read_bytes()
    p = xmp.write_sidecar(str(photo), "keep", 4)
    assert p == str(tmp_path / "IMG_1.JPG.xmp")
    assert xmp.sidecar_path(str(photo), style="adobe") == str(tmp_path / "IMG_1.xmp")
    out = tmp_path / "out"
    out.mkdir()
    assert xmp.write_sidecar(str(photo), "reject", 1, out_dir=str(out), style="adobe") == str(out / "IMG_1.xmp")
    assert photo.read_bytes() == before
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".part")]
    with pytest.raises(ValueError, match="style"):
        xmp.sidecar_path(str(photo), style="lightroom")


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool (libimage-exiftool-perl) not installed")
def test_exiftool_reads_the_sidecar_back(tmp_path):
    side = tmp_path / "a.jpg.xmp"
    side.write_text(FOREIGN)
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xd9")
    xmp.write_sidecar(str(photo), "keep", 5)
    out = subprocess.run(["exiftool", "-s", "-XMP:Rating", "-XMP:Label", "-XMP-darktable:all",
                          "-XMP:Subject", str(side)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    fields = dict(line.split(":", 1) for line in out.stdout.strip().splitlines())
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    assert fields["Rating"] == "5" and fields["Label"] == "Select"
    assert fields["Subject"] == "holiday"
    # exiftool has no table for darktable's namespace: it names the list from the XML itself.
    labels = {k.lower(): v for k, v in fields.items()}["colorlabels"]
    assert set(labels.replace(" ", "").split(",")) == {"2", "3"}
    assert fields["History_end"] == "3"


def test_reject_rating_minus_one_is_darktables_rejected_flag():
    d = _desc(xmp.render("reject", xmp.REJECTED, FOREIGN))
    assert d.get(f"{XMP}Rating") == "-1" and d.get(f"{XMP}Label") == "Reject"
    with pytest.raises(ValueError, match="for a reject"):
        xmp.render("keep", -1)
    with pytest.raises(ValueError, match="rating"):
        xmp.render("reject", 0)


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool (libimage-exiftool-perl) not installed")
def test_exiftool_reads_a_rejected_rating(tmp_path):
    photo = tmp_path / "r.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xd9")
    side = xmp.write_sidecar(str(photo), "reject", xmp.REJECTED)
    out = subprocess.run(["exiftool", "-s", "-s", "-s", "-XMP:Rating", side], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "-1", (out.stdout, out.stderr)
