# Sharding simulation (issue 18, benchmarks/shard_sim.py): 1M runs in realistic trees placed on
# N = 4, 8, 16, 32 shards by the real tether.store.ShardMap; load balance, keys moved when a shard
# is added, CPU per placement, the hash schemes compared, and the million-agent arithmetic.
# Needs no service (placement only; docs/scaling.md says how it maps onto PostgreSQL primaries).
# Writes benchmarks/results/shards.md.
BENCH_TARGETS += bench-shards

.PHONY: bench-shards

bench-shards: setup
	$(BIN)/python benchmarks/shard_sim.py
