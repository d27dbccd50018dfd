"""Requantizer testbench: random and edge-case vectors against golden.quant.requantize.

Scenarios vary the static configuration (zero point, clamp range) and the
stream pacing (idle input cycles, output back-pressure); each runs through
:func:`cosim.stream.run_stream`. A layer's requantization (a plan of
:func:`rtl.requant.mapper.plan`) runs through :func:`run`. Unpaced runs must take
exactly the cycles of the model (:mod:`rtl.requant.model`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cosim.stream import StreamResult, run_stream
from golden.quant import INT32_MAX, INT32_MIN, SHIFT_MAX, SHIFT_MIN, requantize
from rtl.export import Design
from rtl.requant import mapper, model

DEPTH_LOG2 = 20  # harness memory depth (words, log2)


@dataclass(frozen=True)
class Scenario:
    name: str
    zero_point: int
    act_min: int
    act_max: int
    idle: float  # probability of an idle input cycle
    stall: float  # probability of back-pressure on the output

    def statics(self) -> dict:
        return {"zero_point": self.zero_point, "act_min": self.act_min, "act_max": self.act_max}


SCENARIOS = (
    Scenario("full-range", zero_point=-3, act_min=-128, act_max=127, idle=0.0, stall=0.0),
    Scenario("relu-narrow-backpressure", zero_point=-20, act_min=-20, act_max=90, idle=0.25, stall=0.3),
)


def edge_vectors(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Hand-picked cases: saturating high multiply, extremes, shifts at both ends, rounding ties."""
    acc, mult, shift = [], [], []

    def add(a, m, s):
        acc.append(a), mult.append(m), shift.append(s)

    extremes = [INT32_MIN, INT32_MIN + 1, -(1 << 30), -1, 0, 1, 1 << 30, INT32_MAX]
    for a in extremes:
        for m in (INT32_MIN, INT32_MIN + 1, -1, 0, 1, 1 << 30, INT32_MAX):
            for s in (SHIFT_MIN, -8, -1, 0, 1, SHIFT_MAX):
                add(a, m, s)
    # The one saturating case of the doubling high multiply, with every shift.
    for s in range(SHIFT_MIN, SHIFT_MAX + 1):
        add(INT32_MIN, INT32_MIN, s)
    # Left shifts that wrap around int32 before the multiply.
    for s in range(1, SHIFT_MAX + 1):
        add(int(rng.integers(1 << 20, 1 << 31)), 1 << 30, s)
        add(-int(rng.integers(1 << 20, 1 << 31)), 1 << 30, s)
    # Rounding ties: with mult = 2**30 the high multiply halves an even acc
    # exactly, so acc = 2 * (2k+1) * 2**(e-1) lands exactly halfway at shift -e.
    for e in range(1, 31):
        for sign in (1, -1):
            for k in (0, 1, int(rng.integers(0, 1 << max(0, 29 - e)))):
                h = sign * (2 * k + 1) << (e - 1)
                if INT32_MIN <= 2 * h <= INT32_MAX:
                    add(2 * h, 1 << 30, -e)
    # Small accumulators around the rounding boundaries of typical layers.
    for a in range(-40, 41):
        add(a, 1 << 30, -2)
    corner_vectors(rng, add)
    return {k: np.array(v, dtype=np.int64) for k, v in (("acc", acc), ("mult", mult), ("shift", shift))}


def _s32(v: int) -> int:
    v &= (1 << 32) - 1
    return v - (1 << 32) if v >> 31 else v


