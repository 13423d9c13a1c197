"""Static files storage for production: whitenoise's compressed, hashed names, degrading when collectstatic is missing.

With ``collectstatic`` run (the Dockerfile runs it at build time), pages link the hashed names of
the manifest (``base.6b517d0d5813.css``) and whitenoise serves them from ``STATIC_ROOT`` with
far-future cache headers. Without it (a checkout started with ``DJANGO_DEBUG=false``), Django's
manifest storage raises ``ValueError`` for every ``{% static %}``, so every admin and browsable-API
page would be a 500. Here the link degrades to the unhashed name instead, and settings.py turns on
``WHITENOISE_USE_FINDERS`` so whitenoise serves that name from the apps' ``static/`` directories
(short cache lifetime, no compression). One warning is logged per process.
"""

from __future__ import annotations

import logging

from whitenoise.storage import CompressedManifestStaticFilesStorage

logger = logging.getLogger("tradingsite.static")


class ForgivingManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Whitenoise's manifest storage whose URLs fall back to the unhashed name when a file was not collected."""

    _warned = False

    def stored_name(self, name: str) -> str:
        try:
            return super().stored_name(name)
        except ValueError:  # not in STATIC_ROOT: collectstatic was not run (or is out of date)
            if not ForgivingManifestStaticFilesStorage._warned:
                ForgivingManifestStaticFilesStorage._warned = True
                logger.warning(
                    "static file %s not collected: serving unhashed names from the apps (run collectstatic)",
                    name,
                    extra={"event": "static_not_collected"},
                )
            return name
