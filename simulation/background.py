"""``serve`` runs ``manage.py run_market`` as a supervised child process (exchange/supervisor.py) unless
PRICE_ENGINE_ENABLED is false."""

from __future__ import annotations

from django.conf import settings

from exchange.supervisor import supervise

install = supervise(
    "run_market",
    enabled=lambda: settings.PRICE_ENGINE_ENABLED,
    why_not="PRICE_ENGINE_ENABLED is false",
)
