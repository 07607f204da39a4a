"""Network egress against a hostile model, with two real HTTP servers on 127.0.0.1.

`public` is the service the policy allows (host *and* port); `internal` listens on the same host,
another port, and must never see a request: not by naming its port, not through a redirect from
`public` (one hop or several, to any spelling of its address), not through an OpenAPI path
parameter, and not from a plain `@tool` fetcher that declared `network=True`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tether import Tether
from tether.guards import GuardConfig, Guards, PolicyLoadError, loads_policy
from tether.guards.policy import ToolInfo
from tether.tools import ToolRegistry, openapi_tools, tool
from tether.tools.network import async_client, set_egress_check


# ------------------------------------------------------------------------------ servers
@dataclass
class Server:
    name: str
    port: int = 0
    paths: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def _reply(self, status: int, body: str = "", location: str | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            if location is not None:
                self.send_header("Location", location)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            server.paths.append(self.path)
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if server.name == "internal":
                return self._reply(200, "internal secret")
            if url.path == "/redirect":
                return self._reply(302, location=query["to"][0])
            if url.path == "/chain":  # n more hops on public, then to `to`
                n = int(query["n"][0])
                to = query["to"][0]
                nxt = to if n == 0 else f"/chain?n={n - 1}&to={httpx.URL(to)}"
                return self._reply(302, location=nxt)
            if url.path == "/v1/users/jump":
                return self._reply(307, location=query.get("to", ["/"])[0])
            if url.path.startswith("/v1/users/"):
                return self._reply(200, f"user {url.path.removeprefix('/v1/users/')}")
            return self._reply(200, f"public {url.path}")

    return Handler


def _serve(name: str) -> Iterator[Server]:
    server = Server(name)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def public() -> Iterator[Server]:
    yield from _serve("public")


@pytest.fixture
def internal() -> Iterator[Server]:
    yield from _serve("internal")


def _policy(public: Server, extra: str = "") -> Any:
    return loads_policy(f"""
name: egress
egress:
  allow: ["localhost:{public.port}"]
rules:
  - {{id: fetchers, tools: [fetch, fetch_sync, fetch_plain, get_user], effect: allow}}
{extra}""", "egress.yaml")


# ------------------------------------------------------------------------------ tools
@tool(network=True)
async def fetch(url: str, http: httpx.AsyncClient) -> str:
    """Fetch a URL (follows redirects)."""
    return (await http.get(url)).text


@tool(network=True)
def fetch_sync(url: str, http: httpx.Client) -> str:
    """Fetch a URL from a sync tool (runs in a thread)."""
    return http.get(url).text


@tool(network=True)
async def fetch_plain(url: str) -> str:
    """A fetcher with a client of its own: only its arguments can be judged."""
    async with httpx.AsyncClient(follow_redirects=True) as client:
        return (await client.get(url)).text


# ------------------------------------------------------------- ports (the policy, before)
def test_issue_example_a_bare_host_does_not_open_every_port(public: Server,
                                                            internal: Server) -> None:
    """`allow_domains: [localhost]` let `http://localhost:PB/admin` through (issue 13)."""
    legacy = loads_policy("http:\n  allow_domains: [localhost]\n"
                          "rules:\n  - {id: f, tools: fetch, effect: allow}\n", "old.yaml")
    d = legacy.decide(ToolInfo("fetch", "read", kind="http"),
                      {"url": f"http://localhost:{internal.port}/admin"})
    assert (d.action, d.rule) == ("deny", "http.allow_domains"), d.explain()
    assert f"localhost:{internal.port}" in d.reason and "port" in d.reason
    # the default port is what a bare name still allows
    ok = legacy.decide(ToolInfo("fetch", "read", kind="http"), {"url": "http://localhost/x"})
    assert ok.action == "allow", ok.explain()


@pytest.mark.parametrize("template", [
    "http://localhost:{B}/admin",
    "http://127.0.0.1:{B}/admin",
    "http://LOCALHOST.:{B}/admin",
    "http://[::1]:{B}/admin",
    "http://localhost:{A}@localhost:{B}/admin",
    "http://localhost:{B}\\@localhost:{A}/",
    "http://localhost:{B}#@localhost:{A}",
    " http://localhost:{B}/admin",
    "http://127.1:{B}/admin",
    "http://2130706433:{B}/admin",
    "http://0x7f.0.0.1:{B}/admin",
    "http://localhost:{A}.evil.example/",
    "https://localhost:{B}/admin",
    "ftp://localhost:{A}/",
    "file:///etc/passwd",
    "http://localhost/admin",   # port 80 is not port A
    "http://%6cocalhost:{A}/",
])
def test_hostile_destinations_are_denied_before_the_call(public: Server, internal: Server,
                                                         template: str) -> None:
    url = template.format(A=public.port, B=internal.port)
    policy = _policy(public)
    for tool_name, args in (("fetch", {"url": url}), ("fetch", {"url": f"{public.url}/ok",
                                                                "also": [{"next": url}]})):
        d = policy.decide(ToolInfo(tool_name, "read", network=True), args)
        assert (d.action, d.rule) == ("deny", "egress.allow"), (url, d.explain())


def test_the_allowed_destination_is_allowed(public: Server) -> None:
    d = _policy(public).decide(ToolInfo("fetch", "read", network=True),
                               {"url": f"{public.url}/ok"})
    assert d.action == "allow", d.explain()


# -------------------------------------------------------- every hop (the client, during)
async def _call(t: Any, args: dict[str, Any], check: Any) -> Any:
    """Run a tool the way the guards do: the egress check armed in the call's own context."""

    async def armed() -> Any:
        set_egress_check(check)
        return await t.run(args)

    return await asyncio.create_task(armed())


