"""Tests for pipeline.run_lock: a second run or a prune of the same pipeline is refused while another process
holds the lock, and a process that dies leaves no stale lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from pipeline import cli, run_lock
from pipeline.configs import PipelineConfig


def _hold(metadata_path: str) -> subprocess.Popen:
    """A separate process that takes the lock, says so, and waits to be killed."""
    code = textwrap.dedent(f"""
        import sys, time
        from pipeline import run_lock
        with run_lock.exclusive({metadata_path!r}, "run"):
            print("held", flush=True)
            time.sleep(600)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_process_is_refused_naming_the_holder_and_a_dead_holder_leaves_no_lock(tmp_path):
    metadata = PipelineConfig().override([f"work_dir={tmp_path / 'work'}"]).metadata_path
    holder = _hold(metadata)
    try:
        with pytest.raises(run_lock.RunInProgressError) as refused, run_lock.exclusive(metadata, "prune"):
            pass
        message = str(refused.value)
        assert message.startswith(f"{tmp_path / 'work'}: another visionline process is using this pipeline (pid "
                                  f"{holder.pid}, run, since ")
    finally:
        holder.kill()
        holder.wait()
    with run_lock.exclusive(metadata, "prune"):  # killed, not cleaned up: the kernel released the lock
        pass
    with run_lock.exclusive(metadata, "run"), pytest.raises(run_lock.RunInProgressError):
        with run_lock.exclusive(metadata, "prune"):  # another open file: refused in the same process too
            pass


def test_run_and_prune_commands_are_refused_while_a_run_holds_the_lock(digits_root, tmp_path, capsys):
    work = tmp_path / "work"
    metadata = PipelineConfig().override([f"work_dir={work}"]).metadata_path
    (work / "metadata").mkdir(parents=True)
    open(metadata, "wb").close()  # prune needs a store to exist before it asks for the lock
    holder = _hold(metadata)
    try:
        assert cli.main(["run", "--data", str(digits_root), "--work-dir", str(work), "--in-memory"]) == 2
        err = capsys.readouterr().err
        assert "another visionline process is using this pipeline" in err and "Traceback" not in err
        assert cli.main(["prune", "--work-dir", str(work)]) == 2
        assert f"(pid {holder.pid}, run, since " in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
