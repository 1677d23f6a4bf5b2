"""WebSocket routes. Each app adds its consumers here."""

from django.urls import path

from portal.consumers import LiveConsumer

websocket_urlpatterns = [
    path("ws/live/", LiveConsumer.as_asgi()),
]
