"""Helpers for Amaranth simulation testbenches of stream components (async style)."""

from __future__ import annotations

import random


async def stream_put(ctx, stream, payload, *, idle: float = 0.0, rng: random.Random | None = None) -> None:
    """Offer ``payload`` on ``stream`` until taken; optionally idle first with probability ``idle``."""
    rng = rng or random
    while idle and rng.random() < idle:
        ctx.set(stream.valid, 0)
        await ctx.tick()
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, *, stall: float = 0.0, rng: random.Random | None = None):
    """Take one payload from ``stream``; optionally hold ``ready`` low with probability ``stall``."""
    rng = rng or random
    while stall and rng.random() < stall:
        ctx.set(stream.ready, 0)
        await ctx.tick()
    ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload
