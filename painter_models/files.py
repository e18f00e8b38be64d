"""Files written atomically: a crash (even SIGKILL or a power cut) leaves the old file or the new one,
never half of one. Every file the project writes (painters, stroke files, images, SVGs, animations,
training state and logs) goes through here; no model code is needed for it."""
from __future__ import annotations

import os
import tempfile


def atomic_write(path: str, write):
    """Call write(tmp_path), sync it, then rename over `path`: a crash (even SIGKILL or a power cut)
    leaves either the old file or the new one, never a half-written one."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        # mkstemp makes 0600 (and some writers, safetensors' among them, recreate the file):
        # results are ordinary user files
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        try:  # make the rename itself durable (some filesystems cannot sync a folder: fine)
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:
            pass
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text(path: str, text: str) -> None:
    """A text file written atomically."""
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(path, write)
