"""Does generated variance help? Paired comparisons between methods and one-line claims with verdicts.

Every comparison is a method minus a reference of the same seed (both runs of a seed share the
warm-up encoder, so the seed-to-seed spread of the difference is what tells a real gain from noise).
A claim's verdict comes from the 95 % t-interval (n-1 degrees of freedom) of the mean mAP gain:
holds when the interval lies entirely above 0, refuted when entirely below, otherwise not resolved.
"""

from __future__ import annotations

from dataclasses import dataclass

from genreid.registry import label, method_names, report_order
from genreid.report.tables import Gain, ResultRow, paired_gains

# (method, reference) beyond "every trained method vs baseline"
HEAD_TO_HEAD: tuple[tuple[str, str], ...] = (("gcl", "control_aug"), ("gcl", "control_none"),
                                             ("gcl_plus", "control_aug"), ("gcl_plus", "gcl"),
                                             ("control_aug", "control_none"), ("baseline", "direct"),
                                             ("oracle_views", "control_aug"), ("oracle_views", "control_none"),
                                             ("gcl", "oracle_views"))
CLAIMS: tuple[tuple[str, str, str], ...] = (
    ("gcl", "control_aug", "Generated views beat traditional augmentation as the positive view"),
    ("gcl_plus", "gcl", "GCL+'s identity variance adds to GCL"),
    ("control_none", "baseline", "Stage-3 memory training alone helps"),
    ("gcl", "control_none", "Generated views help beyond more training"),
    ("control_aug", "control_none", "Traditional augmentation helps the stage-3 memory training"),
    ("gcl", "baseline", "GCL improves on its warm-up encoder"),
    ("gcl_plus", "baseline", "GCL+ improves on its warm-up encoder"),
    ("baseline", "direct", "UDA: the target warm-up improves on direct transfer of the source encoder"),
    ("oracle_views", "control_aug", "Perfect views beat traditional augmentation as the positive view"),
)
# The gain a perfect generator gives: from no positive view (control_none) to the true views (oracle_views).
ORACLE, NO_VIEW = "oracle_views", "control_none"
REALISING = "gcl"  # whose share of that gain the report states
HOLDS, REFUTED, UNRESOLVED = "holds", "refuted", "not resolved"
RULE = ("95 % paired t-interval of the mean mAP gain over seeds (t with n-1 degrees of freedom): holds if the "
        "interval lies entirely above 0, refuted if entirely below 0, otherwise not resolved")


def method_rank(method: str) -> int:
    """Position in the results table (the registry's report order); unknown methods go last, in their
    given order."""
    order = report_order()
    return order.index(method) if method in order else len(order)


def verdict(ci: tuple[float, float] | None) -> str:
    """holds / refuted / not resolved from a 95 % interval (None: fewer than 2 seeds)."""
    if ci is None:
        return UNRESOLVED
    lo, hi = ci
    if lo > 0.0:
        return HOLDS
    if hi < 0.0:
        return REFUTED
    return UNRESOLVED


@dataclass(frozen=True)
class Comparison:
    dataset: str
    method: str
    reference: str
    gains: dict[str, Gain]

    @property
    def verdict(self) -> str:
        return verdict(self.gains["mAP"].ci95) if "mAP" in self.gains else UNRESOLVED


def comparison_pairs() -> list[tuple[str, str]]:
    return [(m, "baseline") for m in method_names()] + list(HEAD_TO_HEAD)


def comparisons(rows: list[ResultRow], metrics: tuple[str, ...] = ("mAP", "R1")) -> list[Comparison]:
    """Every pair of ``comparison_pairs`` whose two methods ran on a dataset (and share a seed)."""
    by_key = {(r.dataset, r.method): r for r in rows}
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    out = []
    for ds in datasets:
        for method, ref in comparison_pairs():
            if (ds, method) in by_key and (ds, ref) in by_key:
                gains = paired_gains(by_key[(ds, method)], by_key[(ds, ref)], metrics)
                if gains:
                    out.append(Comparison(ds, method, ref, gains))
    return out


