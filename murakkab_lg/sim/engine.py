"""A simulated engine replica: continuous batching driven by a deployment's profile.

The model, stated once (it is what the tests check by hand):

- A replica runs at most `max_seqs` sequences at once (vLLM `max_num_seqs`, llama.cpp `parallel`);
  further requests wait in a FIFO queue and join as soon as a sequence finishes (continuous
  batching: no waiting for a whole batch to drain).
- With n sequences running, every running sequence prefills at `prefill_tok_s(n)` input tokens/s
  and then decodes at one output token per `tpot_s(n)` seconds, the profile's per-stream figures at
  concurrency n (`DeploymentProfile.at(n)`, linear between the load points). All running sequences
  share one speed, so the replica keeps two virtual clocks (tokens advanced per stream in prefill
  and in decode) and a request finishes when its clock passes its own target: one heap entry per
  request, O(log n) per event, exact for piecewise-constant n.
- Where a profile publishes no prefill speed (the ML.ENERGY rows) a request is decode only, as the
  planner predicts it too.
- Power draw with n sequences running is the profile's `power_w` interpolated at n (else energy per
  output token x throughput), and `idle_power_w` when nothing runs (0 unless given: no published
  idle figure ships). Energy is power x time, split evenly over the running sequences so each
  request carries its share; the sum over requests equals the replica's energy.
- llama.cpp on a CPU (`serial_prefill`): llama-server runs one batch per step holding the pending
  prompt tokens and one token per decoding slot; on a CPU the prompt tokens dominate that step and
  use the whole compute. So k prompts in flight share the one-sequence prefill speed
  (`prefill_tok_s(1) / k` each) while the decoding sequences wait; with none prefilling, d decoding
  sequences advance at `tpot_s(d)`. (The CPU profile's per-request prefill speed at 4 sequences is
  not an aggregate: its requests' prompt times overlap or queue, so k x that figure overstates what
  4 prompts get; the demo's replayed requests ran as this rule predicts, see docs/simulator.md.)
  Without it (vLLM, published GPU rows) all running sequences share concurrency n in both phases.
- `speed` scales every rate (CPU replicas sharing too few cores run slower and draw
  proportionally less power: the same CPU-seconds per token, stretched).
- A fan-out's copies arrive together with the same token counts, so they travel as one entry of
  weight w (w sequences): exact, and w times fewer events.
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from dataclasses import dataclass, field

from murakkab_lg.catalog.profiles import DeploymentProfile

__all__ = ("Rates", "Replica", "Request", "rates_from_profile")


@dataclass(frozen=True)
class Rates:
    """Per-concurrency tables (index n = sequences running, 1..max_seqs; index 0 unused)."""

    max_seqs: int
    prefill_tok_s: tuple[float, ...] | None  # None: prefill not modelled (not published)
    tpot_s: tuple[float, ...]
    power_w: tuple[float, ...]
    idle_power_w: float = 0.0
    # which concurrencies are profile load points (the rest are interpolated or fitted)
    measured_levels: tuple[int, ...] = ()
    serial_prefill: bool = False  # llama.cpp on a CPU: prefill steps stall decoding (module docstring)


def _interp(xs: list[float], ys: list[float], x: float) -> float:
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_left(xs, x)
    w = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
    return ys[i - 1] + (ys[i] - ys[i - 1]) * w


def rates_from_profile(profile: DeploymentProfile, max_seqs: int, idle_power_w: float = 0.0, *,
                       serial_prefill: bool = False) -> Rates:
    """Tables of prefill speed, time per output token and power for n = 1..max_seqs."""
    pts = profile.load
    xs = [float(p.concurrency) for p in pts]
    if all(p.power_w is not None for p in pts):
        pw = [float(p.power_w) for p in pts]  # type: ignore[arg-type]
    else:
        pw = [p.energy_per_output_token_j * p.throughput_tok_s for p in pts]
    has_prefill = all(p.prefill_tok_s for p in pts)
    pre: list[float] = [0.0]
    tpot: list[float] = [0.0]
    power: list[float] = [0.0]
    for n in range(1, max_seqs + 1):
        lp = profile.at(n)
        tpot.append(lp.tpot_s)
        pre.append(lp.prefill_tok_s or 0.0)
        power.append(_interp(xs, pw, float(n)))
    return Rates(max_seqs=max_seqs, prefill_tok_s=tuple(pre) if has_prefill else None, tpot_s=tuple(tpot),
                 power_w=tuple(power), idle_power_w=idle_power_w,
                 measured_levels=tuple(p.concurrency for p in pts), serial_prefill=serial_prefill and has_prefill)


@dataclass(eq=False, slots=True)
class Request:
    """One call (or a fan-out's w identical calls) to a deployment."""

    input_tokens: int
    output_tokens: int
    weight: int  # sequences this entry stands for
    owner: object  # who is told on completion (a workflow stage)
    tag: int = 0  # node index, for per-node accounting
    submitted_s: float = 0.0
    admitted_s: float = 0.0
    energy_mark: float = 0.0
    energy_j: float = 0.0
    target: float = 0.0


@dataclass(eq=False, slots=True)
class Replica:
    """One engine process of a deployment, in virtual time."""

    rates: Rates
    name: str = ""
    ready_s: float = 0.0  # cold start: nothing is admitted before this time
    speed: float = 1.0
    running: int = 0  # sequences running (sum of weights)
    prefilling: int = 0  # of which in prefill (sum of weights)
    queue: deque = field(default_factory=deque)
    queued: int = 0
    version: int = 0
    last_s: float = 0.0
    v_pre: float = 0.0  # input tokens advanced per stream
    v_dec: float = 0.0  # output tokens advanced per stream
    v_energy: float = 0.0  # joules per stream so far
    pre_heap: list = field(default_factory=list)
    dec_heap: list = field(default_factory=list)
    busy_s: float = 0.0
    energy_j: float = 0.0
    tokens_out: int = 0
    seq: int = 0

    # -- time ---------------------------------------------------------------------------------
    def advance(self, now: float) -> None:
        dt = now - self.last_s
        if dt <= 0.0:
            return
        self.last_s = now
        n = self.running
        if n == 0:
            if now > self.ready_s:
                self.energy_j += self.rates.idle_power_w * min(dt, now - self.ready_s)
            return
        r, s = self.rates, self.speed
        p = r.power_w[n] * s * dt
        self.energy_j += p
        self.v_energy += p / n
        self.busy_s += dt
        k = self.prefilling
        if r.serial_prefill:  # prompt steps first; decoding waits for them
            if k:
                self.v_pre += dt * s * r.prefill_tok_s[1] / k  # type: ignore[index]
            else:
                self.v_dec += dt * s / r.tpot_s[n]
            return
        self.v_dec += dt * s / r.tpot_s[n]
        if r.prefill_tok_s is not None:
            self.v_pre += dt * s * r.prefill_tok_s[n]

    def next_event_s(self) -> float | None:
        """When the next running request finishes a phase, at the current concurrency."""
        n = self.running
        if n == 0:
            return None
        r, s = self.rates, self.speed
        t = float("inf")
        if r.serial_prefill and self.prefilling:
            rate = s * r.prefill_tok_s[1] / self.prefilling  # type: ignore[index]
            return self.last_s + max((self.pre_heap[0][0] - self.v_pre) / rate, 0.0)
        if self.pre_heap:
            t = (self.pre_heap[0][0] - self.v_pre) / (s * r.prefill_tok_s[n])  # type: ignore[index]
        if self.dec_heap:
            t = min(t, (self.dec_heap[0][0] - self.v_dec) * r.tpot_s[n] / s)
        return self.last_s + max(t, 0.0)

    # -- requests -----------------------------------------------------------------------------
    def load(self) -> int:
        return self.running + self.queued

    def submit(self, req: Request, now: float) -> None:
        req.submitted_s = now
        self.queue.append(req)
        self.queued += req.weight
        self._admit(now)

    def _admit(self, now: float) -> None:
        if now < self.ready_s:
            return
        free = self.rates.max_seqs - self.running
        while self.queue and free > 0:
            req = self.queue[0]
            if req.weight > free:  # split a fan-out group: `free` copies start now
                part = Request(req.input_tokens, req.output_tokens, free, req.owner, req.tag, req.submitted_s)
                req.weight -= free
                self.queued -= free
                req = part
            else:
                self.queue.popleft()
                self.queued -= req.weight
            free -= req.weight
            self._start(req, now)

    def _start(self, req: Request, now: float) -> None:
        req.admitted_s = now
        req.energy_mark = self.v_energy
        self.running += req.weight
        self.seq += 1
        if self.rates.prefill_tok_s is not None and req.input_tokens > 0:
            req.target = self.v_pre + req.input_tokens
            self.prefilling += req.weight
            heapq.heappush(self.pre_heap, (req.target, self.seq, req))
        else:
            req.target = self.v_dec + req.output_tokens
            heapq.heappush(self.dec_heap, (req.target, self.seq, req))

    def pop_finished(self, now: float, eps: float = 1e-9) -> list[Request]:
        """Move prefilled requests to decode; return the requests that finished decoding."""
        # tolerance relative to the clocks: they grow for the whole run, and an absolute epsilon
        # below their float resolution would never be crossed
        done = []
        while self.pre_heap and self.pre_heap[0][0] <= self.v_pre + eps * max(1.0, self.v_pre):
            _, _, req = heapq.heappop(self.pre_heap)
            self.prefilling -= req.weight
            self.seq += 1
            req.target = self.v_dec + req.output_tokens
            heapq.heappush(self.dec_heap, (req.target, self.seq, req))
        while self.dec_heap and self.dec_heap[0][0] <= self.v_dec + eps * max(1.0, self.v_dec):
            _, _, req = heapq.heappop(self.dec_heap)
            self.running -= req.weight
            req.energy_j = (self.v_energy - req.energy_mark) * req.weight
            self.tokens_out += req.output_tokens * req.weight
            done.append(req)
        if done:
            self._admit(now)
        return done

    def become_ready(self, now: float) -> None:
        self.advance(now)
        self._admit(now)
