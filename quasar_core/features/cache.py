"""The on-disk feature cache: VGG16's output for a photo is computed once per machine, never twice.

An entry is keyed by everything its numbers depend on (``FeatureSpec``: the photo's content
digest, image size, weights, precision, layer and augmentation view), so a cached feature is
reused only when all of them match. Each entry is one small file, written to a temporary name
and renamed into place (two processes may write at once; a reader sees a whole file or none),
with its length and a BLAKE2 checksum inside: a corrupt or truncated entry is detected, deleted
and recomputed, never trusted. The cache has a size budget; the least recently used entries
go first (a read touches the file's modification time).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import struct
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

CACHE_ENV = "QUASAR_CACHE_DIR"
BUDGET_ENV = "QUASAR_CACHE_MB"
DEFAULT_BUDGET_BYTES = 2 * 1024**3
MAGIC = b"QNF1"
SUFFIX = ".qnf"
_DIGEST_BYTES = 32


@dataclass(frozen=True)
class FeatureSpec:
    """What a feature depends on, besides the photo itself."""

    weights_id: str  # backbone.weights_id(): a hash of the weights file, or "random-<seed>"
    image_size: int
    precision: str  # the precision that ran (never "auto")
    layer: str = "pooled-block4-block5"  # extract.POOLED (block4_pool and block5_pool averaged) or a boundary layer
    view: int = 0  # 0: the photo itself; 1..: an augmented copy
    augmentation: str = ""  # the augmentation settings and seed that made views 1.. (empty for view 0)

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def with_view(self, view: int, augmentation: str) -> "FeatureSpec":
        return FeatureSpec(self.weights_id, self.image_size, self.precision, self.layer, view,
                           augmentation if view else "")


def default_cache_dir(*, runs_root: str | Path | None = None) -> Path:
    """QUASAR_CACHE_DIR; else `features/` beside the dashboard's runs root; else the user's cache folder."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    if runs_root is not None:
        return Path(runs_root).resolve().parent / "features"
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(base) / "quasar" / "features"


def budget_from_env() -> int:
    raw = os.environ.get(BUDGET_ENV, "").strip()
    if not raw:
        return DEFAULT_BUDGET_BYTES
    try:
        value = float(raw)
    except ValueError:
        value = -1
    if not value > 0:
        raise ValueError(f"{BUDGET_ENV}={raw!r} is not valid: expected a number of megabytes above 0.")
    return int(value * 1024**2)


class FeatureCache:
    """Arrays on disk under `root`, by (photo digest, FeatureSpec); at most `max_bytes` in all."""

    def __init__(self, root: str | Path, *, max_bytes: int | None = None):
        self.root = Path(root)
        self.max_bytes = budget_from_env() if max_bytes is None else int(max_bytes)
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes!r}.")
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _path(self, digest: str, spec: FeatureSpec) -> Path:
        name = hashlib.sha256(f"{digest}\n{spec.key()}".encode()).hexdigest()
        return self.root / name[:2] / f"{name}{SUFFIX}"

    def get(self, digest: str, spec: FeatureSpec) -> np.ndarray | None:
        path = self._path(digest, spec)
        try:
            blob = path.read_bytes()
        except OSError:
            self._count(hit=False)
            return None
        array = _decode(blob)
        if array is None:  # truncated or corrupt: never trusted, recomputed by the caller
            path.unlink(missing_ok=True)
            self._count(hit=False)
            return None
        try:
            os.utime(path)  # recently used: last to be evicted
        except OSError:
            pass
        self._count(hit=True)
        return array

    def has(self, digest: str, spec: FeatureSpec) -> bool:
        """Whether an entry exists (not checked: for estimates only)."""
        return self._path(digest, spec).is_file()

    def put(self, digest: str, spec: FeatureSpec, array: np.ndarray) -> None:
        path = self._path(digest, spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            tmp.write_bytes(_encode(np.asarray(array)))
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    def _count(self, *, hit: bool) -> None:
        with self._lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1

    def entries(self) -> list[tuple[float, int, Path]]:
        """(modification time, bytes, path) of every entry."""
        found = []
        if not self.root.is_dir():
            return found
        for folder in self.root.iterdir():
            if not folder.is_dir():
                continue
            for item in os.scandir(folder):
                if item.name.endswith(SUFFIX):
                    try:
                        info = item.stat()
                    except OSError:
                        continue  # evicted by another process meanwhile
                    found.append((info.st_mtime, info.st_size, Path(item.path)))
        return found

    def size_bytes(self) -> int:
        return sum(size for _, size, _ in self.entries())

    def evict(self, *, max_bytes: int | None = None) -> int:
        """Delete the least recently used entries until the cache fits its budget; returns bytes freed."""
        budget = self.max_bytes if max_bytes is None else max_bytes
        entries = sorted(self.entries())
        total = sum(size for _, size, _ in entries)
        freed = 0
        for _, size, path in entries:
            if total - freed <= budget:
                break
            path.unlink(missing_ok=True)
            freed += size
        return freed


def _encode(array: np.ndarray) -> bytes:
    header = json.dumps({"dtype": array.dtype.str, "shape": list(array.shape)}).encode()
    payload = np.ascontiguousarray(array).tobytes()
    body = struct.pack("<I", len(header)) + header + struct.pack("<Q", len(payload)) + payload
    return MAGIC + body + hashlib.blake2b(body, digest_size=_DIGEST_BYTES).digest()


def _decode(blob: bytes) -> np.ndarray | None:
    if len(blob) < len(MAGIC) + 12 + _DIGEST_BYTES or not blob.startswith(MAGIC):
        return None
    body, digest = blob[len(MAGIC) : -_DIGEST_BYTES], blob[-_DIGEST_BYTES:]
    if hashlib.blake2b(body, digest_size=_DIGEST_BYTES).digest() != digest:
        return None
    try:
        (header_length,) = struct.unpack_from("<I", body, 0)
        header = json.loads(body[4 : 4 + header_length])
        (payload_length,) = struct.unpack_from("<Q", body, 4 + header_length)
        payload = body[12 + header_length :]
        if len(payload) != payload_length:
            return None
        return np.frombuffer(payload, dtype=np.dtype(header["dtype"])).reshape(header["shape"]).copy()
    except (ValueError, KeyError, TypeError, struct.error):
        return None
