"""Studio jobs: only LLMOS's own verbs run, as `python -m llmos VERB`; the wrapper records finished, failed,
stopped (SIGTERM forwarded to the child) and the studio reads a running job without a wrapper as interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from studio_helpers import wait_for

from llmos.studio import jobs
from llmos.studio.paths import StudioError


@pytest.mark.parametrize("verb", ["serve", "studio", "sh", "-c"])
def test_only_pretrain_finetune_and_eval_can_run(tmp_path, verb):
    with pytest.raises(StudioError, match="cannot run as a studio job") as caught:
        jobs.start(verb, tmp_path / "job", ["--help"])
    assert caught.value.field == "verb"
    assert not (tmp_path / "job").exists()


def test_a_job_that_exits_0_is_finished_and_one_that_fails_is_failed(tmp_path):
    started = jobs.start("eval", tmp_path / "ok", ["--help"])
    assert started["state"] == "running"
    assert started["argv"] == [sys.executable, "-m", "llmos", "eval", "--help"]
    failing = jobs.start("eval", tmp_path / "bad", ["nomodel", "--data", "missing.txt"])
    done = wait_for(lambda: (j := jobs.read_job(tmp_path / "ok"))["state"] != "running" and j, "the help job")
    assert done["state"] == "finished" and done["exit_code"] == 0 and done["ended"] >= done["started"]
    assert "Usage" in (tmp_path / "ok" / "job.log").read_text()
    failed = wait_for(lambda: (j := jobs.read_job(tmp_path / "bad"))["state"] != "running" and j, "the bad job")
    assert failing["pid"] == failed["pid"]
    assert failed["state"] == "failed" and failed["exit_code"] == 2
    assert failed["message"] == "--data 'missing.txt': no such file"  # the CLI's own line
    assert "error: --data 'missing.txt': no such file" in (tmp_path / "bad" / "job.log").read_text()


def test_sigterm_to_the_wrapper_reaches_the_child_and_reads_stopped(tmp_path):
    run_dir = tmp_path / "sleep"
    wrapper = subprocess.Popen([sys.executable, "-m", "llmos.studio.job_runner", str(run_dir), "--",
                                sys.executable, "-c", "import time; print('working', flush=True); time.sleep(60)"])
    try:
        job = wait_for(lambda: jobs.read_job(run_dir), "job.json")
        wait_for(lambda: "working" in (run_dir / "job.log").read_text(), "the child's output")
        assert job["pid"] == wrapper.pid and job["child_pid"] and jobs.is_running(run_dir)
        jobs.stop(run_dir)
        assert wrapper.wait(timeout=20) == 128 + signal.SIGTERM
    finally:
        wrapper.kill()
    final = jobs.read_job(run_dir)
    assert final["state"] == "stopped" and final["exit_code"] == -signal.SIGTERM
    with pytest.raises(StudioError, match="is not running") as caught:
        jobs.stop(run_dir)
    assert caught.value.status == 409


def test_a_running_job_whose_wrapper_is_gone_reads_interrupted(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / "job.json").write_text(json.dumps({"verb": "pretrain", "pid": gone.pid, "state": "running",
                                                   "started": time.time()}))
    job = jobs.read_job(tmp_path)
    assert job["state"] == "interrupted" and "without recording an outcome" in job["message"]
    assert not jobs.is_running(tmp_path)