@pytest.mark.parametrize("fetcher", [fetch, fetch_sync], ids=["async", "sync"])
@pytest.mark.parametrize("to", [
    "http://localhost:{B}/admin",
    "http://127.0.0.1:{B}/admin",
    "http://[::1]:{B}/admin",
    "http://127.1:{B}/admin",
    "http://localhost:{A}@localhost:{B}/admin",
])
async def test_a_redirect_to_the_internal_service_is_stopped_at_the_hop(
        public: Server, internal: Server, fetcher: Any, to: str) -> None:
    target = to.format(A=public.port, B=internal.port)
    policy = _policy(public)
    start = f"{public.url}/redirect?to={target}"
    assert policy.decide(ToolInfo(fetcher.name, "read", network=True),
                         {"url": start}).action == "allow"  # the first URL is fine
    result = await _call(fetcher, {"url": start}, policy.egress_check)
    assert not result.ok and result.error.type == "egress_denied", result
    assert "egress denied" in result.error.message
    assert internal.paths == []
    assert [p.split("?")[0] for p in public.paths] == ["/redirect"]


async def test_every_hop_of_a_long_chain_is_checked(public: Server, internal: Server) -> None:
    policy = _policy(public)
    start = f"{public.url}/chain?n=3&to=http://localhost:{internal.port}/admin"
    result = await _call(fetch, {"url": start}, policy.egress_check)
    assert not result.ok and result.error.type == "egress_denied"
    assert len(public.paths) == 4 and internal.paths == []  # 4 hops on public, none beyond
    # redirects that stay on the allowed service are followed
    ok = await _call(fetch, {"url": f"{public.url}/chain?n=2&to={public.url}/done"},
                     policy.egress_check)
    assert ok.ok and ok.output == "public /done"


async def test_each_run_follows_its_own_policy(public: Server, internal: Server) -> None:
    """The check lives in the call's context: concurrent calls under different policies."""
    narrow = _policy(public)
    wide = loads_policy(f"egress:\n  allow: ['localhost:{public.port}', "
                        f"'localhost:{internal.port}']\n", "wide.yaml")
    url = f"{public.url}/redirect?to=http://localhost:{internal.port}/x"
    denied, allowed = await asyncio.gather(_call(fetch, {"url": url}, narrow.egress_check),
                                           _call(fetch, {"url": url}, wide.egress_check))
    assert denied.error.type == "egress_denied"
    assert allowed.ok and allowed.output == "internal secret"
    assert internal.paths == ["/x"]  # only the wide policy's call got there


