"""The admin HTTP API (``/api/...``): FastAPI app, routers per area, one error mapping."""
