"""What ``pallet inspect`` reports about an image, as plain data (printing is the CLI's job)."""

from __future__ import annotations

from typing import Any

from builder.errors import for_terminal
from builder.oci.image import Image


def describe(image: Image, reference: str) -> dict[str, Any]:
    config = image.config
    run = config.config
    return {
        "reference": reference,
        "digest": image.digest,
        "mediaType": image.descriptor.media_type,
        "size": image.descriptor.size,
        "index": image.index.digest if image.index else None,
        "platform": str(config.platform),
        "created": config.created,
        "config": {
            "digest": image.manifest.config.digest,
            "entrypoint": list(run.entrypoint) if run.entrypoint is not None else None,
            "cmd": list(run.cmd) if run.cmd is not None else None,
            "env": list(run.env),
            "user": run.user,
            "workingDir": run.working_dir,
            "labels": dict(run.labels),
            "exposedPorts": list(run.exposed_ports),
        },
        "layers": [
            {"digest": desc.digest, "diffID": diff_id, "size": desc.size, "mediaType": desc.media_type}
            for desc, diff_id in image.layers()
        ],
        "annotations": dict(image.manifest.annotations or {}),
    }


def render_text(info: dict[str, Any]) -> str:
    lines = [
        f"Reference:  {info['reference']}",
        f"Digest:     {info['digest']}",
        f"Media type: {info['mediaType']}",
        f"Platform:   {info['platform']}",
    ]
    if info["index"]:
        lines.append(f"Index:      {info['index']}")
    if info["created"]:
        lines.append(f"Created:    {info['created']}")
    cfg = info["config"]
    lines.append(f"Config:     {cfg['digest']}")
    for key, label in (("entrypoint", "Entrypoint"), ("cmd", "Cmd"), ("user", "User"), ("workingDir", "WorkingDir")):
        if cfg[key] not in (None, ""):
            lines.append(f"  {label}: {cfg[key]}")
    if cfg["env"]:
        lines.append("  Env:")
        lines.extend(f"    {e}" for e in cfg["env"])
    if cfg["labels"]:
        lines.append("  Labels:")
        lines.extend(f"    {k}={v}" for k, v in sorted(cfg["labels"].items()))
    lines.append(f"Layers ({len(info['layers'])}):")
    for layer in info["layers"]:
        lines.append(f"  {layer['digest']}  {layer['size']:>12}  diffID {layer['diffID']}")
    if info["annotations"]:
        lines.append("Annotations:")
        lines.extend(f"  {k}={v}" for k, v in sorted(info["annotations"].items()))
    # Every value is the image's own (labels, env, annotations): each line shows its control
    # characters and newlines escaped, so an image can neither drive the terminal nor forge a line.
    return "\n".join(for_terminal(line, limit=None) for line in lines)
