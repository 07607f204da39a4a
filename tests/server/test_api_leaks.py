"""What a viewer key reads through the REST API holds placeholders, not the values the journal
keeps; an operator key reads the journal as it is. Found by a leak hunt: `GET /v1/runs/{id}`,
its events stream and `GET /v1/runs` showed a viewer a tool's CRM row (card, IBAN, API key), a
token a tool read from the environment and an error quoting a bearer token, all of which the
run's model only ever saw masked.

A real governed ReAct run (tests/observe/leaks_support.py) served by the real app."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.observe import leaks_support as L
from tests.server.test_api_stream import parse_sse
from tether.server.api import ServerConfig
from tether.server.api.app import create_app
from tether.server.keys import ApiKeys


async def test_a_viewer_key_reads_a_run_masked_an_operator_whole(db_path: str) -> None:
    t, run = await L.leaky_run(db_path)
    t.close()
    app = create_app(ServerConfig(db=db_path, embedded_worker=False))
    with TestClient(app) as client:
        keys = ApiKeys(app.state.tether.tether.store)
        read = {}
        for role in ("viewer", "operator"):
            key, _ = keys.create(run.tenant, role)
            h = {"Authorization": f"Bearer {key}"}
            detail = client.get(f"/v1/runs/{run.id}", headers=h)
            listed = client.get("/v1/runs", headers=h)
            stream = client.get(f"/v1/runs/{run.id}/events", params={"follow": "false"},
                                headers=h)
            assert detail.status_code == listed.status_code == stream.status_code == 200
            read[role] = (detail.text, listed.text,
                          json.dumps([f["data"] for f in parse_sse(stream.text)]))
    for text in read["viewer"]:
        assert L.found(text) == [], text[:500]
    detail = json.loads(read["viewer"][0])
    assert "[CARD_1]" in json.dumps(detail["timeline"])  # masked, not dropped
    assert L.ENV_SECRET in read["operator"][0] and L.CARD in read["operator"][2]
