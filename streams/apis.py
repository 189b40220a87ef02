"""``POST /api/v1/stream/token``: a short-lived token for a browser EventSource (streams/services.py)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import ReadScope
from streams.services import stream_token_create


class StreamTokenOut(serializers.Serializer):
    token = serializers.CharField(help_text="Pass as ?token= on a /api/v1/stream/... URL. A credential: keep it.")
    expires_at = serializers.DateTimeField()
    expires_in = serializers.IntegerField(help_text="Seconds the token is valid for.")


class StreamTokenApi(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        operation_id="v1_stream_token_create",
        request=None,
        responses={201: StreamTokenOut},
        tags=["streams"],
        summary="A short-lived token that authenticates the key's streams from a browser EventSource",
    )
    def post(self, request: Request) -> Response:
        """The token stands for the calling API key (same scopes, same accounts) on the server-sent event streams
        (``GET /api/v1/stream/orders?token=...``; the streams are documented in README, "Live streams") until
        it expires or the key is revoked."""
        token, expires_at = stream_token_create(key=request.auth)
        body = {"token": token, "expires_at": expires_at, "expires_in": int(settings.STREAM_TOKEN_TTL)}
        return Response(StreamTokenOut(body).data, status=201)
