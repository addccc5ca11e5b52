"""``pallet keygen|sign|verify|sbom|promote|audit``: parsing and printing only (the work is in
``builder.supply``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from builder.errors import UsageError, for_terminal

from builder.cli import _kv, jobs_count  # one parser for KEY=VALUE flags, one for --jobs


def _emit(args: argparse.Namespace, result: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, sort_keys=True))
    elif text:
        print(for_terminal(text, multiline=True, limit=None))


def _note(text: str) -> None:
    print(f"pallet: {for_terminal(text)}", file=sys.stderr)


def _line(text: str) -> str:
    """One line of a report made of an image's own words (package names and versions, found in
    its files): its control characters and newlines shown escaped, so it stays one line and
    cannot drive the terminal."""
    return for_terminal(text, limit=None)


def _open(text: str, args: argparse.Namespace):  # -> (Reference, Store)
    from builder.cli import _options
    from builder.oci import reference as refs
    from builder.oci.stores import open_store

    ref = refs.parse(text)
    if ref.transport in (refs.DAEMON, refs.ARCHIVE):
        raise UsageError(f"{text}: signatures, attestations and SBOMs live next to an image in a registry or "
                         "an OCI layout; the Docker engine and archives cannot hold them (copy the image first)")
    return ref, open_store(ref, _options(args))


# -- commands -----------------------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> int:
    from builder.supply import keys

    prefix = args.output_key_prefix
    if not args.force:
        keys.refuse_existing(prefix)  # before asking for a password
    password = keys.read_password(confirm=True, what=f"{prefix}.key")
    key_path, pub_path = keys.write_key_pair(prefix, password, force=args.force)
    pub = keys.read_public_key(pub_path)
    _emit(args, {"privateKey": str(key_path), "publicKey": str(pub_path), "keyId": pub.id},
          f"Private key written to {key_path}\nPublic key written to {pub_path}")
    return 0


def _signing_key(path: str):
    from builder.supply import keys

    return keys.read_private_key(path, lambda: keys.read_password(what=path))


def cmd_sign(args: argparse.Namespace) -> int:
    from builder.supply.sign import sign_image

    ref, store = _open(args.ref, args)
    key = _signing_key(args.key)
    with store:
        signed = sign_image(store, ref.ref, key, annotations=_kv(args.annotation, "--annotation") or None)
    printed = ref.at_digest(signed.digest)
    if not args.json:
        _note(f"signature {'added to' if signed.added else 'already in'} {signed.tag}")
    _emit(args, {"reference": printed, "digest": signed.digest, "signatureTag": signed.tag,
                 "signatureManifest": signed.signatures, "added": signed.added,
                 "dockerReference": signed.docker_reference}, printed)
    return 0


def _findings_of(args: argparse.Namespace):
    """``findings_of(store, digest)`` from ``--advisories``, or None when none were given."""
    if not getattr(args, "advisories", None):
        return None
    from builder.cli import _options
    from builder.supply import osv
    from builder.supply.advisories import Index
    from builder.supply.audit import PackageReader

    index = Index(osv.load(args.advisories))
    reader = PackageReader(_options(args))

    def findings_of(store, digest: str) -> list:
        """An index's: every platform's image's findings, each naming its platform."""
        from dataclasses import replace

        from builder.oci.image import platform_images

        whole = platform_images(store, digest)
        if whole is None:
            packages, _, _ = reader.read(store, digest)
            return index.match(packages)
        found = []
        for image in whole[1]:
            packages, _, _ = reader.read_image(image)
            found += [replace(f, platform=str(image.config.platform)) for f in index.match(packages)]
        return found

    return findings_of


