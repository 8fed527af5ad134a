"""The web UI served by central: static pages plus the few API calls made for them.

``router`` serves the single-page front end under ``/ui/`` (plain HTML, CSS and
JavaScript, no build step, nothing fetched from elsewhere) and the page-shaped API
calls under ``/api/v1/ui/``.
"""

from central.ui.routes import router

__all__ = ["router"]
