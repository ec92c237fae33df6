"""The billing HTTP API (FastAPI), mounted under ``/api/v1``."""

from backend.api.app import create_app

__all__ = ["create_app"]
