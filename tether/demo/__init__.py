"""Tether's demo: ``python -m tether.demo`` (see ``tether/demo/_app.py``)."""

from tether.demo._app import DEFAULT_GOAL, demo_agent, main
from tether.demo._models import build_model
from tether.demo.analysis import DEFAULT_ANALYSIS_GOAL, analysis_agent
from tether.demo.tools import calculate, demo_tools, lookup_country

__all__ = ["DEFAULT_ANALYSIS_GOAL", "DEFAULT_GOAL", "analysis_agent", "build_model", "calculate",
           "demo_agent", "demo_tools", "lookup_country", "main"]