def cmd_verify(args: argparse.Namespace) -> int:
    from builder.supply import keys, policy as policymod
    from builder.supply.verify import gather, signature_reasons

    ref, store = _open(args.ref, args)
    if args.advisories and not args.policy:
        raise UsageError("--advisories goes with --policy (its [vulnerabilities] rule); "
                         "'pallet audit --advisories' lists what affects an image")
    if args.policy:
        policy = policymod.load(args.policy)
        trusted = list(policy.keys)
    else:
        policy = None
        trusted = [keys.read_public_key(p) for p in args.key]
    findings_of = _findings_of(args)
    with store:
        digest = store.resolve(ref.ref).digest
        evidence = gather(store, digest, trusted, attestations=policy is not None, sboms=policy is not None)
        findings = findings_of(store, digest) if findings_of is not None else None
    vulns = policymod.vulnerability_outcome(policy, findings) if policy else None
    reasons = policymod.evaluate(policy, evidence, vulns) if policy else signature_reasons(evidence, trusted)
    printed = ref.at_digest(digest)
    result = {"reference": printed, "verified": not reasons, "reasons": reasons, **evidence.to_json()}
    if policy is not None:
        result["policy"] = policy.to_json()
    if vulns is not None:
        result["vulnerabilities"] = vulns.to_json()
    lines = [f"{printed}: {'verified' if not reasons else 'verification FAILED'}"]
    lines += [f"  - {for_terminal(r)}" for r in reasons]
    for s in evidence.signatures:
        lines.append(f"  signature: {s.where}, by {s.key} (identity {s.docker_reference or '-'})")
    if policy is not None:
        from builder.supply import provenance

        for st in evidence.statements:
            lines.append(f"  attestation: {st.where}, by {st.key}: {st.predicate_type} "
                         f"(builder {provenance.builder_id_of(st.statement) or '-'}, "
                         f"source {provenance.source_repository_of(st.statement) or '-'})")
        lines += [f"  sbom: {s}" for s in evidence.sboms]
        links = list(evidence.links)
        while links:
            link = links.pop(0)
            state = "refused: " + "; ".join(link.problems) if link.problems else "link holds"
            lines.append(f"  rebased from: {link.original} ({link.statement.where}, {state})")
            if link.evidence is not None:
                for st in link.evidence.statements:
                    lines.append(f"    attestation: {st.where}, by {st.key}: builder "
                                 f"{provenance.builder_id_of(st.statement) or '-'}")
                links += link.evidence.links
    if vulns is not None:
        for f, allowed in vulns.allowed:
            lines.append(_line(f"  allowed: {f.id} in {f.package} {f.installed} until {allowed.expires.isoformat()} "
                               f"({allowed.reason})"))
        lines += [_line(f"  no fix yet: {f.id} [{f.severity}] in {f.package} {f.installed}") for f in vulns.no_fix]
    if not reasons and evidence.problems:
        lines += [f"  ignored: {for_terminal(p)}" for p in evidence.problems]
    _emit(args, result, "\n".join(lines))
    if reasons:
        print(f"pallet: error: {printed} failed verification ({len(reasons)} "
              f"reason{'s' if len(reasons) > 1 else ''})", file=sys.stderr)
        return 1
    return 0


def cmd_sbom(args: argparse.Namespace) -> int:
    from builder.oci.image import load_image, platform_images
    from builder.oci.model import Platform
    from builder.supply import sbom

    ref, store = _open(args.ref, args)
    with store:
        digest = store.resolve(ref.ref).digest
        whole = None if args.platform else platform_images(store, digest)
        if whole is not None:  # an index: one document naming every platform's packages
            data = _index_sbom(args, ref, store, *whole)
        else:
            image = load_image(store, digest, Platform.parse(args.platform) if args.platform else None)
            found = None if args.attach else sbom.find_sbom(store, image.digest, args.format)
            if found is not None:
                data, where = found
                _note(f"the SBOM attached to {ref.at_digest(image.digest)} ({where})")
            else:
                inventory = sbom.collect(image)
                data = sbom.document(inventory, args.format)
                if args.attach:
                    attached = sbom.attach_sbom(store, image.digest, inventory)
                    _note("attached to " + ref.at_digest(image.digest) + ": " +
                          ", ".join(f"{fmt} as referrer {d.digest}" for fmt, d in attached.items()))
                else:
                    _note(f"no {args.format} SBOM is attached to {ref.at_digest(image.digest)}; "
                          "computed from its layers")
    sys.stdout.write(data.decode("utf-8"))
    return 0


def _index_sbom(args: argparse.Namespace, ref, store, index, images) -> bytes:  # noqa: ANN001
    """The whole index's SBOM: attached to the index, else computed from each platform's layers
    (``--attach``: attached to the index, and each platform's own to its image)."""
    from builder.supply import indexsbom, sbom

    found = None if args.attach else sbom.find_sbom(store, index.digest, args.format)
    if found is not None:
        data, where = found
        _note(f"the SBOM attached to {ref.at_digest(index.digest)} ({where})")
        return data
    inventory = indexsbom.collect(index, images)
    if args.attach:
        attached = indexsbom.attach(store, inventory)
        for one in inventory.platforms:
            sbom.attach_sbom(store, one.digest, one)
        _note("attached to " + ref.at_digest(index.digest) + ": " +
              ", ".join(f"{fmt} as referrer {d.digest}" for fmt, d in attached.items()) +
              f"; and to each of its {len(inventory.platforms)} platform images")
    else:
        _note(f"no {args.format} SBOM is attached to {ref.at_digest(index.digest)}; computed from the layers "
              f"of its {len(inventory.platforms)} platform images")
    return indexsbom.document(inventory, args.format)


