"""Which PostgreSQL primary holds a run, when one database is not enough (the sharding plan in
docs/scaling.md).

A run's whole tree lives on one shard: the shard is chosen from the *root* run's id, so a parent
and its children share a database and every join, signal, budget and lease stays a one-database
transaction. No lookup table is needed to find a child's shard: a child's id is its parent's id +
`.KEY` (tether/runtime/_children.py), so the root's id is everything before the first `.` of any
run id in the tree, and root ids never contain one.

The hash is rendezvous (highest random weight) hashing over the shards' *names*: each shard scores
the root key and the highest score wins. Why this one (benchmarks/shard_sim.py measured the three
usual choices, results in benchmarks/results/shards.md): adding a shard moves only the roots the
new shard now wins (the ideal 1/(N+1)), and they all move to it; removing a shard moves only its
own roots; the placement depends on names, not on their order in the config, and not on the URLs,
so a failed-over primary gets a new URL without moving anything. Jump hashing is faster but keyed
on list positions (reordering or removing a middle shard moves nearly everything); a ring with
virtual nodes balances worse for the same cost. blake2b, not Python's `hash`, so every process on
every host agrees.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._base import Store
from ._records import RunRecord
from .errors import StoreError

SHARDS_ENV = "TETHER_SHARDS"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_MASK = (1 << 64) - 1


class ShardConfigError(StoreError):
    """The shard list is unusable: says which entry, where it came from, and how to write it."""


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


@dataclass(frozen=True)
class Shard:
    """One PostgreSQL primary (or SQLite file): `name` decides placement, `url` only says where
    it is today."""

    name: str
    url: str
    seed: int = field(repr=False, compare=False, default=0)


def root_key(run_id: str, root_id: str | None = None) -> str:
    """The id of the root of `run_id`'s tree: what a tree's shard is chosen by. `root_id`, when
    the caller has it (a RunRecord's `root_id`), is checked against the id rather than trusted:
    a run filed under the wrong root would be looked for on the wrong shard."""
    if not run_id:
        raise ShardConfigError("a run id is needed to choose a shard (got an empty one)")
    key = run_id.partition(".")[0]
    if root_id is not None and root_id != key:
        raise ShardConfigError(
            f"run {run_id!r} is not in the tree of root {root_id!r}: a child's id starts with "
            f"its root's id and a '.', so its shard is {key!r}'s; pass the run's own root_id")
    if not key:
        raise ShardConfigError(f"run id {run_id!r} starts with '.': no root id to shard by")
    return key


class ShardMap:
    """The shards and the rule that places a run tree on one of them."""

    def __init__(self, shards: Mapping[str, str] | Iterable[tuple[str, str]],
                 *, where: str = "the shard list") -> None:
        pairs = list(shards.items() if isinstance(shards, Mapping) else shards)
        if not pairs:
            raise ShardConfigError(f"{where} names no shard; give at least one as NAME=URL")
        seen_urls: dict[str, str] = {}
        built: dict[str, Shard] = {}
        for name, url in pairs:
            if not _NAME.fullmatch(name):
                raise ShardConfigError(
                    f"{where}: shard name {name!r} is not 1-64 letters, digits, '_' or '-' "
                    "(starting with a letter or digit); placement hashes the name, so pick one "
                    "that never needs to change, e.g. s0, s1, ...")
            if name in built:
                raise ShardConfigError(f"{where}: shard {name!r} is named twice")
            if not url.strip():
                raise ShardConfigError(f"{where}: shard {name!r} has no URL")
            if url in seen_urls:
                raise ShardConfigError(
                    f"{where}: shards {seen_urls[url]!r} and {name!r} have the same URL "
                    f"({_redact(url)}); two shards on one database would share its runs")
            seen_urls[url] = name
            built[name] = Shard(name, url, _hash64("tether-shard\0" + name))
        self._shards = built
        self._order = tuple(built.values())

    @classmethod
    def parse(cls, text: str, *, where: str = SHARDS_ENV) -> ShardMap:
        """From `NAME=URL` entries separated by whitespace or newlines (URLs have no spaces):
        `s0=postgresql://tether@db0/tether s1=postgresql://tether@db1/tether`."""
        pairs = []
        for entry in text.split():
            name, eq, url = entry.partition("=")
            if not eq:
                raise ShardConfigError(
                    f"{where}: entry {_redact(entry)!r} is not NAME=URL "
                    "(e.g. s0=postgresql://tether@db0:5432/tether)")
            pairs.append((name, url))
        return cls(pairs, where=where)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ShardMap:
        """From a YAML file: `shards:` then a list of `{name: s0, url: postgresql://...}`."""
        import yaml

        where = os.fspath(path)
        try:
            data = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise ShardConfigError(f"cannot read the shard file {where!r}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ShardConfigError(f"{where} is not valid YAML: {exc}") from exc
        entries = data.get("shards") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ShardConfigError(
                f"{where}: expected a top-level `shards:` list of {{name: ..., url: ...}} entries")
        pairs = []
        for i, entry in enumerate(entries):
            if (not isinstance(entry, dict) or not isinstance(entry.get("name"), str)
                    or not isinstance(entry.get("url"), str)):
                raise ShardConfigError(
                    f"{where}: shards[{i}] must have a string `name` and a string `url`")
            pairs.append((entry["name"], entry["url"]))
        return cls(pairs, where=where)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ShardMap | None:
        """`$TETHER_SHARDS`: inline `NAME=URL ...` entries, or the path of a YAML file (a value
        ending in .yaml/.yml). None when unset: one database, no sharding."""
        value = (os.environ if environ is None else environ).get(SHARDS_ENV, "").strip()
        if not value:
            return None
        if value.endswith((".yaml", ".yml")) and "=" not in value:
            return cls.load(value)
        return cls.parse(value)

    @property
    def shards(self) -> tuple[Shard, ...]:
        return self._order

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[Shard]:
        return iter(self._order)

    def __getitem__(self, name: str) -> Shard:
        try:
            return self._shards[name]
        except KeyError:
            raise ShardConfigError(
                f"no shard named {name!r}; the shards are {', '.join(self._shards)}") from None

    def shard_for(self, run_id: str, root_id: str | None = None) -> Shard:
        """The shard holding `run_id` (a root or any run of its tree)."""
        return self.shard_for_root(root_key(run_id, root_id))

    def shard_for_root(self, root: str) -> Shard:
        """The shard of the tree whose root is `root` (already a root id: no parsing)."""
        key = _hash64(root)
        best = self._order[0]
        best_score = -1
        # each shard's score: splitmix64's finaliser over key xor the shard's seed (one blake2b
        # per key, not one per key and shard, keeps a placement at a few microseconds)
        for shard in self._order:
            z = key ^ shard.seed
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
            z ^= z >> 31
            if z > best_score:
                best, best_score = shard, z
        return best

    def with_shard(self, name: str, url: str) -> ShardMap:
        """This map plus one shard: the map after adding a primary."""
        return ShardMap([*((s.name, s.url) for s in self._order), (name, url)])

    def without(self, name: str) -> ShardMap:
        """This map less one shard: the map after draining and retiring it."""
        self[name]
        return ShardMap([(s.name, s.url) for s in self._order if s.name != name])

    def moved_roots(self, after: ShardMap, roots: Iterable[str]) -> Iterator[tuple[str, str, str]]:
        """(root, from shard, to shard) for each of `roots` whose tree `after` places elsewhere:
        the migration list when the shard list changes."""
        for root in roots:
            old, new = self.shard_for_root(root).name, after.shard_for_root(root).name
            if old != new:
                yield root, old, new


class ShardedStores:
    """One open store per shard, opened on first use, and by-id reads routed to the right one.
    Workers do not need this: each serves one shard (its `--db` is that shard's URL), and the
    runs it spawns land on that same database, where their root is. This is for the callers
    that start from a run id: submitters, the API, the CLI.

    `previous`: the shard list before a rebalance, while trees are still being moved; a run not
    (yet) on its new shard is looked for on its old one (docs/scaling.md, "Rebalancing")."""

    def __init__(self, shard_map: ShardMap, opener: Callable[[str], Store], *,
                 previous: ShardMap | None = None) -> None:
        """`opener`: `tether.store.open_store` (passed in: this module sits below the package
        that defines it)."""
        self.map = shard_map
        self.previous = previous
        self._open = opener
        self._stores: dict[str, Store] = {}  # by URL: both lists may name one database

    def _store_at(self, shard: Shard) -> Store:
        store = self._stores.get(shard.url)
        if store is None:
            store = self._stores[shard.url] = self._open(shard.url)
        return store

    def store(self, name: str) -> Store:
        """The store of shard `name` (of the current list)."""
        return self._store_at(self.map[name])

    def store_for(self, run_id: str, root_id: str | None = None) -> Store:
        """The store that holds (or will hold) `run_id` once every move is done: where new runs
        are created."""
        return self._store_at(self.map.shard_for(run_id, root_id))

    def find(self, run_id: str) -> tuple[Store, RunRecord] | None:
        """Where `run_id` is now, and its record: its shard, or during a rebalance its shard in
        the previous list. For anything addressed to an existing run (show, signal, cancel)."""
        shard = self.map.shard_for(run_id)
        places = [shard]
        if self.previous is not None:
            old = self.previous.shard_for(run_id)
            if old.url != shard.url:
                places.append(old)
        for place in places:
            store = self._store_at(place)
            run = store.get_run(run_id)
            if run is not None:
                return store, run
        return None

    def get_run(self, run_id: str) -> RunRecord | None:
        found = self.find(run_id)
        return found[1] if found is not None else None

    def stores(self) -> Sequence[tuple[Shard, Store]]:
        """Every shard with its store (opening them): for fan-out reads such as listing runs."""
        return [(shard, self._store_at(shard)) for shard in self.map]

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()


def _redact(text: str) -> str:
    """`text` without a URL's password (shard lists are printed in errors)."""
    return re.sub(r"(://[^:/@\s]*):[^@/\s]*@", r"\1:***@", text)
