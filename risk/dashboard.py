"""The operators' dashboard in the admin (/admin/dashboard/): the risk summary (house inventory, exposure, fees),
order flow per minute over the last hour as a small inline SVG chart (nothing fetched from anywhere), rejections by
reason, the reconciliation status with a button to run it, and the alerts in force."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib import messages
from django.db.models import Count, Q
from django.db.models.functions import TruncMinute
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from ledger.reconciliation import reconcile
from orders.models import Order, OrderStatus
from risk.monitoring import risk_summary

CHART_MINUTES = 60
REJECTIONS_WINDOW = timedelta(hours=24)
SESSION_KEY = "exchange_last_reconciliation"


def order_flow_per_minute(*, now: datetime, minutes: int = CHART_MINUTES) -> list[dict[str, Any]]:
    """Orders and rejections in each of the last ``minutes`` minutes (oldest first, empty minutes included)."""
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=minutes)
    rows = (
        Order.objects.filter(created_at__gte=start, created_at__lt=end)
        .annotate(minute=TruncMinute("created_at"))
        .values("minute")
        .annotate(orders=Count("pk"), rejections=Count("pk", filter=Q(status=OrderStatus.REJECTED)))
    )
    counts = {row["minute"].replace(tzinfo=start.tzinfo): row for row in rows}
    flow = []
    for i in range(minutes):
        minute = start + timedelta(minutes=i)
        row = counts.get(minute, {})
        flow.append({"minute": minute, "orders": row.get("orders", 0), "rejections": row.get("rejections", 0)})
    return flow


def rejections_by_reason(*, since: datetime) -> list[dict[str, Any]]:
    return list(
        Order.objects.filter(status=OrderStatus.REJECTED, created_at__gte=since)
        .values("reject_reason")
        .annotate(count=Count("pk"))
        .order_by("-count", "reject_reason")
    )


def flow_chart(flow: list[dict[str, Any]], *, width: int = 720, height: int = 140) -> SafeString:
    """Bars of orders per minute with the rejected part in red, as inline SVG."""
    top = max([1, *(point["orders"] for point in flow)])
    slot = width / len(flow)
    bars = []
    for i, point in enumerate(flow):
        x = i * slot
        for count, css in ((point["orders"], "orders"), (point["rejections"], "rejections")):
            if count:
                h = (height - 20) * count / top
                bars.append(
                    f'<rect class="{css}" x="{x + 1:.1f}" y="{height - 15 - h:.1f}" width="{max(slot - 2, 1):.1f}" '
                    f'height="{h:.1f}"><title>{escape(point["minute"].strftime("%H:%M"))}: {point["orders"]} orders, '
                    f"{point['rejections']} rejected</title></rect>"
                )
    first, last = flow[0]["minute"].strftime("%H:%M"), flow[-1]["minute"].strftime("%H:%M")
    svg = (
        f'<svg id="order-flow-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Orders per minute, last {len(flow)} minutes">'
        "<style>.orders{fill:#417690}.rejections{fill:#ba2121}text{font:11px sans-serif;fill:#666}</style>"
        f'<line x1="0" y1="{height - 15}" x2="{width}" y2="{height - 15}" stroke="#ccc"/>'
        f'<text x="0" y="{height - 2}">{first}</text><text x="{width - 30}" y="{height - 2}">{last}</text>'
        f'<text x="0" y="10">max {top}/min</text>{"".join(bars)}</svg>'
    )
    return mark_safe(svg)  # noqa: S308 - built here from numbers and escaped times only


def dashboard_view(request: HttpRequest, admin_site: Any) -> HttpResponse:
    if request.method == "POST" and "run_reconciliation" in request.POST:
        report = reconcile()
        request.session[SESSION_KEY] = {
            "ok": report.ok,
            "at": timezone.now().isoformat(timespec="seconds"),
            "checks": report.checks,
            "discrepancies": report.discrepancies[:20],
            "discrepancy_count": len(report.discrepancies),
        }
        level = messages.SUCCESS if report.ok else messages.ERROR
        messages.add_message(
            request,
            level,
            "Reconciliation: the books reconcile."
            if report.ok
            else f"Reconciliation found {len(report.discrepancies)} discrepancies.",
        )
        return HttpResponseRedirect(reverse("admin:dashboard"))
    now = timezone.now()
    summary = risk_summary(now=now)
    flow = order_flow_per_minute(now=now)
    context = {
        **admin_site.each_context(request),
        "title": "Operator dashboard",
        "summary": summary,
        "flow_chart": flow_chart(flow),
        "flow_total": sum(point["orders"] for point in flow),
        "flow_rejections": sum(point["rejections"] for point in flow),
        "rejections": rejections_by_reason(since=now - REJECTIONS_WINDOW),
        "reconciliation": request.session.get(SESSION_KEY),
    }
    return TemplateResponse(request, "admin/exchange/dashboard.html", context)
