"""What a tenant name may be: one rule for every place a tenant is named.

A tenant is a key in API keys, usage counters, budgets, worker queues and policy files; a name
one of them accepts and another refuses (`tether run --tenant 'a b'` queued a run no API key
could ever be created for) splits a deployment's view of who owns what."""

from __future__ import annotations

import re

from .errors import InvalidInput

#: letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64
TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
TENANT_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def check_tenant(tenant: object, where: str = "tenant") -> str:
    """`tenant` if it is a valid tenant name; otherwise InvalidInput naming `where`."""
    if not isinstance(tenant, str) or not TENANT_NAME.fullmatch(tenant):
        raise InvalidInput(f"{where} {tenant!r} is not a tenant name: {TENANT_RULE} "
                           "(e.g. 'acme')")
    return tenant