async def test_a_client_made_by_the_tool_layer_checks_too(public: Server,
                                                          internal: Server) -> None:
    set_egress_check(_policy(public).egress_check)
    try:
        async with async_client() as http:
            assert (await http.get(f"{public.url}/ok")).text == "public /ok"
            with pytest.raises(Exception, match="egress denied"):
                await http.get(f"http://localhost:{internal.port}/admin")
    finally:
        set_egress_check(None)
    assert internal.paths == []


# ------------------------------------------------------------- OpenAPI path parameters
def _user_api(tmp_path: Path, public: Server, client: httpx.AsyncClient | None = None) -> Any:
    spec = tmp_path / "users.yaml"
    spec.write_text("""
openapi: 3.0.3
info: {title: users, version: "1"}
paths:
  /users/{id}:
    get:
      operationId: get_user
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
        - {name: to, in: query, schema: {type: string}}
      responses: {"200": {description: ok}}
""")
    (t,) = openapi_tools(spec, f"{public.url}/v1", client=client)
    return t


@pytest.mark.parametrize("value", ["..", ".", "", "../admin", "%2e%2e", "%2E%2E/admin",
                                   "..%2fadmin", "a/../../admin", "../../../internal", "..;",
                                   "?x=1", "#frag", "..\\admin"])
async def test_path_parameters_cannot_change_the_endpoint(tmp_path: Path, public: Server,
                                                          internal: Server, value: str) -> None:
    get_user = _user_api(tmp_path, public)
    result = await _call(get_user, {"id": value}, _policy(public).egress_check)
    if value in ("..", ".", ""):
        assert not result.ok and result.error.type == "invalid_arguments", result
        assert public.paths == []
    else:
        assert result.ok, result
        assert len(public.paths) == 1 and public.paths[0].startswith("/v1/users/")
        assert "/" not in public.paths[0].removeprefix("/v1/users/")  # one segment
        assert result.output.startswith("user ")
    assert internal.paths == []


async def test_a_client_handed_to_openapi_tools_checks_redirects(tmp_path: Path, public: Server,
                                                                 internal: Server) -> None:
    async with httpx.AsyncClient(follow_redirects=True) as own:
        get_user = _user_api(tmp_path, public, client=own)
        jump = {"id": "jump", "to": f"http://localhost:{internal.port}/admin"}
        result = await _call(get_user, jump, _policy(public).egress_check)
    assert not result.ok and result.error.type == "egress_denied"
    assert internal.paths == [] and len(public.paths) == 1


# ------------------------------------------------------------- declaring network tools
def test_tool_declares_network_and_the_http_client_is_not_an_argument() -> None:
    assert fetch.network and fetch_sync.network and fetch_plain.network
    assert set(fetch.parameters["properties"]) == {"url"}
    assert set(fetch_sync.parameters["properties"]) == {"url"}

    @tool
    def plain(url: str) -> str:
        return url

    assert plain.network is False


def test_a_client_parameter_requires_network_true() -> None:
    from tether.tools import ToolDefinitionError

    with pytest.raises(ToolDefinitionError, match="network=True"):
        @tool
        async def sneaky(url: str, http: httpx.AsyncClient) -> str:
            return url

    with pytest.raises(ToolDefinitionError, match=r"httpx\.Client"):
        @tool(network=True)
        def mismatched(url: str, http: httpx.AsyncClient) -> str:
            return url


# ------------------------------------------------------------- on the real runtime
STATE: dict[str, Any] = {}


async def hostile_agent(ctx: Any, goal: dict[str, Any]) -> list[dict[str, Any]]:
    """Every proposal through the guards, then one call straight to ctx.tool (no gateway)."""
    guards: Guards = STATE["guards"]
    out = []
    for name, args in goal["calls"]:
        result = await guards.tool(ctx, name, args)
        out.append(result.model_dump(mode="json"))
    direct = await ctx.tool(guards.tools, "fetch", {"url": goal["direct"]})
    out.append(direct.model_dump(mode="json"))
    return out