def corner_vectors(rng: np.random.Generator, add) -> None:
    """Corners random vectors almost never reach (each ``add(acc, mult, shift)``):

    * near misses of the saturation detector: one operand INT32_MIN, the other one bit
      away from it, and both operands one bit away from INT32_MIN or INT32_MAX;
    * exact halves of the doubling high multiply: a * b = 2**30 + d (mod 2**31) for d in
      -1, 0, 1, both signs of the product, odd and even multipliers, every right shift;
    * exact halves of the rounding right shift on large values: x = acc / 2 (mult =
      2**30) with its low e bits at half - 1, half, half + 1, both signs;
    * left shifts with random multipliers, no wrap (small acc) and around the int32 wrap.
    """
    for k in range(31):
        # the product is 2**62 - 2**(31 + k): with a right shift of 24 and more the int8
        # output tells it from the saturated 2**31 - 1 (when k is high enough to matter)
        near = INT32_MIN ^ (1 << k)
        for s in (SHIFT_MIN, -30, -27, -25, -24):
            add(INT32_MIN, near, s)
            add(near, INT32_MIN, s)
        add(near, INT32_MAX ^ (1 << k), -24)
        add(INT32_MAX ^ (1 << k), near, -24)
        add(INT32_MAX ^ (1 << k), INT32_MAX, -24)
    M = 1 << 31
    for _ in range(24):
        b = int(rng.integers(1, 1 << 31)) | 1
        inv_b = pow(b, -1, M)
        for d in (-1, 0, 1):
            a = ((1 << 30) + d) * inv_b % M  # a * b = 2**30 + d (mod 2**31)
            for aa, bb in ((a, b), (a - M, b), (a, -b), (a - M, -b)):
                add(_s32(aa), _s32(bb), int(rng.integers(SHIFT_MIN, 1)))
    for e in range(1, 32):
        for sign in (1, -1):
            hi = int(rng.integers(0, 1 << max(0, 29 - e))) << e
            half = 1 << (e - 1)
            for d in (-1, 0, 1):
                x = sign * (hi + half + d)
                if INT32_MIN <= 2 * x <= INT32_MAX:
                    add(2 * x, 1 << 30, -e)
    truncation_vectors(rng, add)
    for s in range(1, SHIFT_MAX + 1):
        for _ in range(2):
            m = int(rng.integers(INT32_MIN, INT32_MAX, endpoint=True))
            small = int(rng.integers(-(1 << max(0, 30 - s)), 1 << max(0, 30 - s)))
            add(small, m, s)
            add(int(rng.integers(1, 1 << 12)), int(rng.integers(1 << 30, 1 << 31)), s)
            edge = (1 << (31 - s)) + int(rng.integers(-2, 3))  # shifted acc just around 2**31
            add(edge, m, s)
            add(-edge, m, s)


def truncation_vectors(rng: np.random.Generator, add) -> None:
    """The high multiply's truncation toward zero, bit by bit (each ``add(acc, mult, shift)``).

    For a negative product the high half is ceil(v / 2**31), v = prod + 1 - 2**30: a low
    bit of v matters only when the bits below 31 are that bit alone (v = t * 2**31 + 2**j:
    clearing it drops the result by one) or all zero (setting one raises it). The near
    halves above put v at t * 2**31 + 1 +- 2**k, where neither shows. So, per bit j:

    * small products: mult 1, acc = 2**j - 2**30 - 1 (v = -2**31 + 2**j, result 0, not -1
      -- at shift 0 the int8 output shows it);
    * products of 2**50 and more (the wide sum's high bits set or clear, so faults gated
      by them are reached too): an odd multiplier q near 2**20 and the accumulator that
      makes prod = t * 2**31 + 2**30 - 1 + 2**j (mod 2**31), with q searched until t,
      the result, sits exactly on a tie of the rounding right shift with a quotient below
      100, so a result one off moves the int8 output; j = 31 stands for v = t * 2**31.
    """
    M = 1 << 31
    for j in range(31):
        add((1 << j) - (1 << 30) - 1, 1, 0)
    for j in range(32):
        low = ((1 << 30) - 1 + (1 << j)) % M if j < 31 else (1 << 30) - 1
        for bit50 in (0, 1):  # bit 50 of v clear (v in [-2**51, -2**50)), then set (in [-2**50, 0))
            for _ in range(64):  # about one batch in two has one
                q = rng.integers(1 << 19, 1 << 21, 1 << 14, dtype=np.int64) | 1
                inv = q.astype(np.uint64)  # q**-1 mod 2**64 by Newton's iteration (q * q = 1 mod 8)
                for _ in range(5):
                    inv *= np.uint64(2) - q.astype(np.uint64) * inv
                x = (np.uint64(low) * (inv & np.uint64(M - 1)) % np.uint64(M)).astype(np.int64) - M
                t = (x * q - (1 << 30) + 1) >> 31  # x * q = t * 2**31 + 2**30 - 1 (+ 2**j), t < 0
                s = np.log2(t & -t).astype(np.int64) + 1  # t = (2c + 1) * 2**(s - 1): a tie at shift s
                hit = np.flatnonzero(((-t >> s) < 100) & (((t >> 19) & 1) == bit50))
                if len(hit):
                    add(int(x[hit[0]]), int(q[hit[0]]), -int(s[hit[0]]))
                    break
            else:
                raise AssertionError(f"no truncation vector for bit {j}")  # not seen in 200 seeds


