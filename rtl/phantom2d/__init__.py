"""Phantom-2D: a mesh of Phantom cores with two-level load balancing (Qureshi & Munir)."""
