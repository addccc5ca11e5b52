"""The worker process: takes jobs off the queue and processes them. Runs forever, or for
WORKER_ITERATIONS polls when that is set."""

import os
import time

import jobs

if __name__ == "__main__":
    iterations = int(os.environ.get("WORKER_ITERATIONS", "0")) or None
    print("procfile-worker worker started", flush=True)
    n = 0
    while iterations is None or n < iterations:
        job = jobs.process_one()
        if job:
            print(f"processed job {job['id']}: {job['result']}", flush=True)
        else:
            print(f"idle, {jobs.stats()}", flush=True)
            time.sleep(float(os.environ.get("WORKER_POLL_SECONDS", "1")))
        n += 1
