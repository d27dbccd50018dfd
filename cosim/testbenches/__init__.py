"""Per-engine testbenches, one module per engine named as in the engine table (rtl.engines)."""
