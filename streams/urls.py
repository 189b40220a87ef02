from __future__ import annotations

from django.urls import path

from streams import apis

# The streams themselves (/api/v1/stream/orders ...) are served by the ASGI application (streams/sse.py).
urlpatterns = [
    path("stream/token", apis.StreamTokenApi.as_view(), name="stream-token"),
]
