"""``pallet rebase``: parsing and printing only (the work is in ``builder.rebase``)."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any, Callable

from builder.errors import UsageError, for_terminal


def cmd_rebase(args: argparse.Namespace) -> int:
    from builder.cli import _options
    from builder.oci import reference as refs
    from builder.oci.image import load_image
    from builder.oci.stores import open_store
    from builder import rebase

    targets = list(args.images or [])
    skipped: list[rebase.Outcome] = []
    if args.from_file:
        more, skipped = rebase.read_plan(args.from_file)
        targets += more
    if not targets and not skipped:
        raise UsageError("name at least one IMAGE, or --from FILE")
    if args.shard:  # this runner's part of the fleet (by repository; see builder.shard)
        from builder.shard import parse_shard, select

        index, total = parse_shard(args.shard)
        targets = select(targets, index, total)
        skipped = select(skipped, index, total, key=lambda o: o.reference)
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    options = _options(args)
    run_ref = refs.parse(args.run_image)
    run_store = open_store(run_ref, options)
    new_run = rebase.RunImage(load_image(run_store, run_ref.ref), args.run_image)
    if args.sign_each_platform and not args.sign_key:
        raise UsageError("--sign-each-platform goes with --sign-key")
    sign = None
    if args.sign_key:
        from builder.supply.cli_hooks import signer  # cosign-compatible signatures (supply chain)

        # rebase refreshes the SBOMs an image had itself; the hook signs and attests the rebase
        sign = signer(args.sign_key, sbom=False, builder_id=args.builder_id)
    lock = threading.Lock()

    def report(outcome: rebase.Outcome) -> None:
        if args.json:
            return
        with lock:
            stream = sys.stdout if outcome.status in (rebase.REBASED, rebase.UP_TO_DATE, rebase.WOULD_REBASE) \
                else sys.stderr
            print(for_terminal(outcome.line()), file=stream, flush=True)  # a reason quotes the image's label
            if args.dry_run and outcome.changes:
                for key, value in outcome.changes.items():
                    print(f"  {key}: {json.dumps(value, sort_keys=True)}", flush=True)

    for outcome in skipped:  # listed, not rebased: a rebase would not fix them
        report(outcome)
    outcomes = skipped + rebase.rebase_many(targets, new_run, options=options, jobs=args.jobs, force=args.force,
                                            dry_run=args.dry_run, sign=sign, sign_each=args.sign_each_platform,
                                            report=report)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    if args.json:
        print(json.dumps({"runImage": {"reference": args.run_image, "digest": new_run.image.digest},
                          "results": [o.to_json() for o in outcomes], "summary": counts}, indent=2, sort_keys=True))
    elif len(outcomes) > 1 or args.dry_run:
        print(summary, file=sys.stderr)
    bad = counts.get(rebase.FAILED, 0) + counts.get(rebase.REFUSED, 0)
    return 1 if bad else 0


def register(sub: Any, common: Callable[..., argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rebase", parents=[common()], help="swap the run image under app images, in place",
                       description="Rebase each IMAGE onto --run-image: the run image's layers are swapped, "
                                   "config and manifest rewritten, the tag moved last. Within one registry no "
                                   "layer data moves.")
    p.add_argument("images", nargs="*", metavar="IMAGE")
    p.add_argument("--run-image", required=True, metavar="REF", help="the new run image (recorded as given)")
    p.add_argument("--from", dest="from_file", metavar="FILE",
                   help="more images: one reference a line, or the JSON 'pallet audit' prints")
    p.add_argument("--jobs", type=int, default=4, help="images rebased at once (default 4)")
    p.add_argument("--shard", metavar="I/N", help="rebase only shard I of N (1..N), split by repository: the "
                                                   "same split on every runner (e.g. $CI_NODE_INDEX/$CI_NODE_TOTAL)")
    p.add_argument("--dry-run", action="store_true", help="print what would change; write nothing")
    p.add_argument("--force", action="store_true", help="rebase even onto an incompatible run image")
    p.add_argument("--sign-key", metavar="KEY", help="re-sign each rebased image with this cosign key, and attest "
                                                       "the rebase's SLSA provenance (linked to the original's)")
    p.add_argument("--sign-each-platform", action="store_true",
                   help="with --sign-key, a multi-platform image: sign and attest each platform's manifest too "
                        "(the index is signed either way, as cosign signs an index)")
    p.add_argument("--builder-id", metavar="URI", help="the builder id the rebase provenance names "
                                                       "(default: pallet's local builder)")
    p.set_defaults(func=cmd_rebase)
