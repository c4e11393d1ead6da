"""XMP sidecars that photographers' tools read: rating, label and darktable colour label.

Written per photo (never into the photo itself):

* ``xmp:Rating`` (1..5; XMP basic schema ``http://ns.adobe.com/xap/1.0/``; -1 for a reject
  when asked: :data:`REJECTED`, which darktable reads as its "rejected" flag -- its
  ``dt_image_set_xmp_rating`` in ``src/common/image.c`` -- and Lightroom as a reject),
* ``xmp:Label`` ``"Select"`` (keep) or ``"Reject"`` (reject); a ``maybe`` removes a label
  this tool wrote before and leaves any other label alone,
* ``darktable:colorlabels`` (``http://darktable.sf.net/``, an ``rdf:Seq`` of integers:
  0 red, 1 yellow, 2 green, 3 blue, 4 purple): green keep, yellow maybe, red reject; a
  blue or purple label already there is kept.

An existing sidecar is merged: it is parsed with the standard library's XML parser
(comments and processing instructions kept, every namespace prefix kept), only those three
properties are replaced -- whether they were written as attributes or as elements -- and
everything else stays.  The file is written atomically (``.part``, fsync, rename), so a
crash leaves the old sidecar or the new one, never half of one.  A sidecar that is not XMP
(unparseable) is left untouched and reported.

Sidecar names: ``photo.jpg.xmp`` (darktable, digiKam: the default) or ``photo.xmp``
(Adobe style, ``style="adobe"``).

* :func:`sidecar_path` -- where the sidecar of a photo goes.
* :func:`render` -- the sidecar text for a rating/label, merged into existing text.
* :func:`write_sidecar` -- :func:`render` + atomic write.
"""

import io
import os
import xml.etree.ElementTree as ET
from typing import Optional

from ..exc import StorageError
from ..storage import atomic_write

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "darktable": "http://darktable.sf.net/",
}
#: ``xmp:Label`` per verdict (None: remove a label this tool wrote).
LABELS = {"keep": "Select", "maybe": None, "reject": "Reject"}
#: darktable colour label per verdict (0 red, 1 yellow, 2 green).
COLOR_LABELS = {"keep": 2, "maybe": 1, "reject": 0}
#: ``xmp:Rating`` of a rejected photo in the XMP basic schema (darktable, Lightroom).
REJECTED = -1
#: Sidecar styles.
STYLES = ("darktable", "adobe")
#: Largest existing sidecar merged (bytes); a larger one is refused, not read.
MAX_SIDECAR_BYTES = 16 * 1024 * 1024

_R, _X, _DT = "{%s}" % NS["rdf"], "{%s}" % NS["xmp"], "{%s}" % NS["darktable"]


class SidecarError(StorageError):
    """An existing sidecar cannot be merged (not XMP / RDF, too large)."""


def sidecar_path(photo: str, out_dir: Optional[str] = None, style: str = "darktable") -> str:
    """The sidecar path of ``photo``: next to it, or in ``out_dir`` under the same name.

    Raises:
        ValueError: an unknown ``style``.
    """
    if style not in STYLES:
        raise ValueError(f"style = {style!r}; allowed: {', '.join(STYLES)}")
    name = os.path.basename(photo)
    name = name + ".xmp" if style == "darktable" else os.path.splitext(name)[0] + ".xmp"
    return os.path.join(out_dir if out_dir is not None else os.path.dirname(photo), name)


def _skeleton() -> ET.Element:
    root = ET.Element(f"{{{NS['x']}}}xmpmeta")
    rdf = ET.SubElement(root, f"{_R}RDF")
    ET.SubElement(rdf, f"{_R}Description", {f"{_R}about": ""})
    return root


def _parse(text: str, where: str):
    """``(root element, {prefix: uri})`` of existing sidecar text."""
    prefixes = {}
    try:
        for _event, (prefix, uri) in ET.iterparse(io.StringIO(text), events=("start-ns",)):
            prefixes.setdefault(prefix, uri)
        builder = ET.TreeBuilder(insert_comments=True, insert_pis=True)
        parser = ET.XMLParser(target=builder)
        parser.feed(text)
        root = parser.close()
    except ET.ParseError as e:
        raise SidecarError(f"{where}: the existing sidecar is not valid XML ({e}); it was left "
                           "untouched -- fix or remove it, or write sidecars elsewhere with --out", where) from e
    return root, prefixes


