"""Settings split by environment: base (shared), local, production and test."""
