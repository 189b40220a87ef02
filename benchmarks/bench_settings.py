"""Settings of the service under benchmark: production settings plus one benchmark-only route.

The trivial endpoint lives here, outside the product's URLConf, so the product never ships a benchmark route.
Everything else (middleware, authentication, logging, database options) is production's, unchanged, unless one of
the ``BENCH_*`` experiment switches below is set (docs/benchmarks.md reports what each one changed).
"""

from __future__ import annotations

from exchange.settings.production import *  # noqa: F403
from exchange.settings.production import DATABASES, env

ROOT_URLCONF = "benchmarks.bench_urls"

_db = DATABASES["default"]
# BENCH_CONN_HEALTH_CHECKS=false: what the per-request "SELECT 1" on a persistent connection costs.
_db["CONN_HEALTH_CHECKS"] = env.bool("BENCH_CONN_HEALTH_CHECKS", default=_db.get("CONN_HEALTH_CHECKS", False))
# BENCH_SERVER_SIDE_BINDING=true: parameters bound by the server, so psycopg can prepare repeated statements.
# https://docs.djangoproject.com/en/5.2/ref/databases/#server-side-parameters-binding
if env.bool("BENCH_SERVER_SIDE_BINDING", default=False):
    _db.setdefault("OPTIONS", {})["server_side_binding"] = True