async def test_a_hostile_model_reaches_nothing_internal_through_the_guards(
        db_path: str, tmp_path: Path, public: Server, internal: Server) -> None:
    registry = ToolRegistry([fetch, fetch_sync, fetch_plain, _user_api(tmp_path, public)])
    guards = Guards(GuardConfig(policy=_policy(public)), tools=registry)
    STATE["guards"] = guards
    b = f"http://localhost:{internal.port}"
    calls = [
        ("fetch", {"url": f"{b}/admin"}),                                   # named outright
        ("fetch_plain", {"url": f"{b}/admin"}),                             # own client
        ("fetch", {"url": f"{public.url}/redirect?to={b}/admin"}),          # one hop
        ("fetch_sync", {"url": f"{public.url}/chain?n=2&to={b}/admin"}),    # three hops
        ("get_user", {"id": ".."}),                                         # path traversal
        ("get_user", {"id": "../admin"}),
        ("fetch", {"url": f"{public.url}/ok"}),                             # allowed
    ]
    t = Tether(db_path, interceptors=guards.interceptors(), lease_ttl=5.0)
    try:
        run = await t.run(hostile_agent, {"calls": calls,
                                          "direct": f"{public.url}/redirect?to={b}/x"})
    finally:
        t.close()
    assert run.status == "succeeded", run.error
    kinds = [r["error"]["type"] if r["error"] else "ok" for r in run.result]
    assert kinds == ["policy_denied", "policy_denied", "egress_denied", "egress_denied",
                     "invalid_arguments", "ok", "ok", "egress_denied"], run.result
    assert internal.paths == []
    assert all(p.startswith(("/redirect", "/chain", "/v1/users/", "/ok")) for p in public.paths)


# ------------------------------------------------------------- the policy file
@pytest.mark.parametrize("text,line,fragment", [
    ("egress:\n  allow:\n    - api.example.com\n    - https://x.com/\n", 4, "not a URL"),
    ("egress:\n  allow: ['*']\n", 2, "every host"),
    ("egress:\n  allow:\n    - a.example.com:99999\n", 3, "1-65535"),
    ("egress:\n  allow:\n    - ::1\n", 3, "brackets"),
    ("egress:\n  allow:\n    - 127.1:80\n", 3, "non-canonical"),
    ("egress:\n  allow:\n    - a.*.example.com\n", 3, "first label"),
    ("egress:\n  deny: [x.com]\n", 2, "unknown key 'egress.deny'"),
    ("http:\n  allow_domains: [x.com]\negress:\n  allow: [y.com]\n", 1, "both"),
    ("http:\n  allow_domains:\n    - ok.example.com\n    - 'bad host'\n", 4, "not a URL"),
    ("rules:\n  - id: a\n    tools: x\n    effect: allow\n    args:\n      u: {domain_in: "
     "['x.com:0']}\n", 6, "1-65535"),
])
def test_bad_egress_entries_are_rejected_at_load_with_their_line(text: str, line: int,
                                                                fragment: str) -> None:
    with pytest.raises(PolicyLoadError) as exc:
        loads_policy(text, "bad.yaml")
    assert exc.value.line == line, str(exc.value)
    assert fragment in exc.value.reason, exc.value.reason
    assert str(exc.value).startswith(f"bad.yaml:{line}:")


@pytest.mark.parametrize("url,ok", [
    ("https://api.example.com/x", True),
    ("http://api.example.com/x", True),
    ("https://api.example.com:8443/x", False),
    ("http://localhost:8080/x", True),
    ("http://localhost:8081/x", False),
    ("http://localhost/x", False),
    ("https://a.b.github.com/", True),
    ("https://github.com/", False),
])
def test_domain_in_condition_uses_host_and_port(url: str, ok: bool) -> None:
    policy = loads_policy("rules:\n  - id: a\n    tools: f\n    effect: allow\n    args:\n"
                          "      u: {domain_in: [api.example.com, 'localhost:8080', "
                          "'*.github.com']}\n")
    d = policy.decide(ToolInfo("f", "read"), {"u": url})
    assert (d.action == "allow") is ok, d.explain()
