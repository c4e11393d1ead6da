"""Files the server hands out: the page (``static/``) and the saved stills (``captures_dir``).

Names are checked against :data:`SAFE_NAME` before they touch the file system, so no
request reaches outside those two folders.
"""

import re
from pathlib import Path
from typing import Tuple

from .request import HTTPError

STATIC_DIR = Path(__file__).parent / "static"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
                 ".ico": "image/x-icon", ".json": "application/json"}
#: A plain file name: no separators, no leading dot, at most 121 characters.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")
#: Most captures ``GET /api/captures`` lists.
MAX_LISTED = 200


def static_file(name: str) -> Tuple[bytes, str]:
    """``(body, content type)`` of the page file ``name`` in :data:`STATIC_DIR`.

    Raises:
        HTTPError: 404 unsafe name or no such file.
    """
    if not SAFE_NAME.match(name):
        raise HTTPError(404, "no such file")
    f = STATIC_DIR / name
    try:
        body = f.read_bytes()
    except OSError:
        raise HTTPError(404, f"no such file: {name}") from None
    return body, CONTENT_TYPES.get(f.suffix, "application/octet-stream")


def list_captures(folder: Path) -> list:
    """The stills in ``folder``, newest first (names sort by time), at most
    :data:`MAX_LISTED`: ``[{"file", "bytes", "url"}]``; empty when the folder is missing."""
    try:
        files = sorted((p for p in folder.iterdir() if p.suffix in (".png", ".jpg") and p.is_file()),
                       key=lambda p: p.name, reverse=True)
    except OSError:
        return []
    return [{"file": p.name, "bytes": p.stat().st_size, "url": f"/captures/{p.name}"} for p in files[:MAX_LISTED]]


def capture_file(folder: Path, name: str) -> Tuple[bytes, str]:
    """``(body, content type)`` of the still ``name`` in ``folder``.

    Raises:
        HTTPError: 404 unsafe name, not a .png/.jpg, or no such file.
    """
    if not SAFE_NAME.match(name) or not name.endswith((".png", ".jpg")):
        raise HTTPError(404, "no such capture")
    try:
        body = (folder / name).read_bytes()
    except OSError:
        raise HTTPError(404, f"no such capture: {name}") from None
    return body, "image/png" if name.endswith(".png") else "image/jpeg"
