"""The ASGI application: Django for HTTP, Channels for WebSockets behind the origin check
(portal.origins: the exact origin, port included).

The device ingest endpoint (`POST /api/v1/ingest/heartbeats`) is answered by a lean ASGI app
in front of Django (fleet.ingest.endpoint.IngestEndpoint: no middleware, no thread hop, the inbox rows
of concurrent requests committed together); every other request goes on to Django. At the
server's start (the ASGI lifespan) the loaded heap is set aside from garbage collection
(portal.runtime).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")
# Django must be set up before the consumers (and the models they import) load.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from fleet.ingest.endpoint import IngestEndpoint  # noqa: E402
from portal.origins import OriginValidator  # noqa: E402
from portal.routing import websocket_urlpatterns  # noqa: E402
from portal.runtime import lifespan  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": IngestEndpoint(django_asgi_app),
        "websocket": OriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        "lifespan": lifespan,  # the server's start: portal.runtime.settle_heap
    }
)