# Static settings, each bit of zero_point, act_min and act_max at both values across the
# suite, with vectors whose outputs sweep the whole int8 range around the clamp bounds.
STATIC_SWEEP = (
    Scenario("statics zp=2 [19, 127]", zero_point=2, act_min=19, act_max=127, idle=0.0, stall=0.0),
    Scenario("statics zp=-128 [-128, -91]", zero_point=-128, act_min=-128, act_max=-91, idle=0.0, stall=0.0),
    Scenario("statics zp=127 [-86, 85]", zero_point=127, act_min=-86, act_max=85, idle=0.0, stall=0.0),
)


# An even act_max (the sweeps above have odd ones only; the base scenarios' 90 is rarely hit
# exactly by their vectors): act_max's bit 0 is otherwise never needed by an output of
# act_max + 1. Run with the sweep and :func:`half_vectors`.
EVEN_CLAMP = Scenario("statics zp=-1 [-127, 126] + halves", zero_point=-1, act_min=-127, act_max=126, idle=0.0,
                      stall=0.0)


def _halves_at(k: int, rng: np.random.Generator) -> list[int]:
    """Accumulators a whose product with the multiplier 2**k lands exactly at a half of
    the doubling high multiply and 2**k either side: a * 2**k = t * 2**31 + 2**30 +
    e * 2**k for e in -1, 0, 1 and small t (0, 1, -1 and two random, both signs)."""
    out = []
    for t in (0, 1, -1, int(rng.integers(2, 100)), -int(rng.integers(2, 100))):
        for e in (-1, 0, 1):
            a = t * (1 << (31 - k)) + (1 << (30 - k)) + e
            if INT32_MIN <= a <= INT32_MAX:
                out.append(a)
    return out


