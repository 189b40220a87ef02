"""Listen keys of the Binance-compatible user data stream (``POST /api/v3/userDataStream``).

A listen key names one API key's account's stream for 60 minutes; ``PUT`` extends it by 60 minutes, ``DELETE``
closes it. It grants reading that stream only (no trading, no other endpoint), and, as on Binance, is part of the
stream's URL (``/ws/<listenKey>``), so it is stored as it is given out.
"""

from __future__ import annotations

from django.db import models


class ListenKey(models.Model):
    listen_key = models.CharField(max_length=64, unique=True)
    api_key = models.ForeignKey("accounts.ApiKey", on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["api_key", "-expires_at"])]

    def __str__(self) -> str:
        return f"listen key of {self.api_key_id} until {self.expires_at:%Y-%m-%d %H:%M}"
