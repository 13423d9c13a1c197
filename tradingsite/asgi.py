"""ASGI entry point, for completeness; production runs WSGI under gunicorn."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingsite.settings")

application = get_asgi_application()