def half_vectors(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Products of the doubling high multiply exactly at a half and 2**k either side
    (multiplier 2**k, :func:`_halves_at`), at shift 0 so that the int8 output shows a
    rounding slip of one step: the corner vectors' near halves carry random multipliers
    and shifts, behind which a nudge off by 2**k hides (and the engines' requant-params
    carry the same, :func:`params_vectors`)."""
    acc, mult = [], []
    for k in range(31):
        h = _halves_at(k, rng)
        acc += h
        mult += [1 << k] * len(h)
    n = len(acc)
    return {"acc": np.array(acc, dtype=np.int64), "mult": np.array(mult, dtype=np.int64),
            "shift": np.zeros(n, dtype=np.int64)}


def params_vectors(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The first layer of the engines' ``requant-params`` scenarios (Phantom, Winograd):
    :func:`edge_vectors`, then per multiplier bit k the raw multiplier 2**k at shift 0 with
    an accumulator near t * 2**(31 - k) (|t| <= 100: bit k of mult moves the int8 output)
    and with the half products of :func:`_halves_at` (an engine's random layers carry
    TFLite multipliers, whose low bits move no output by a whole step)."""
    edges = edge_vectors(rng)
    acc, mult, shift = (list(edges[k]) for k in ("acc", "mult", "shift"))
    for k in range(31):
        t = int(rng.integers(-100, 101))
        acc.append(int(np.clip(t * (1 << (31 - k)) + int(rng.integers(0, 1 << (31 - k))) - (1 << (30 - k)),
                               INT32_MIN, INT32_MAX)))
        h = _halves_at(k, rng)
        acc += h
        mult += [1 << k] * (1 + len(h))
        shift += [0] * (1 + len(h))
    return {k: np.array(v, dtype=np.int64) for k, v in (("acc", acc), ("mult", mult), ("shift", shift))}


def deep_half_vectors(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Exact and near halves of the rounding right shift with a small quotient, at every
    right shift e from 1 to 31: acc = 2x with mult 2**30 (the high multiply gives x
    exactly), x = +-(t * 2**e + 2**(e - 1) + d) for d in -1, 0, 1 and t in 0, 1 and two
    random below 100, so the int8 output shows whether x rounded to t or t + 1. The edge
    vectors' exact ties have small quotients too, but their near misses
    (:func:`corner_vectors`) carry quotients up to 2**(29 - e), which the clamp hides at
    all but the deepest shifts."""
    acc = []
    for e in range(1, 32):
        for t in (0, 1, int(rng.integers(2, 100)), int(rng.integers(2, 100))):
            for sign in (1, -1):
                for d in (-1, 0, 1):
                    x = sign * (t * (1 << e) + (1 << (e - 1)) + d)
                    if INT32_MIN <= 2 * x <= INT32_MAX:
                        acc.append((2 * x, -e))
    a = np.array(acc, dtype=np.int64).reshape(-1, 2)
    return {"acc": a[:, 0], "mult": np.full(len(a), 1 << 30, dtype=np.int64), "shift": a[:, 1]}


def bit_half_vectors() -> dict[str, np.ndarray]:
    """Near halves of the rounding right shift one remainder bit away, at every right shift
    e from 2 to 31: acc = 2x with mult 2**30 (the high multiply gives x exactly), x = +-(2**(e
    - 1) + d) for d = +-2**j, j from 0 to e - 2, so that the remainder x mod 2**e has one bit
    j set or cleared beside the half and the int8 output (-1, 0 or 1) shows whether x
    rounded away: a rounding mask or remainder bit lost at a deep shift moves it, which
    :func:`deep_half_vectors` (d in -1, 0, 1: bit j = 0 only) cannot show for j >= 1."""
    acc = []
    for e in range(2, 32):
        for j in range(e - 1):
            for sign in (1, -1):
                for d in (1 << j, -(1 << j)):
                    x = sign * ((1 << (e - 1)) + d)
                    if INT32_MIN <= 2 * x <= INT32_MAX:
                        acc.append((2 * x, -e))
    a = np.array(acc, dtype=np.int64).reshape(-1, 2)
    return {"acc": a[:, 0], "mult": np.full(len(a), 1 << 30, dtype=np.int64), "shift": a[:, 1]}


def sweep_vectors(sc: Scenario) -> dict[str, np.ndarray]:
    """acc / 2 (mult 2**30, shift 0: exact for even acc, a tie for odd) plus the zero
    point sweeps every value from below -128 to above 127, each bound hit and missed by one."""
    y = np.arange(-140, 141)
    acc = np.concatenate([2 * (y - sc.zero_point), 2 * (y - sc.zero_point) + 1])
    n = len(acc)
    return {"acc": acc.astype(np.int64), "mult": np.full(n, 1 << 30, dtype=np.int64),
            "shift": np.zeros(n, dtype=np.int64)}


def random_vectors(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Mix of full-range accumulators and layer-like ones; TFLite-range multipliers mostly."""
    wide = rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True)
    layer_like = rng.integers(-(1 << 20), 1 << 20, n)
    acc = np.where(rng.random(n) < 0.5, wide, layer_like)
    tflite = rng.integers(1 << 30, 1 << 31, n)
    anyq = rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True)
    mult = np.where(rng.random(n) < 0.8, tflite, anyq)
    shift = rng.integers(SHIFT_MIN, SHIFT_MAX, n, endpoint=True)
    return {"acc": acc, "mult": mult, "shift": shift}


def expected(vectors: dict[str, np.ndarray], sc: Scenario) -> np.ndarray:
    return requantize(vectors["acc"], vectors["mult"], vectors["shift"], sc.zero_point,
                      sc.act_min, sc.act_max).numpy()