def cmd_promote(args: argparse.Namespace) -> int:
    from builder.cli import _options
    from builder.oci import reference as refs
    from builder.oci.stores import open_store
    from builder.supply import policy as policymod
    from builder.supply.errors import VerificationError
    from builder.supply.promote import promote

    src_ref, dst_ref = refs.parse(args.src), refs.parse(args.dst)
    if dst_ref.digest:
        raise UsageError(f"{args.dst}: the destination takes a tag, not a digest (the digest is the source's)")
    if args.advisories and not args.policy:
        raise UsageError("--advisories goes with --policy (its [vulnerabilities] rule)")
    policy = policymod.load(args.policy) if args.policy else None
    options = _options(args)
    with open_store(src_ref, options) as src, open_store(dst_ref, options) as dst:
        try:
            result = promote(src, src_ref.ref, dst, dst_ref.tag or src_ref.tag or refs.DEFAULT_TAG,
                             policy=policy, jobs=args.jobs, findings_of=_findings_of(args))
        except VerificationError as exc:
            for reason in exc.reasons:
                print(f"  - {for_terminal(reason)}", file=sys.stderr)
            raise
    printed = dst_ref.at_digest(result.digest)
    if not args.json:
        for item in result.copied:
            _note(f"copied {item}")
    _emit(args, {"reference": printed, "digest": result.digest, "copied": result.copied}, printed)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from builder.supply.audit import audit_image

    if (args.package is None) == (args.advisories is None):
        raise UsageError("give --advisories PATH (OSV records), or --package NAME [--below VERSION]")
    if args.advisories is not None:
        return _audit_advisories(args)
    entries = []
    for text in args.refs:
        ref, store = _open(text, args)
        with store:
            entry = audit_image(store, ref, args.package, args.below)
        if entry.matches:
            entries.append(entry)
    lines = [f"{e.reference}\t" + ", ".join(_line(f"{m.name} {m.version}" + (f" [{m.platform}]" if m.platform else ""))
                                            for m in e.matches) for e in entries]
    if not entries and not args.json:
        below = f" below {args.below}" if args.below else ""
        _note(f"none of the {len(args.refs)} image(s) contains {args.package}{below}")
    _emit(args, [e.to_json() for e in entries], "\n".join(lines))
    return 0


def _audit_advisories(args: argparse.Namespace) -> int:
    from builder.cli import _options
    from builder.supply import osv
    from builder.supply.advisories import Index
    from builder.supply.audit import PackageReader, audit_advisories

    if args.below is not None:
        raise UsageError("--below goes with --package; with --advisories the records say which versions")
    index = Index(osv.load(args.advisories))
    reader = PackageReader(_options(args))
    def one(text: str):
        ref, store = _open(text, args)
        with store:
            return audit_advisories(store, ref, index, reader)

    # Reading images is mostly waiting on a registry: a few at once.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        audited = list(pool.map(one, args.refs))
    entries = [e for e in audited if e.findings]
    clean = [e for e in audited if not e.findings]
    lines = []
    for e in entries:
        lines.append(f"{e.reference}\tfix: {e.fix}")
        for f in e.findings:
            alias = f" ({', '.join(f.aliases)})" if f.aliases else ""
            source = f" (source {f.source})" if f.source and f.source != f.package else ""
            fixed = f"fixed in {f.fixed}" if f.fixed else "no fix yet"
            platform = f" [{f.platform}]" if f.platform else ""
            lines.append(_line(f"  {f.id}{alias} {f.severity}:{platform} {f.package}{source} {f.installed}, {fixed}; "
                               f"in the {f.location}"))
    if not args.json:
        _note(f"{index.advisories} advisories, {len(args.refs)} image(s): {len(entries)} affected")
        if index.skipped_ecosystems:
            _note("not matched (ecosystems pallet's SBOMs do not hold): " + ", ".join(
                f"{n} for {eco}" for eco, n in sorted(index.skipped_ecosystems.items())))
    _emit(args, {"advisories": {"path": args.advisories, "count": index.advisories,
                                "notMatched": dict(sorted(index.skipped_ecosystems.items()))},
                 "images": [e.to_json() for e in entries],
                 "clean": [e.reference for e in clean]}, "\n".join(lines))
    return 0


