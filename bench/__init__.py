"""Performance benchmarks (issue 6): `python -m bench` runs them all, `--quick` a smoke run.

Every measurement is compared with a raw-SQL baseline run in the same process on the same
PostgreSQL server; results print as a table and are written to bench/results/<ts>.json.
"""
