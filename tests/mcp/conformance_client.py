"""The client under test for the official MCP conformance suite (`conformance client --command`).

The suite starts `python tests/mcp/conformance_client.py <server-url>` once per scenario, with
`MCP_CONFORMANCE_SCENARIO`, `MCP_CONFORMANCE_PROTOCOL_VERSION` and, for some scenarios,
`MCP_CONFORMANCE_CONTEXT` (JSON) in the environment. Everything goes through Tether's MCP client:
the server is an `MCPServerConfig`, `MCPTools` connects and lists, and each call is an
`MCPTool.invoke` (the path `ctx.tool` takes in a run), so the suite judges Tether's client code,
with the SDK's transport, OAuth provider and callbacks under it. Logs go to stderr only; the exit
code is 0 when the scenario's client side ran.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from typing import Any
from urllib.parse import parse_qs, urlparse

log = logging.getLogger("conformance-client")
REDIRECT_URI = "http://localhost:3000/callback"
CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json"


# ------------------------------------------------------------------ what a server may ask for
async def elicit_with_defaults(_context: Any, params: Any) -> Any:
    """Accept, answering each field with its schema default (SEP-1034), else a plain value."""
    from mcp import types

    content: dict[str, Any] = {}
    schema = getattr(params, "requested_schema", None) or {}
    for name, prop in (schema.get("properties") or {}).items():
        if "default" in prop:
            content[name] = prop["default"]
        elif name in (schema.get("required") or []):
            content[name] = _stub(prop)
    return types.ElicitResult(action="accept", content=content)


async def sample(_context: Any, _params: Any) -> Any:
    from mcp import types

    return types.CreateMessageResult(role="assistant", model="tether-conformance",
                                     content=types.TextContent(type="text", text="ok"))


async def list_roots(_context: Any) -> Any:
    from mcp import types

    return types.ListRootsResult(roots=[types.Root.model_validate(
        {"uri": "file:///tmp", "name": "tmp"})])


def _stub(schema: dict[str, Any]) -> Any:
    """A value a schema accepts, for calling a tool the scenario only wants called."""
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    return {"integer": 1, "number": 1, "boolean": True, "object": {}, "array": [],
            "null": None}.get(str(kind), "x")


def stub_arguments(parameters: dict[str, Any]) -> dict[str, Any]:
    props = parameters.get("properties") or {}
    return {name: _stub(props.get(name) or {}) for name in parameters.get("required") or []}


# ------------------------------------------------------------------ OAuth (auth/* scenarios)
class _Storage:
    """In-memory token storage (the SDK's `TokenStorage` protocol)."""

    def __init__(self) -> None:
        self.tokens: Any = None
        self.client_info: Any = None

    async def get_tokens(self) -> Any:
        return self.tokens

    async def set_tokens(self, tokens: Any) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> Any:
        return self.client_info

    async def set_client_info(self, client_info: Any) -> None:
        self.client_info = client_info


class _Browser:
    """Plays the user: opens the authorization URL, reads code/state/iss from the redirect."""

    def __init__(self) -> None:
        self.result: Any = None

    async def redirect(self, authorization_url: str) -> None:
        import httpx2
        from mcp.shared.auth import AuthorizationCodeResult

        async with httpx2.AsyncClient() as http:
            response = await http.get(authorization_url, follow_redirects=False)
        location = response.headers.get("location")
        if response.status_code not in (301, 302, 303, 307, 308) or not location:
            raise RuntimeError(f"expected a redirect from {authorization_url}, "
                               f"got {response.status_code}")
        query = parse_qs(urlparse(location).query)
        if "code" not in query:
            raise RuntimeError(f"no authorization code in the redirect {location}")
        self.result = AuthorizationCodeResult(
            code=query["code"][0], state=_first(query, "state"), iss=_first(query, "iss"))

    async def callback(self) -> Any:
        result, self.result = self.result, None
        if result is None:
            raise RuntimeError("no authorization code: the redirect was not followed")
        return result


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


async def oauth(url: str, context: dict[str, Any], scenario: str = "") -> Any:
    """The SDK's OAuth provider the scenario calls for, handed to Tether as ``auth=``."""
    if scenario == "auth/client-credentials-basic":
        from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider

        return ClientCredentialsOAuthProvider(
            server_url=url, storage=_Storage(), client_id=context["client_id"],
            client_secret=context["client_secret"])
    if scenario == "auth/client-credentials-jwt":
        from mcp.client.auth.extensions.client_credentials import (
            PrivateKeyJWTOAuthProvider,
            SignedJWTParameters,
        )

        jwt = SignedJWTParameters(
            issuer=context["client_id"], subject=context["client_id"],
            signing_algorithm=context.get("signing_algorithm", "ES256"),
            signing_key=context["private_key_pem"])
        return PrivateKeyJWTOAuthProvider(
            server_url=url, storage=_Storage(), client_id=context["client_id"],
            assertion_provider=jwt.create_assertion_provider())
    from mcp.client.auth import OAuthClientProvider
    from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata
    from pydantic import AnyUrl

    storage = _Storage()
    if context.get("client_id"):  # pre-registered (auth/pre-registration)
        secret = context.get("client_secret")
        await storage.set_client_info(OAuthClientInformationFull(
            client_id=context["client_id"], client_secret=secret,
            redirect_uris=[AnyUrl(REDIRECT_URI)],
            token_endpoint_auth_method="client_secret_basic" if secret else "none"))
    browser = _Browser()
    return OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="tether-conformance-client", redirect_uris=[AnyUrl(REDIRECT_URI)],
            grant_types=["authorization_code", "refresh_token"], response_types=["code"]),
        storage=storage, redirect_handler=browser.redirect, callback_handler=browser.callback,
        client_metadata_url=CLIENT_METADATA_URL)


