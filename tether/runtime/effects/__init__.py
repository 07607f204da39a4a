"""The effects `ctx` builds on `ctx.step`: model calls (`model.py`) and tool calls (`tool.py`).

They belong to the runtime: each journals one step per call and speaks in the runtime's terms
(a replayed request that changed is a `NonDeterminismError`, a step the runtime failed is an
`ActivityError`), while the packages they call — `tether.models`, `tether.tools` — sit below the
runtime and know nothing of it. `Context.model` and `Context.tool` import these modules on first
use, so `import tether` does not load httpx, pydantic models or jsonschema. Nothing is imported
here for the same reason.

`ctx.exec` is `tether.sandbox.effect.exec_effect`: it needs nothing of the runtime but the shape
of `ctx` (`step`, `scratch`, `store`), which it declares itself as a Protocol, so it stays with
the workspace code it drives.
"""
