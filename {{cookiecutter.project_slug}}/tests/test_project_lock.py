"""project_lock.py on its own: one holder at a time, a clear refusal, and read-only folders.

The whole commands meet the lock in tests/test_interrupts.py (two trainings at once, `make data`
during a training, kill -9) and tests/test_bad_inputs.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import project_lock
from errors import CreateLLMError
from project_lock import LockedError


def test_one_holder_at_a_time_and_released_after(tmp_path: Path) -> None:
    with project_lock.project_lock("make train", tmp_path):
        # flock belongs to an open file, so even this process cannot take it twice.
        with pytest.raises(LockedError) as refused, \
                project_lock.project_lock("make data", tmp_path):
            pass
        message = refused.value.message
        assert message.startswith(f"`make train` (PID {os.getpid()}, started ")
        assert "is already writing this project" in message
        assert "wait for it to finish" in refused.value.suggestion
    with project_lock.project_lock("make data", tmp_path):  # free again
        pass


def test_a_read_only_folder_with_a_lock_file_still_locks(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / ".llm.lock").write_text("")
    real_open = os.open

    def read_only(path, flags, *args):  # what a folder without write permission does
        if flags & (os.O_RDWR | os.O_WRONLY | os.O_CREAT):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(project_lock.os, "open", read_only)
    with project_lock.project_lock("make train", tmp_path):
        monkeypatch.setattr(project_lock.os, "open", real_open)
        with pytest.raises(LockedError, match="another command is already writing"), \
                project_lock.project_lock("make data", tmp_path):
            pass


def test_a_read_only_folder_without_one_says_so(tmp_path: Path, monkeypatch) -> None:
    def denied(path, flags, *args):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(project_lock.os, "open", denied)
    with pytest.raises(CreateLLMError) as error, project_lock.project_lock("make train", tmp_path):
        pass
    assert "cannot create the lock file" in error.value.message
    assert "is not writable" in error.value.message and "chmod u+w" in error.value.suggestion
    assert not isinstance(error.value, LockedError)


def test_deleting_the_lock_file_does_not_let_a_second_writer_in(tmp_path: Path) -> None:
    with project_lock.project_lock("make train", tmp_path):
        (tmp_path / ".llm.lock").unlink()  # the lock is the folder's, not the file's
        with pytest.raises(LockedError, match="already writing this project"), \
                project_lock.project_lock("make train", tmp_path):
            pass
    with project_lock.project_lock("make train", tmp_path):  # free again once released
        pass


def test_two_projects_cannot_train_into_one_checkpoints_folder(tmp_path: Path) -> None:
    shared = tmp_path / "shared-checkpoints"
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    with project_lock.project_lock("make train", first, run_folder=shared):
        assert (shared / ".llm.lock").is_file()
        with pytest.raises(LockedError) as refused, \
                project_lock.project_lock("make train", second, run_folder=shared):
            pass
        assert "is already writing its checkpoints folder" in refused.value.message
        assert str(shared.resolve()) in refused.value.message
        with project_lock.project_lock("make data", second):  # the other project is free
            pass
    with project_lock.project_lock("make train", second, run_folder=shared):
        pass


def test_a_checkpoints_folder_that_cannot_be_made_says_so(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(CreateLLMError) as error, \
            project_lock.project_lock("make train", tmp_path, run_folder=tmp_path / "file" / "x"):
        pass
    assert "cannot write checkpoints to" in error.value.message
    assert not isinstance(error.value, LockedError)
