"""Tests for pipeline.preflight: unusable output locations fail before any work starts, naming the path."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from pipeline import cli, preflight
from pipeline.configs import PipelineConfig
from pipeline.local_runner import run_local


def _config(digits_root, work_dir, *extra):
    return PipelineConfig().override([f"data.root={digits_root}", f"work_dir={work_dir}", *extra])


def test_writable_locations_pass_and_leave_no_probe_behind(digits_root, tmp_path):
    config = _config(digits_root, tmp_path / "work")
    checked = preflight.check_outputs(config)
    assert [c.role for c in checked] == ["work_dir", "pipeline root", "ML Metadata folder", "serving root"]
    assert all(c.free_mb >= c.needed_mb for c in checked)
    for location in checked:
        assert os.path.isdir(location.path)
        assert not [n for n in os.listdir(location.path) if n.startswith(".visionline-write-probe")]


def test_a_path_under_a_regular_file_fails_even_for_root(digits_root, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file")
    config = _config(digits_root, blocker / "sub")
    with pytest.raises(preflight.PreflightError, match=r"work_dir .*not-a-folder/sub cannot be created: a path "
                                                       r"component is a file"):
        preflight.check_outputs(config)


def _unprivileged(check) -> str:
    """Run `check()` as the invoking user, or — under root, which ignores permissions — in a forked child that
    drops to uid/gid 65534 (nobody); return the PreflightError message, or "" when it passed."""
    if os.geteuid() != 0:
        try:
            check()
            return ""
        except preflight.PreflightError as err:
            return str(err)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: plain os calls only, then _exit
        message = b"child failed"
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                check()
                message = b""
            except preflight.PreflightError as err:
                message = str(err).encode()
        finally:
            os.write(write_end, message)
            os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def test_an_unwritable_folder_is_named():
    base = tempfile.mkdtemp(prefix="visionline-preflight-")  # not under pytest's 0700 tmp root: nobody can reach it
    try:
        os.chmod(base, 0o755)
        locked = os.path.join(base, "locked")
        os.mkdir(locked)
        if os.geteuid() == 0:
            os.chown(locked, 65534, 65534)
        os.chmod(locked, 0o500)
        message = _unprivileged(lambda: preflight.check_location("work_dir", locked, 0))
        assert message == f"work_dir {locked} is not writable: permission denied"
        message = _unprivileged(lambda: preflight.check_location("pipeline root", os.path.join(locked, "sub"), 0))
        assert message == f"pipeline root {locked}/sub cannot be created: permission denied"
    finally:
        os.chmod(os.path.join(base, "locked"), 0o700)
        shutil.rmtree(base)


def test_a_serving_root_under_a_file_is_named(digits_root, tmp_path):
    blocker = tmp_path / "serving-file"
    blocker.write_text("x")
    config = _config(digits_root, tmp_path / "work", f"serving_root={blocker}")
    with pytest.raises(preflight.PreflightError, match=r"serving root .*serving-file/visionline cannot be created"):
        preflight.check_outputs(config)


def test_impossible_free_space_requirement_names_path_free_and_needed(digits_root, tmp_path):
    config = _config(digits_root, tmp_path / "work", "validation.min_free_disk_mb=1000000000")
    with pytest.raises(preflight.PreflightError) as failed:
        preflight.check_outputs(config)
    message = str(failed.value)
    assert message.startswith(f"not enough free disk space for the work_dir {tmp_path / 'work'}: ")
    assert "MB free, 1,000,000,000 MB needed (validation.min_free_disk_mb=1000000000)" in message


def test_pipeline_root_needs_a_multiple_of_the_input_size(digits_root, tmp_path):
    input_mb = preflight.input_size_bytes(str(digits_root)) / 2**20
    assert input_mb > 0
    free_mb = preflight.check_location("probe", str(tmp_path), 0).free_mb
    factor = 2 * free_mb / input_mb  # twice the free space
    config = _config(digits_root, tmp_path / "work", "validation.min_free_disk_mb=0",
                     f"validation.free_disk_input_factor={factor}")
    with pytest.raises(preflight.PreflightError, match=r"for the pipeline root .*free_disk_input_factor="):
        preflight.check_outputs(config)


def test_run_and_cli_fail_before_any_work(digits_root, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    config = _config(digits_root, blocker / "work")
    with pytest.raises(preflight.PreflightError):
        run_local(config)
    assert cli.main(["run", "--data", str(digits_root), "--work-dir", str(blocker / "work")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("visionline: error: work_dir ") and "cannot be created" in err
    assert "Traceback" not in err