def cosim(design: Design, *, sim: str = "verilator", seed: int = 1, vectors: int = 20000,
          verilog: str | None = None, waves: bool = False, timeout_s: float = 300) -> list[StreamResult]:
    """Edge and corner cases plus ``vectors`` random vectors, split across :data:`SCENARIOS`,
    then :data:`STATIC_SWEEP` (static settings with a sweep of the outputs across the clamp)
    and :data:`EVEN_CLAMP` (an even act_max, with :func:`half_vectors`)."""
    if vectors < 0:
        raise ValueError(f"vectors must be >= 0, not {vectors}")
    rng = np.random.default_rng(seed)
    edges = edge_vectors(rng)
    results = []
    per = vectors // len(SCENARIOS)
    for k, sc in enumerate(SCENARIOS):
        rnd = random_vectors(rng, per + (vectors - per * len(SCENARIOS) if k == 0 else 0))
        vec = {f: np.concatenate([edges[f], rnd[f]]) for f in edges}
        r = run_stream(design, vec, sc.statics(), expected(vec, sc), sim=sim, verilog=verilog, seed=seed + k,
                       idle=sc.idle, stall=sc.stall, waves=waves, timeout_s=timeout_s, depth_log2=DEPTH_LOG2)
        _check_cycles(r, model.stream_cycles(len(vec["acc"]), design.config), paced=bool(sc.idle or sc.stall))
        r.extra["scenario"] = sc.name + (f": {r.extra['error']}" if "error" in r.extra else "")
        results.append(r)
        if not r.passed:
            return results
    for k, sc in enumerate(STATIC_SWEEP):
        vec = sweep_vectors(sc)
        r = run_stream(design, vec, sc.statics(), expected(vec, sc), sim=sim, verilog=verilog,
                       seed=seed + len(SCENARIOS) + k, waves=waves, timeout_s=timeout_s, depth_log2=DEPTH_LOG2)
        _check_cycles(r, model.stream_cycles(len(vec["acc"]), design.config), paced=False)
        r.extra["scenario"] = sc.name + (f": {r.extra['error']}" if "error" in r.extra else "")
        results.append(r)
        if not r.passed:
            return results
    sc = EVEN_CLAMP
    sweep, halves = sweep_vectors(sc), half_vectors(np.random.default_rng(seed))
    vec = {f: np.concatenate([sweep[f], halves[f]]) for f in sweep}
    r = run_stream(design, vec, sc.statics(), expected(vec, sc), sim=sim, verilog=verilog,
                   seed=seed + len(SCENARIOS) + len(STATIC_SWEEP), waves=waves, timeout_s=timeout_s,
                   depth_log2=DEPTH_LOG2)
    _check_cycles(r, model.stream_cycles(len(vec["acc"]), design.config), paced=False)
    r.extra["scenario"] = sc.name + (f": {r.extra['error']}" if "error" in r.extra else "")
    results.append(r)
    return results


def run(design: Design, plan: mapper.Plan, *, sim: str = "verilator", seed: int = 1, idle: float = 0.0,
        stall: float = 0.0, verilog: str | None = None, waves: bool = False, timeout_s: float = 300) -> StreamResult:
    """One layer's requantization through the RTL: outputs compared exactly with the
    layer's ``y``; without idle input or back-pressure its cycles must equal the
    model's (``extra["model"]``), else the run fails with ``extra["error"]``."""
    predicted = model.cycles(plan)
    r = run_stream(design, plan.inputs, plan.statics, plan.expected, sim=sim, seed=seed, idle=idle, stall=stall,
                   verilog=verilog, waves=waves, timeout_s=timeout_s, depth_log2=DEPTH_LOG2)
    r.extra["layer"] = plan.name
    r.extra["model"] = predicted
    _check_cycles(r, predicted["cycles"], paced=bool(idle or stall))
    return r


def _check_cycles(r: StreamResult, predicted: int, *, paced: bool) -> None:
    if r.passed and not paced and r.cycles != predicted:
        r.passed = False
        r.extra["error"] = f"RTL took {r.cycles} cycles, the cycle model {predicted}"


def words(plan: mapper.Plan) -> int:
    """Harness words the plan needs: one input and one output per element."""
    return plan.elements


def capacity(design: Design) -> int:
    """Harness memory depth in words."""
    return 1 << DEPTH_LOG2
