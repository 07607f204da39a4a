# MCP client (issue 16): the real MCP servers from PyPI that tests/tools/test_mcp*.py connect to.
#   mcp-servers  (in SETUP_TARGETS) installs mcp-server-time, mcp-server-git and mcp-server-fetch,
#                pinned, into their own venv .tether/mcp-servers-venv (their dependencies must not
#                mix with Tether's: they are third-party programs Tether starts over stdio).
#                Stamped: a second `make` does nothing (delete the venv to reinstall).
MCP_SERVERS_VENV := .tether/mcp-servers-venv
MCP_SERVERS_STAMP := $(MCP_SERVERS_VENV)/.installed
MCP_SERVERS_SPECS := mcp-server-time==2026.10.19 mcp-server-git==2026.10.19 \
  mcp-server-fetch==2026.10.24

APT_PACKAGES += git
SETUP_TARGETS += mcp-servers

.PHONY: mcp-servers

mcp-servers: $(MCP_SERVERS_STAMP)

$(MCP_SERVERS_STAMP): mk/mcp_servers.mk | $(STAMP)
	@test -x $(MCP_SERVERS_VENV)/bin/python || $(BIN)/uv venv -q --python $(BIN)/python $(MCP_SERVERS_VENV)
	$(BIN)/uv pip install -q --python $(MCP_SERVERS_VENV)/bin/python $(MCP_SERVERS_SPECS)
	@for s in time git fetch; do test -x $(MCP_SERVERS_VENV)/bin/mcp-server-$$s || exit 1; done
	@touch $@
