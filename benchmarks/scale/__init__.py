"""Parts of the scale benchmarks (`bench_scale.py`, `bench_dbos.py`): the worker process both
run (`worker_proc`), the databases they run on (`dbs`), and driving worker processes (`fleet`)."""
