"""File access that works alike on local disks and on gs:// (TensorFlow's file system layer), so the
counting job reads recordings and writes results wherever its paths point."""

import glob as local_glob
import hashlib
import os
from typing import List

import tensorflow as tf


def is_remote(path: str) -> bool:
    return "://" in path


def exists(path: str) -> bool:
    return tf.io.gfile.exists(path)


def isdir(path: str) -> bool:
    return tf.io.gfile.isdir(path)


def makedirs(path: str) -> None:
    tf.io.gfile.makedirs(path)


def listdir(path: str) -> List[str]:
    return tf.io.gfile.listdir(path) if tf.io.gfile.isdir(path) else []


def walk_files(folder: str) -> List[str]:
    """Every file below `folder`, hidden files and folders skipped."""
    found = []
    for directory, subdirs, names in tf.io.gfile.walk(folder):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        found.extend(os.path.join(directory, name) for name in names if not name.startswith("."))
    return found


def glob(pattern: str) -> List[str]:
    # Python's glob understands ** locally; TensorFlow's covers gs:// (one level per *).
    return tf.io.gfile.glob(pattern) if is_remote(pattern) else local_glob.glob(pattern, recursive=True)


def open_file(path: str, mode: str = "r"):
    return tf.io.gfile.GFile(path, mode)


def read_bytes(path: str) -> bytes:
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def replace(source: str, destination: str) -> None:
    """Moves a finished file into place (atomic on local disks; copy-then-delete on object stores)."""
    tf.io.gfile.rename(source, destination, overwrite=True)


def remove(path: str) -> None:
    tf.io.gfile.remove(path)


def rmtree(path: str) -> None:
    tf.io.gfile.rmtree(path)


def stat(path: str):
    """`.length` (bytes) and `.mtime_nsec` of a file."""
    return tf.io.gfile.stat(path)


def fingerprint(paths: List[str], settings: str = "") -> str:
    """A digest that changes when any file (path, size, modification time) or the settings change."""
    digest = hashlib.sha256(settings.encode())
    for path in paths:
        info = stat(path)
        digest.update(f"|{path}|{info.length}|{info.mtime_nsec}".encode())
    return digest.hexdigest()
