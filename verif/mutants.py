"""The mutation campaign's mutants: deliberate bugs in the RTL and in the golden and cycle models, each
with the tests that cover the mutated code. ``leopard mutate`` applies each to a copy of the project
and runs its tests there; a non-equivalent mutant must fail one of them. A mutant marked
``equivalent`` cannot change any result (the reason says why): it runs too, and must survive."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    """Replace the one occurrence of ``find`` in ``path`` (relative to the project) by ``replace``."""

    name: str
    path: str
    find: str
    replace: str
    what: str
    tests: tuple[str, ...]
    equivalent: str | None = None


LANE_TESTS = ("tests/test_frontend_blocks.py::test_lane_matches_the_bit_serial_reference_back_to_back",)
FORMAL = ("tests/test_formal.py::test_lane_never_prunes_a_kept_key_nor_keeps_a_pruned_one",)
FRONT_RTL = ("tests/test_rtl.py::test_rtl[frontend-verilator-tiny]",)
FRONT_BARE_RTL = ("tests/test_rtl.py::test_rtl[frontend-verilator-tiny-bare]",)
FRONT_SKIP_RTL = ("tests/test_rtl.py::test_rtl[frontend-verilator-small-skip]",)
ENGINE_RTL = ("tests/test_rtl.py::test_rtl[engine-verilator-tiny]",)
BACKEND = ("tests/test_backend_blocks.py",)
GOLDEN = ("tests/test_golden.py",)
CYCLES = ("tests/test_cycles.py",)
POLICIES = ("tests/test_policies.py",)
COMPARE = ("tests/test_compare.py",)
HOOK = ("tests/test_hf_attention.py",)

RTL = [
    Mutant("lane-bound-off-by-one", "hw/rtl/lane.py",
           "partial <= threshold)", "partial < threshold)",
           "the lane's bound test one too strict", LANE_TESTS + FORMAL),
    Mutant("lane-sign-plane-added", "hw/rtl/lane.py",
           "Mux(now.sign, -partial, partial)", "Mux(now.sign, partial, partial)",
           "the sign plane's partial sum added instead of subtracted", LANE_TESTS),
    Mutant("lane-accumulator-not-doubled", "hw/rtl/lane.py",
           "Mux(fresh, 0, acc << 1)", "Mux(fresh, 0, acc)",
           "the accumulator not doubled between planes", LANE_TESTS),
    Mutant("lane-limit-wrong-plane-count", "hw/rtl/lane.py",
           "slack.eq((now.limit >> left_after) - now.pos)", "slack.eq((now.limit >> left_first) - now.pos)",
           "the next plane's limit shifted by the first plane's remaining count", LANE_TESTS),
    Mutant("lane-plane-count-stuck", "hw/rtl/lane.py",
           "steps.eq(steps + 1)", "steps.eq(steps)",
           "the lane's plane counter never advances", LANE_TESTS),
    Mutant("query-limit-off-by-one", "hw/rtl/query_unit.py",
           "self.limit.eq(self.theta + pos - 1)", "self.limit.eq(self.theta + pos)",
           "the query unit's limit θ + P instead of θ + P − 1",
           ("tests/test_frontend_blocks.py::test_query_unit_computes_positive_sum_limit_and_pair_sums",)),
    Mutant("query-positive-sum-skips-ones", "hw/rtl/query_unit.py",
           "Mux(incoming[i] > 0, incoming[i], 0)", "Mux(incoming[i] > 1, incoming[i], 0)",
           "P leaves out elements equal to 1",
           ("tests/test_frontend_blocks.py::test_query_unit_computes_positive_sum_limit_and_pair_sums",)),
    Mutant("query-positive-sum-counts-zero", "hw/rtl/query_unit.py",
           "Mux(incoming[i] > 0, incoming[i], 0)", "Mux(incoming[i] >= 0, incoming[i], 0)",
           "P includes the zero elements",
           ("tests/test_frontend_blocks.py::test_query_unit_computes_positive_sum_limit_and_pair_sums",),
           equivalent="a zero element adds zero to P either way"),
    Mutant("query-pair-sum-difference", "hw/rtl/query_unit.py",
           "incoming[2 * j] + incoming[2 * j + 1]", "incoming[2 * j] - incoming[2 * j + 1]",
           "the pair sums the lanes start from are differences",
           ("tests/test_frontend_blocks.py::test_query_unit_computes_positive_sum_limit_and_pair_sums",)),
    Mutant("lane-pair-second-element-for-both", "hw/rtl/lane.py",
           "Mux(self.plane[2 * j + 1], now.pairs[j], now.q[2 * j])",
           "Mux(self.plane[2 * j + 1], now.q[2 * j + 1], now.q[2 * j])",
           "a plane with both bits of an element pair set adds only the second element", LANE_TESTS),
    Mutant("scheduler-one-key-too-many", "hw/rtl/scheduler.py",
           "(before < self.remaining)", "(before <= self.remaining)",
           "the scheduler hands out one key more than the query has",
           ("tests/test_frontend_blocks.py::test_scheduler_hands_keys_to_the_lowest_free_lanes",)),
    Mutant("scheduler-consume-at-or-above", "hw/rtl/scheduler.py",
           "(self.count == self.remaining)", "(self.count >= self.remaining)",
           "the query is consumed when the keys handed reach or pass those remaining",
           ("tests/test_frontend_blocks.py::test_scheduler_hands_keys_to_the_lowest_free_lanes",),
           equivalent="count never exceeds remaining: a lane is handed a key only when the free lanes "
                      "before it are fewer than the keys remaining"),
    Mutant("tracker-completes-out-of-order", "hw/rtl/scheduler.py",
           "complete[k].eq(in_order & (complete[k - 1] if k else 1))", "complete[k].eq(in_order)",
           "a query completes before its predecessor",
           ("tests/test_frontend_blocks.py::test_completion_tracker_completes_queries_in_order",)),
    Mutant("key-store-planes-lsb-first", "hw/rtl/key_store.py",
           "bit.eq(B - 1 - step),", "bit.eq(step),",
           "the key store writes planes LSB first",
           ("tests/test_frontend_blocks.py::test_key_store_writes_planes_at_one_per_cycle",)),
    Mutant("key-store-skips-first-plane", "hw/rtl/key_store.py",
           "(planes[t] != 0) & (extension <= t)", "(planes[t] != 0) & (extension < t)",
           "zero-plane skipping drops the key's first significant plane", FRONT_SKIP_RTL),
    Mutant("fifo-full-ignored", "hw/rtl/qk_unit.py",
           "m.d.sync += enable.eq(Cat(*room).all())", "m.d.sync += enable.eq(1)",
           "the front end never waits for room in its FIFOs", FRONT_RTL),
    Mutant("fifo-read-without-ready", "hw/rtl/qk_unit.py",
           "queue.r_en.eq(out.ready)", "queue.r_en.eq(1)",
           "an output FIFO drops beats the consumer did not take", FRONT_RTL),
    Mutant("causal-one-key-short", "hw/rtl/qk_unit.py",
           "(position + 1 < keys), position + 1, keys)",
           "(position + 1 < keys), position, keys)",
           "a causal query does not see its own key", FRONT_RTL),
    Mutant("job-check-refuses-full-length", "hw/rtl/qk_unit.py",
           "(first + queries > cfg.max_seq_len)",
           "(first + queries >= cfg.max_seq_len)",
           "a job reaching the last query index is refused", FRONT_RTL),
    Mutant("cycle-counter-double-step", "hw/rtl/qk_unit.py",
           "self.cycles.eq(self.cycles + 1)", "self.cycles.eq(self.cycles + 2)",
           "the CYCLES counter counts twice", FRONT_RTL),
    Mutant("one-query-too-many-in-flight", "hw/rtl/qk_unit.py",
           "job.slot_query < self.released + cfg.queries_in_flight",
           "job.slot_query <= self.released + cfg.queries_in_flight",
           "one query more in flight than queries_in_flight", FRONT_BARE_RTL),
    Mutant("softmax-truncates", "hw/rtl/arith.py",
           "bias.eq(Const(1, len(bias)) << amount)", "bias.eq(0)",
           "round_shift truncates instead of rounding half up", BACKEND),
    Mutant("softmax-octave-saturates-low", "hw/rtl/softmax_pass.py",
           "Mux((z >> X) > E, E + 1, z >> X)", "Mux((z >> X) > E, E, z >> X)",
           "a far key's exponent saturates one octave too high", BACKEND),
    Mutant("softmax-distance-off-by-one", "hw/rtl/softmax_pass.py",
           "distance.eq(top1 - self.entry.score)", "distance.eq(top1 - self.entry.score + 1)",
           "each key's distance to the top score one too large", BACKEND),
    Mutant("recip-index-shifted", "hw/rtl/normalizer.py",
           "lookup.addr.eq((total >> below)[:rx])", "lookup.addr.eq((total >> (below + 1))[:rx])",
           "the reciprocal table indexed one mantissa bit too low", BACKEND),
    Mutant("output-shift-off-by-one", "hw/rtl/normalizer.py",
           "shift_out.eq(rb + k_held - cfg.out_frac_bits)",
           "shift_out.eq(rb + k_held - cfg.out_frac_bits + 1)",
           "the output vector shifted one bit too far", BACKEND),
    Mutant("output-zero-query-not-forced", "hw/rtl/normalizer.py",
           "vector[b][element].eq(Mux(zero, 0, rounded))", "vector[b][element].eq(rounded)",
           "a query with no kept key outputs the rounded accumulator instead of zero", BACKEND,
           equivalent="with no kept key every accumulator is 0, and 0 rounded is 0"),
    Mutant("collector-top-is-lowest", "hw/rtl/collector.py",
           "(entry.score > best)", "(entry.score < best)",
           "the softmax's top score is the lowest kept score", ENGINE_RTL),
    Mutant("packet-one-beat-short", "hw/rtl/normalizer.py",
           "m.d.comb += last.eq(index + 1 >= beats)", "m.d.comb += last.eq(index + 2 >= beats)",
           "an output packet ends a beat early", ENGINE_RTL),
    Mutant("cycle-counter-narrow", "hw/rtl/qk_unit.py",
           '"cycles": Out(cfg.bus_width),', '"cycles": Out(4),',
           "the CYCLES counter is 4 bits wide", FRONT_RTL),
]

MODELS = [
    Mutant("golden-bound-off-by-one", "model/reference/golden.py",
           "prune = check & ~decided & (acc < limit)", "prune = check & ~decided & (acc <= limit)",
           "the golden bound test one too loose", GOLDEN),
    Mutant("golden-keeps-above-only", "model/reference/golden.py",
           "kept = visible & (score >= problems.threshold", "kept = visible & (score > problems.threshold",
           "a score equal to the threshold is pruned", GOLDEN),
    Mutant("golden-positive-sum-absolute", "model/reference/golden.py",
           "np.maximum(q.astype(np.int64), 0).sum(axis=-1)", "np.abs(q.astype(np.int64)).sum(axis=-1)",
           "P sums |q_i| instead of max(q_i, 0)", GOLDEN),
    Mutant("golden-sign-extension-miscounted", "model/reference/golden.py",
           "extension = np.cumprod(same, axis=-1).sum(axis=-1)",
           "extension = np.cumprod(same, axis=-1).sum(axis=-1) + 1",
           "zero-plane skipping counts one sign-extension plane too many", GOLDEN),
    Mutant("golden-top-is-lowest", "model/reference/golden.py",
           "np.where(kept, score, lowest).max(axis=-1)", "np.where(kept, score, lowest).min(axis=-1)",
           "the softmax's top score is the lowest", GOLDEN),
    Mutant("golden-probability-shift", "model/reference/golden.py",
           "cfg.recip_bits + k - cfg.prob_frac_bits)", "cfg.recip_bits + k - cfg.prob_frac_bits + 1)",
           "probabilities shifted one bit too far", GOLDEN),
    Mutant("golden-empty-sum", "model/reference/golden.py",
           "total = np.where(has_key, e.sum(axis=-1), 1 << cfg.exp_frac_bits)",
           "total = np.where(has_key, e.sum(axis=-1), 1)",
           "the exponent sum of a query with no kept key", GOLDEN,
           equivalent="a query with no kept key has its probabilities and output forced to zero"),
    Mutant("fixedpoint-truncates", "hw/fixedpoint.py",
           "return (value + (np.int64(1) << (shift - 1))) >> shift", "return value >> shift",
           "the model's round_shift truncates", GOLDEN),
    Mutant("cycles-lane-busy-one-more", "model/reference/cycles.py",
           "lane_free[lane] = taken + waiting.pop(0)", "lane_free[lane] = taken + waiting.pop(0) + 1",
           "the cycle model keeps a lane one cycle longer per key", CYCLES + FRONT_RTL),
    Mutant("cycles-in-flight-one-more", "model/reference/cycles.py",
           "if index >= in_flight:", "if index > in_flight:",
           "the cycle model lets one query more into flight", FRONT_BARE_RTL),
    Mutant("cycles-collect-one-later", "model/reference/cycles.py",
           "collected = done + KEPT_FIFO_LATENCY + 1", "collected = done + KEPT_FIFO_LATENCY + 2",
           "the back end's model collects a query a cycle late", ENGINE_RTL),
    Mutant("cycles-ideal-per-lane-pair", "model/reference/report.py",
           "max(float(planes) / self.cfg.lanes, float(back))",
           "max(float(planes) / (2 * self.cfg.lanes), float(back))",
           "the whole head's ideal counts half the planes", CYCLES),
    Mutant("compiled-cycles-empty-pass", "model/reference/compiled_cycles.py",
           "last_issue = start + max(count * groups, 1)", "last_issue = start + count * groups",
           "the compiled model lets a query with no kept key pass in no cycle", CYCLES),
    Mutant("report-fast-path-drops-a-length", "model/reference/report.py",
           "for length in np.unique(problems.valid_len):", "for length in np.unique(problems.valid_len)[1:]:",
           "the fast report path skips the problems of the shortest length", ("tests/test_whole_trace.py",)),
    Mutant("top-k-keeps-one-more", "model/reference/policies.py",
           "return visible & (rank < np.asarray(k)[:, None, None])",
           "return visible & (rank <= np.asarray(k)[:, None, None])",
           "top-k keeps k + 1 keys per query", POLICIES),
    Mutant("spatten-revives-tokens", "model/reference/policies.py",
           'state["tokens"] = cascade(state["tokens"], ',
           'state["tokens"] = cascade(np.arange(problems.length)[None, :] < valid_len[:, None], ',
           "SpAtten chooses each layer's tokens among all valid ones, pruned ones included", POLICIES),
    Mutant("sanger-rounding-asymmetric", "model/reference/policies.py",
           "return np.clip(rounded, -top, top)", "return np.clip(rounded, -top - 1, top)",
           "Sanger's low-bit operands clip to an asymmetric range", POLICIES),
    Mutant("energy-macs-once-per-pair", "model/reference/energy.py",
           'counts.adds("back", acc_bits, kept * cfg.head_dim)', 'counts.adds("back", acc_bits, kept)',
           "the back end's p·v accumulates are counted once per pair, not per element", POLICIES),
    Mutant("compare-cycles-short-query", "model/training/policy_core.py",
           "cfg, attended.planes, visible, problems.valid_len).sum())",
           "cfg, attended.planes, visible, problems.valid_len - 1).sum())",
           "compare's front-end cycles drop each problem's last query", COMPARE),
    Mutant("hook-shares-keys-round-robin", "model/training/hf_attention.py",
           "key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)",
           "key, value = key.repeat(1, groups, 1, 1), value.repeat(1, groups, 1, 1)",
           "grouped-query attention gives query head h the key/value head h mod kv_heads", HOOK),
    Mutant("hook-loses-causality", "model/training/hf_attention.py",
           "        return valid, True\n", "        return valid, False\n",
           "a causal mask is read as padding only", HOOK),
]

MUTANTS = RTL + MODELS
