"""``serve`` runs ``manage.py risk_monitor`` as a supervised child process (exchange/supervisor.py), every
RISK_MONITOR_INTERVAL; 0 keeps it off."""

from __future__ import annotations

from django.conf import settings

from exchange.supervisor import supervise

install = supervise(
    "risk_monitor",
    enabled=lambda: settings.RISK_MONITOR_INTERVAL > 0,
    why_not="RISK_MONITOR_INTERVAL is 0",
)