def _description(root: ET.Element, where: str) -> ET.Element:
    rdf = root if root.tag == f"{_R}RDF" else root.find(f".//{_R}RDF")
    if rdf is None:
        raise SidecarError(f"{where}: the existing sidecar has no rdf:RDF element (not XMP); it was "
                           "left untouched -- fix or remove it, or write sidecars elsewhere with --out", where)
    desc = rdf.find(f"{_R}Description")
    if desc is None:
        desc = ET.SubElement(rdf, f"{_R}Description", {f"{_R}about": ""})
    return desc


def _drop(desc: ET.Element, tag: str) -> Optional[str]:
    """Remove property ``tag`` written as attribute or element(s); returns its old simple value."""
    old = desc.attrib.pop(tag, None)
    for d in list(desc.iter(f"{_R}Description")):
        if tag in d.attrib:
            old = d.attrib.pop(tag)
        for el in d.findall(tag):
            old = (el.text or "").strip() if len(el) == 0 else old
            d.remove(el)
    return old


def _old_colors(desc: ET.Element):
    vals = []
    for d in desc.iter(f"{_R}Description"):
        for el in d.findall(f"{_DT}colorlabels"):
            vals += [(li.text or "").strip() for li in el.iter(f"{_R}li")]
    return [int(v) for v in vals if v.isdigit()]


def render(verdict: str, rating: int, existing: Optional[str] = None, where: str = "sidecar") -> str:
    """The sidecar text: ``existing`` (or a fresh XMP packet) with rating, label and colour
    label set for ``verdict``.

    Raises:
        ValueError: an unknown verdict, or a rating outside 1..5 (-1, :data:`REJECTED`, is
            allowed for a reject).
        SidecarError: ``existing`` is not XML or not XMP.
    """
    if verdict not in LABELS:
        raise ValueError(f"verdict = {verdict!r}; allowed: {', '.join(LABELS)}")
    if not (1 <= int(rating) <= 5 or (int(rating) == REJECTED and verdict == "reject")):
        raise ValueError(f"rating = {rating!r} must be 1..5 (or {REJECTED} = rejected, for a reject)")
    prefixes = dict(NS)
    if existing and existing.strip():
        root, found = _parse(existing, where)
        prefixes.update({p: u for p, u in found.items() if p})
    else:
        root = _skeleton()
    for p, u in prefixes.items():
        ET.register_namespace(p, u)
    desc = _description(root, where)
    _drop(desc, f"{_X}Rating")
    desc.set(f"{_X}Rating", str(int(rating)))
    old_label = _drop(desc, f"{_X}Label")
    label = LABELS[verdict]
    if label is None and old_label and old_label not in LABELS.values():
        label = old_label  # somebody else's label: keep it
    if label:
        desc.set(f"{_X}Label", label)
    colors = [c for c in _old_colors(desc) if c not in COLOR_LABELS.values()]
    _drop(desc, f"{_DT}colorlabels")
    seq = ET.SubElement(ET.SubElement(desc, f"{_DT}colorlabels"), f"{_R}Seq")
    for c in sorted(set(colors + [COLOR_LABELS[verdict]])):
        ET.SubElement(seq, f"{_R}li").text = str(c)
    ET.indent(root, space=" ")
    body = ET.tostring(root, encoding="unicode")
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n' + body
            + '\n<?xpacket end="w"?>\n')


def write_sidecar(photo: str, verdict: str, rating: int, out_dir: Optional[str] = None,
                  style: str = "darktable") -> str:
    """Write (or merge into) the sidecar of ``photo``; returns its path.  The photo itself is
    never opened for writing.

    Raises:
        SidecarError: an existing sidecar that cannot be merged (left untouched).
        StorageError: the sidecar cannot be written (disk full, not writable).
    """
    path = sidecar_path(photo, out_dir, style)
    existing = None
    if os.path.exists(path):
        if os.path.getsize(path) > MAX_SIDECAR_BYTES:
            raise SidecarError(f"{path}: existing sidecar above {MAX_SIDECAR_BYTES} bytes; left untouched", path)
        try:
            with open(path, "r", encoding="utf-8", errors="strict") as fh:
                existing = fh.read().lstrip("\ufeff")
        except UnicodeDecodeError as e:
            raise SidecarError(f"{path}: the existing sidecar is not UTF-8 text ({e}); it was left "
                               "untouched -- fix or remove it, or write sidecars elsewhere with --out",
                               path) from e
    text = render(verdict, rating, existing, where=path)
    atomic_write(path, text.encode("utf-8"), what="XMP sidecar")
    return path
