"""Regenerates the screenshots of docs/observability.md: a run's trace in Arize Phoenix's UI and
`tether trace`'s tree, both taken with Debian's headless chromium driven by Playwright.

    make observe-screenshots          # starts Phoenix first (make phoenix)
    .venv/bin/python -m tests.observe.screenshots

The run is `tests/observe/phoenix_agents.py:triage` (a child run, tool calls, a policy denial),
executed by `tether run` with content capture on and exported with `tether trace RUN --export` to
the Phoenix project `tether-docs`. `tether trace`'s colours are kept (FORCE_COLOR), turned into
SVG by rich and rendered to PNG by chromium. Playwright's own browser download is not used:
`/usr/bin/chromium` comes from `apt-get install chromium` (APT_PACKAGES in mk/observe.mk), and
every request to anything but the local Phoenix is blocked (the UI asks for web fonts and
GitHub stars).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from tests.observe import phoenix_support
from tests.observe.phoenix_support import ROOT, Phoenix

IMAGES = ROOT / "docs" / "images"
PROJECT = "tether-docs"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PHOENIX_PNG = "observability-phoenix-trace.png"
TRACE_PNG = "observability-tether-trace.png"


def tether(args: list[str], env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "tether", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise SystemExit(f"tether {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def traced_run(phoenix: Phoenix, where: Path) -> tuple[str, str, str]:
    """Run the triage agent, export its trace to Phoenix; (root run id, trace id, the colored
    output of `tether trace`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"TETHER_DB": str(where / "docs.db"), "PYTHONPATH": str(ROOT), "COLUMNS": "104",
                "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"})
    tether(["run", "--quiet", "--guards", "tests.observe.phoenix_agents:GUARDS",
            "tests.observe.phoenix_agents:triage", "--input", '"Delete order A-7 if it shipped"'],
           env, where)
    runs = json.loads(tether(["runs", "--json"], env, where))
    (root,) = [r["id"] for r in runs if r["parent_id"] is None]
    spans = json.loads(tether(["trace", root, "--json"], env, where))  # {run, trace_id, spans}
    trace_id = str(spans["trace_id"])
    exported = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": phoenix.otlp_http,
                "OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={PROJECT}"}
    print(tether(["trace", root, "--export"], exported, where).strip())
    shown = tether(["trace", root], {**env, "FORCE_COLOR": "1"}, where)
    phoenix.spans(PROJECT, trace_id, expect=len(spans["spans"]))
    return root, trace_id, shown


def project_id(phoenix: Phoenix, name: str) -> str:
    reply = httpx.get(f"{phoenix.url}/v1/projects/{name}", timeout=10.0)
    reply.raise_for_status()
    return str(reply.json()["data"]["id"])


def terminal_svg(ansi: str) -> str:
    """`tether trace`'s colored output as an SVG terminal (rich's own export)."""
    from rich.console import Console
    from rich.text import Text

    console = Console(record=True, width=104, force_terminal=True, color_system="truecolor",
                      file=open(os.devnull, "w"))  # noqa: SIM115 - recorded, not printed
    console.print(Text.from_ansi(ansi.rstrip("\n")))
    return console.export_svg(title="tether trace")


async def shoot(phoenix: Phoenix, project: str, trace_id: str, svg: str,
                out: Path) -> None:
    from playwright.async_api import Route, async_playwright

    async def local_only(route: Route) -> None:
        if route.request.url.startswith(phoenix.url):
            await route.continue_()
        else:
            await route.abort()

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 800})  # the tree
            await page.route("**/*", local_only)
            await page.goto(f"{phoenix.url}/projects/{project}/traces/{trace_id}",
                            wait_until="load")
            tool = page.get_by_text("execute_tool delete_order", exact=True).first
            await tool.wait_for(timeout=60_000)
            await tool.click()  # the denial, the tool's output and arguments on the right
            await page.get_by_text("denied by policy rule").first.wait_for(timeout=30_000)
            await page.wait_for_timeout(1500)  # let the panes settle
            await page.screenshot(path=str(out / PHOENIX_PNG))

            page = await browser.new_page(viewport={"width": 900, "height": 400})
            await page.set_content(
                "<html><body style='margin:0;background:#fff'>" + svg + "</body></html>")
            await page.locator("svg").first.screenshot(path=str(out / TRACE_PNG))
        finally:
            await browser.close()


def render(phoenix: Phoenix, out: Path) -> list[Path]:
    """Both screenshots of a fresh run, written into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tether-screenshots-") as tmp:
        _root, trace_id, shown = traced_run(phoenix, Path(tmp))
    asyncio.run(shoot(phoenix, project_id(phoenix, PROJECT), trace_id, terminal_svg(shown), out))
    return [out / PHOENIX_PNG, out / TRACE_PNG]


def main() -> int:
    for png in render(phoenix_support.start(), IMAGES):
        print(f"wrote {png.relative_to(ROOT)} ({png.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
