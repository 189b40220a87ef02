"""The exchange-simulator Django project: settings, URLs, errors, logging, health and the servers."""