def comparisons_table(found: list[Comparison]) -> list[str]:
    lines = ["| dataset | method | against | seeds | mAP gain [95 % CI] | R1 gain [95 % CI] | seeds with a mAP gain "
             "| mAP verdict |", "|---|---|---|---|---|---|---|---|"]
    for c in found:
        g = c.gains
        cells = [g[k].format() if k in g else "-" for k in ("mAP", "R1")]
        n = next(iter(g.values())).stat.n
        wins = f"{g['mAP'].wins} of {g['mAP'].stat.n}" if "mAP" in g else "-"
        lines.append(f"| {c.dataset} | {c.method} | {c.reference} | {n} | {cells[0]} | {cells[1]} | {wins} | "
                     f"{g['mAP'].verdict if 'mAP' in g else '-'} |")
    return lines


def claim_lines(found: list[Comparison]) -> list[str]:
    """One sentence per claim and dataset whose comparison exists, with its verdict."""
    by_key = {(c.dataset, c.method, c.reference): c for c in found}
    datasets = list(dict.fromkeys(c.dataset for c in found))
    lines = []
    for ds in datasets:
        for method, ref, text in CLAIMS:
            c = by_key.get((ds, method, ref))
            if c is None or "mAP" not in c.gains:
                continue
            g = c.gains["mAP"]
            lines.append(f"- {ds}: {text} ({label(method)} vs {label(ref)}): **{c.verdict}** "
                         f"(mAP {g.format()}, n = {g.stat.n})")
    return lines


def realised_share(found: list[Comparison]) -> list[str]:
    """Per dataset: the share of the control_none -> oracle_views mAP gain that GCL realises,
    mean(GCL - control_none) / mean(oracle_views - control_none), each mean paired by seed."""
    by_key = {(c.dataset, c.method, c.reference): c for c in found}
    lines = []
    for ds in dict.fromkeys(c.dataset for c in found):
        perfect, realised = by_key.get((ds, ORACLE, NO_VIEW)), by_key.get((ds, REALISING, NO_VIEW))
        if perfect is None or realised is None or "mAP" not in perfect.gains or "mAP" not in realised.gains:
            continue
        p, r = perfect.gains["mAP"], realised.gains["mAP"]
        text = (f"- {ds}: Share of the {NO_VIEW} -> {ORACLE} gain that {label(REALISING)} realises: "
                f"**{{share}}** ({label(REALISING)} - {NO_VIEW} mAP {r.format()}, n = {r.stat.n}; "
                f"{ORACLE} - {NO_VIEW} mAP {p.format()}, n = {p.stat.n})")
        share = f"{100.0 * r.stat.mean / p.stat.mean:.0f} %" if p.stat.mean > 0 else \
            "undefined (perfect views gain nothing over no positive view)"
        lines.append(text.format(share=share))
    return lines


def render_section(rows: list[ResultRow]) -> list[str]:
    """The README section: the paired-gains table, then the claims."""
    found = comparisons(rows)
    if not found:
        return []
    lines = ["## Does generated variance help? (paired gains)", "",
             "Differences paired by seed (a method minus the reference of the same seed, which shares its "
             "warm-up encoder): mean and 95 % t-interval over seeds (t with n-1 degrees of freedom). "
             "A method is called better or worse only when the interval excludes zero. control_aug is stage 3 "
             "with traditional augmentation (`train.control_aug`) as the positive view instead of the generator's; "
             "control_none is stage 3 with no positive view; oracle_views takes SynthReID's true novel view at the "
             "sampled angle (a perfect generator); all three cluster with GCL's `train.gcl.cluster`.", ""]
    lines += comparisons_table(found) + [""]
    claims = claim_lines(found) + realised_share(found)
    if claims:
        lines += ["### Claims", "", f"Verdict rule: {RULE}.", ""] + claims + [""]
    return lines
