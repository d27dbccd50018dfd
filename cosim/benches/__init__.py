"""Benchmarks: one module per `nnaccel bench NAME`, each with `bench(out, vectors) -> (result, lines, passed)`."""
