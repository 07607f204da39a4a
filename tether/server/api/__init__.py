"""The REST API of `tether serve`: FastAPI under /v1, OpenAPI at /openapi.json, server-sent
events for a run's journal, tenants by API key (`tether.server.keys`)."""

from tether.server.api.app import create_app
from tether.server.api.config import AgentEntry, ServerConfig, load_agents_file

__all__ = ["AgentEntry", "ServerConfig", "create_app", "load_agents_file"]
