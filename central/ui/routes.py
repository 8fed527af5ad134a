"""Routes of the web UI: its static files and the page-shaped API calls it makes."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

from central.ui import pages

STATIC = Path(__file__).resolve().parent / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
}
# Everything the pages load comes from here; evidence is shown from blob: URLs.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter()
router.include_router(pages.router)


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui", include_in_schema=False)
def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/{asset:path}", include_in_schema=False)
def ui_asset(asset: str) -> FileResponse:
    """A file of the front end; the empty path is the page itself."""
    path = resolve_asset(asset)
    if path is None:
        raise HTTPException(404, "no such page")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=SECURITY_HEADERS)


def resolve_asset(asset: str, root: Path = STATIC) -> Path | None:
    """The file under ``root`` that ``asset`` names, or None (also for '..' escapes)."""
    try:
        path = (root / (asset or "index.html")).resolve()
    except (ValueError, OSError):  # a NUL in the name, a name too long for the system
        return None
    if not path.is_relative_to(root) or path.suffix not in MEDIA_TYPES or not path.is_file():
        return None
    return path