# ------------------------------------------------------------------ scenarios
def protocol_for(scenario: str, version: str | None) -> str:
    """The handshake for 2025-era legs, discovery (with fallback) for the current revision."""
    if version and version <= "2025-11-25":
        return "legacy"
    return "auto"


def calls_for(scenario: str, tools: dict[str, Any], context: dict[str, Any]
              ) -> list[tuple[str, dict[str, Any]]]:
    """Which tools the scenario expects the client to call, with which arguments."""
    if scenario == "initialize":
        return []
    if scenario == "http-custom-headers" and context.get("toolCalls"):
        # a null optional argument is left out: Tether validates arguments against the tool's
        # schema before sending, and `null` is not a boolean (not sending it is what the
        # scenario's null case checks: no Mcp-Param header for an absent value)
        return [(c["name"], {k: v for k, v in (c.get("arguments") or {}).items()
                             if v is not None}) for c in context["toolCalls"]]
    if scenario == "json-schema-2020-12-preservation" and "json_schema_echo" in tools:
        # hand back the focal tool's schema as Tether's registry holds it (what a model is shown)
        focal = tools.get("json_schema_2020_12_tool")
        return [("json_schema_echo", {"schema": focal.parameters if focal else {}})]
    wanted = {"tools_call": ["add_numbers"], "request-metadata": ["add_numbers"],
              "http-standard-headers": ["add_numbers"], "sse-retry": ["test_reconnection"],
              "elicitation-sep1034-client-defaults": ["test_client_elicitation_defaults"]}
    names = [n for n in wanted.get(scenario, []) if n in tools]
    if scenario in ("sep-2322-client-request-state", "http-invalid-tool-headers"):
        names = list(tools)  # every tool the client kept
    if not names and tools and scenario not in wanted:
        names = [next(iter(tools))]  # auth/* and others: any call proves the session works
    return [(n, stub_arguments(tools[n].parameters)) for n in names]


async def run(url: str, scenario: str, version: str | None, context: dict[str, Any]) -> int:
    from tether.tools.mcp import MCPServerConfig, MCPTools

    config = MCPServerConfig.http(
        "conformance", url, protocol=protocol_for(scenario, version), timeout=100.0,
        auth=await oauth(url, context, scenario) if scenario.startswith("auth/") else None,
        callbacks={"elicitation_callback": elicit_with_defaults, "sampling_callback": sample,
                   "list_roots_callback": list_roots})
    # the suite gives each client process 120 s; ~40 start at once (a loaded machine is slow)
    async with MCPTools([config], connect_timeout=110.0) as mcp:
        tools = {t.remote_name: t for t in mcp.tools}
        log.info("%s: tools %s (skipped %s)", scenario, sorted(tools), mcp.skipped)
        for name, arguments in calls_for(scenario, tools, context):
            tool = tools.get(name)
            if tool is None:
                log.warning("%s: the server listed no tool %r", scenario, name)
                continue
            try:
                output = await tool.invoke(arguments)
                log.info("%s: %s -> %s", scenario, name, str(output)[:200])
            except Exception as e:  # a tool error is the server's answer, not a client failure
                log.info("%s: %s failed: %s", scenario, name, e)
    return 0


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if len(sys.argv) < 2:
        print(f"usage: {sys.argv[0]} SERVER_URL (the conformance suite passes it last)",
              file=sys.stderr)
        return 2
    url = sys.argv[-1]
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    version = os.environ.get("MCP_CONFORMANCE_PROTOCOL_VERSION")
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    try:
        return asyncio.run(run(url, scenario, version, context))
    except Exception as e:
        log.error("%s: %s: %s", scenario, type(e).__name__, e)
        return 1


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__)))))
    sys.exit(main())
