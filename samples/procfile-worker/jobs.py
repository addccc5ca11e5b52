"""The work both processes share: a job queue in a directory (a volume in production), one
JSON file per job; the worker moves each job from queue/ to done/ with its result."""

import json
import os
from pathlib import Path

DATA = Path(os.environ.get("JOBS_DIR", "/tmp/jobs"))


def dirs() -> tuple[Path, Path]:
    queue, done = DATA / "queue", DATA / "done"
    queue.mkdir(parents=True, exist_ok=True)
    done.mkdir(parents=True, exist_ok=True)
    return queue, done


def submit(text: str) -> str:
    queue, _ = dirs()
    job_id = f"{len(list(queue.iterdir())) + len(list(dirs()[1].iterdir())) + 1:06d}"
    tmp = queue / f".{job_id}.tmp"
    tmp.write_text(json.dumps({"id": job_id, "text": text}))
    tmp.rename(queue / f"{job_id}.json")
    return job_id


def process_one() -> dict | None:
    queue, done = dirs()
    for path in sorted(queue.glob("*.json")):
        job = json.loads(path.read_text())
        job["result"] = job["text"].upper()
        (done / path.name).write_text(json.dumps(job))
        path.unlink()
        return job
    return None


def stats() -> dict:
    queue, done = dirs()
    return {"queued": len(list(queue.glob("*.json"))), "done": len(list(done.glob("*.json")))}
