"""Local development: the default when nothing else is chosen (``manage.py`` uses it)."""

from __future__ import annotations

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=False)
LOCK_ORDER_CHECKS = DEBUG
# Local only: a fixed, obviously-not-secret key so a newcomer can start without set-up. Production refuses it.
SECRET_KEY = env.str("SECRET_KEY", default="local-development-only-not-a-secret")