# -- parser ------------------------------------------------------------------------------------


def register(sub: Any, common: Callable[..., argparse.ArgumentParser]) -> None:
    where = ("REF is a registry image (docker://HOST/REPO[:TAG|@DIGEST]), an OCI layout (oci:PATH[:TAG]) "
             "or NAME[:TAG] in the local store.")

    p = sub.add_parser("keygen", parents=[common(remote=False)], help="make a signing key pair (cosign format)",
                       description="Write PREFIX.key (ECDSA P-256, encrypted as cosign does, mode 0600) and "
                                   "PREFIX.pub. The password comes from PALLET_PASSWORD, else a prompt.")
    p.add_argument("--output-key-prefix", default="cosign", metavar="PREFIX", help="default: cosign")
    p.add_argument("--force", action="store_true", help="overwrite existing PREFIX.key / PREFIX.pub")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("sign", parents=[common()], help="sign an image's manifest digest (cosign-compatible)",
                       description="Add a cosign simple-signing signature of the exact manifest digest REF "
                                   "names to its sha256-<hex>.sig tag. " + where)
    p.add_argument("ref", metavar="REF")
    p.add_argument("--key", required=True, metavar="KEY", help="private key (cosign.key); password from "
                                                                "PALLET_PASSWORD or a prompt")
    p.add_argument("--annotation", action="append", metavar="K=V", help="signed annotation (payload 'optional')")
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser("verify", parents=[common()], help="check signatures (and a policy) before deploying",
                       description="Exit 0 only if a valid signature by a trusted key covers the exact digest "
                                   "REF names (and, with --policy, the provenance and SBOM it asks for); "
                                   "otherwise print every reason and exit 1. " + where)
    p.add_argument("ref", metavar="REF")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--key", action="append", metavar="PUB", help="trusted public key (repeatable)")
    group.add_argument("--policy", metavar="POLICY.toml", help="keys, builder id, sources, SBOM requirement")
    p.add_argument("--advisories", metavar="PATH", help="OSV records for the policy's [vulnerabilities] rule "
                                                        "(a directory of .json, or a .zip)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("sbom", parents=[common(json_flag=False)], help="print an image's SBOM",
                       description="Print the SBOM attached to the image (an OCI referrer); if there is none, "
                                   "compute it from the image's layers (stderr says which). " + where)
    p.add_argument("ref", metavar="REF")
    p.add_argument("--format", choices=["cyclonedx", "spdx"], default="cyclonedx")
    p.add_argument("--attach", action="store_true",
                   help="compute the SBOM and attach it (both formats) as referrers of the image")
    p.add_argument("--platform", help="OS/ARCH[/VARIANT]: that platform's SBOM, from an index (default: an index's "
                                      "SBOM names every platform's packages)")
    p.set_defaults(func=cmd_sbom)

    p = sub.add_parser("promote", parents=[common()], help="copy a verified image with its signatures, by digest",
                       description="Resolve SRC to a digest once; verify it (with --policy); copy the exact "
                                   "manifest, its signatures, attestations and SBOMs to DST; tag DST last. "
                                   + where)
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--policy", metavar="POLICY.toml")
    p.add_argument("--advisories", metavar="PATH", help="OSV records for the policy's [vulnerabilities] rule")
    p.add_argument("--jobs", type=jobs_count, default=4, help="blobs transferred at once (default 4)")
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("audit", parents=[common()], help="list the images affected by advisories, or containing a package",
                       description="Read each image's SBOM (attached, else computed) and list the images that "
                                   "contain the package, below VERSION if given (Debian version order). "
                                   "--json output is what 'pallet rebase --from' takes. " + where)
    p.add_argument("refs", metavar="REF", nargs="+")
    p.add_argument("--advisories", metavar="PATH",
                   help="OSV records (a directory of .json, or a .zip as osv.dev publishes them): report "
                        "each advisory affecting each image, and whether a rebase or a rebuild fixes it")
    p.add_argument("--jobs", type=jobs_count, default=8, help="images read at once (default 8)")
    p.add_argument("--package", metavar="NAME")
    p.add_argument("--below", metavar="VERSION")
    p.set_defaults(func=cmd_audit)
