"""Tether as a service: the REST API with its server-sent events (`tether.server.api`) and the
MCP server (`tether.server.mcp`).

This is the top layer beside the CLI: it may import everything below it and nothing imports it,
so the library and the command line work without the server's dependencies installed.
"""
