"""Sparse 3D U-Net ([P1] §3.2, §3.3.4) on spconv: per-voxel classification into quantile bins of each
track parameter; the hits of a voxel take its classes, and tracks are hits sharing the predicted class
combination (no clustering).

Batch layout (the training loop's `collate` data mode, `UNet.collate`): the hits of each event in mm,
plus during training `interpolate_points` cubic-interpolated points between consecutive hits of every
track, voxelised at `voxel_scale` voxels per mm; per voxel the majority class of every parameter (the
parameter's quantile bins from `targets`, plus one noise class). Features per voxel: occupancy 1 and,
with `coordinate_features`, the standardised voxel centre.

Network: SubM stem, `len(channels) - 1` levels of (SparseConv3d stride 2 + SubM) down, the mirror
levels of SparseInverseConv3d up with the skip features concatenated, BatchNorm + activation after
every convolution, one linear head per parameter.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .attention import AttentionMask
from .spconv_compat import import_spconv

NAME = "unet"
ARCHITECTURE = {
    "channels": [16, 32, 64],       # per level; the paper's largest: [32, 64, 128, 128]
    "activation": "tanh",           # tanh (paper) | relu
    "voxel_scale": 0.1,             # voxels per mm (0.1 = 10 mm voxels)
    # Extra points between consecutive hits, training only. The paper's 10 (config/paper.yaml) make training
    # tracks continuous at 10 mm voxels while test tracks stay sparse: REDVID linear, 15 CPU minutes,
    # FitAccuracy 0.03 with them against 0.50 without (benchmarks/README.md), hence 0 by default.
    "interpolate_points": 0,
    "coordinate_features": True,    # voxel centre as input features besides occupancy
}
TARGETS = {}
TRAINING = {"epochs": 40, "batch_size": 8, "lr": 1e-3, "early_stopping": 8}
# Rounds of event-prior EM over the class combinations before the argmax (0 = per-parameter argmax, the
# paper's), chosen on validation (`select`).
TRACKING = {"prior_iterations": [0, 5, 20], "selection_events": 50}
COMBO_TOP = 3  # most probable bins per parameter whose combinations are the EM's candidates
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


class UNet(nn.Module):
    task = "voxel"

    def __init__(self, *, bins_per_param, input_mean, input_std, channels=(16, 32, 64), activation="tanh",
                 voxel_scale=0.1, interpolate_points=10, coordinate_features=True):
        super().__init__()
        if activation not in ACTIVATIONS or len(channels) < 2:
            raise ConfigError(f"unet: activation in {sorted(ACTIVATIONS)} and >= 2 channel levels required")
        sp = import_spconv()
        self.bins = [int(b) for b in bins_per_param]
        self.register_buffer("input_mean", torch.as_tensor(input_mean, dtype=torch.float32))
        self.register_buffer("input_std", torch.as_tensor(input_std, dtype=torch.float32))
        self.voxel_scale, self.interpolate_points = float(voxel_scale), int(interpolate_points)
        self.coordinate_features = bool(coordinate_features)
        self.levels = len(channels)
        act = ACTIVATIONS[activation]

        # Convolutions without bias (BatchNorm follows): spconv's CPU inference path rejects a fused bias.
        def block(conv, c):
            return sp.SparseSequential(conv, nn.BatchNorm1d(c, eps=1e-4), act())

        c_in = 4 if coordinate_features else 1
        self.stem = block(sp.SubMConv3d(c_in, channels[0], 3, padding=1, bias=False, indice_key="subm0"), channels[0])
        self.down = nn.ModuleList(sp.SparseSequential(
            block(sp.SparseConv3d(channels[i - 1], channels[i], 3, stride=2, padding=1, bias=False, indice_key=f"down{i}"), channels[i]),
            block(sp.SubMConv3d(channels[i], channels[i], 3, padding=1, bias=False, indice_key=f"subm{i}"), channels[i]))
            for i in range(1, self.levels))
        self.up = nn.ModuleList(
            block(sp.SparseInverseConv3d(channels[i], channels[i - 1], 3, bias=False, indice_key=f"down{i}"), channels[i - 1])
            for i in range(1, self.levels))
        self.merge = nn.ModuleList(
            block(sp.SubMConv3d(2 * channels[i - 1], channels[i - 1], 3, padding=1, bias=False, indice_key=f"subm{i - 1}"),
                  channels[i - 1]) for i in range(1, self.levels))
        # One head per parameter: its bins plus a noise class (the last).
        self.heads = nn.ModuleList(nn.Linear(channels[0], b + 1) for b in self.bins)

    # -- data mode ---------------------------------------------------------------------------------
    def voxel_event(self, xyz_mm: np.ndarray, classes: np.ndarray | None, particle_id: np.ndarray | None,
                    train: bool):
        """(voxels (V, 3), voxel of each hit (N,), labels (V, P) or None) of one event."""
        from ..voxel import interpolate_tracks, voxel_labels, voxelise

        points, point_cls = xyz_mm, classes
        if train and self.interpolate_points > 0 and particle_id is not None:
            extra, owner = interpolate_tracks(xyz_mm, particle_id, self.interpolate_points)
            points = np.concatenate([xyz_mm, extra])
            point_cls = np.concatenate([classes, classes[owner]])
        voxels, inverse = voxelise(points, self.voxel_scale)
        labels = None if classes is None else voxel_labels(inverse, point_cls, len(voxels))
        return voxels, inverse[:len(xyz_mm)], labels

    def per_param_classes(self, cls: np.ndarray) -> np.ndarray:
        """Combined class (targets.Preprocessing) -> (N, P) per-parameter bins, noise -> bins[p]."""
        noise = cls >= int(np.prod(self.bins))
        idx = np.stack(np.unravel_index(np.where(noise, 0, cls), self.bins), axis=1)
        return np.where(noise[:, None], np.asarray(self.bins)[None], idx)

    def collate(self, data, indices, device=None, train: bool = False) -> dict:
        mean, std = self.input_mean.cpu().numpy(), self.input_std.cpu().numpy()
        rows, labels, hit_voxel, offset = [], [], [], 0
        for b, i in enumerate(indices):
            ev = data.event(int(i))
            xyz = ev["x"].astype(np.float64) * std + mean
            cls = self.per_param_classes(ev["cls"]) if "cls" in ev else None
            vox, inv, lab = self.voxel_event(xyz, cls, ev.get("particle_id"), train)
            rows.append(np.c_[np.full(len(vox), b), vox])
            hit_voxel.append(inv + offset)
            offset += len(vox)
            if lab is not None:
                labels.append(lab)
        return self.batch_from_voxels(np.concatenate(rows), len(indices),
                                      np.concatenate(labels) if labels else None, np.concatenate(hit_voxel), device)

    def batch_from_voxels(self, rows: np.ndarray, batch_size: int, labels, hit_voxel, device=None) -> dict:
        # Shift to non-negative indices by a multiple of 2^levels so every stride-2 level sees the same
        # parity pattern whatever the batch.
        step = 1 << self.levels
        lo = (rows[:, 1:].min(axis=0) // step) * step
        idx = rows.copy()
        idx[:, 1:] -= lo
        shape = ((idx[:, 1:].max(axis=0) // step + 2) * step).tolist()
        feats = [np.ones((len(rows), 1), np.float32)]
        if self.coordinate_features:
            centre = (rows[:, 1:] + 0.5) / self.voxel_scale
            feats.append(((centre - self.input_mean.cpu().numpy()) / self.input_std.cpu().numpy()).astype(np.float32))
        out = {"indices": torch.as_tensor(idx, dtype=torch.int32), "features": torch.as_tensor(np.hstack(feats)),
               "hit_voxel": torch.as_tensor(hit_voxel), "valid": torch.ones(len(rows), dtype=torch.bool)}
        if labels is not None:
            out["labels"] = torch.as_tensor(labels)
        out = {k: v.to(device) if device is not None else v for k, v in out.items()}
        out.update(spatial_shape=shape, batch_size=batch_size, mask=AttentionMask(out["valid"][None]))
        return out

    # -- network -----------------------------------------------------------------------------------
    def forward(self, batch: dict) -> dict:
        sp = import_spconv()
        x = sp.SparseConvTensor(batch["features"], batch["indices"], batch["spatial_shape"], batch["batch_size"])
        x = self.stem(x)
        skips = []
        for down in self.down:
            skips.append(x)
            x = down(x)
        for up, merge, skip in zip(reversed(self.up), reversed(self.merge), reversed(skips)):
            x = up(x)
            x = merge(x.replace_feature(torch.cat([x.features, skip.features], dim=1)))
        return {"logits": [head(x.features) for head in self.heads]}

    def loss(self, out: dict, batch: dict):
        labels = batch["labels"]
        losses = [F.cross_entropy(lg.float(), labels[:, j]) for j, lg in enumerate(out["logits"])]
        pred = torch.stack([lg.argmax(-1) for lg in out["logits"]], dim=1)
        correct = (pred == labels).all(dim=1).sum()
        return sum(losses), {"voxel_accuracy__num": float(correct), "voxel_accuracy__den": float(len(labels))}

    def track_ids(self, logits: list[torch.Tensor], hit_voxel: np.ndarray, prior_iterations: int = 0) -> np.ndarray:
        """Hits sharing a predicted class combination form a track; predicted noise (the first parameter's
        noise class) -> singletons. prior_iterations > 0: the combination is chosen by event-prior EM
        (`tracking.assign.prior_em_on_candidates`) among each hit's `COMBO_TOP` most probable bins per
        parameter, so that a hit torn between neighbouring bins joins the bins its track's other hits chose."""
        from ..tracking.assign import prior_em_on_candidates, singletons_for

        hit_voxel = np.asarray(hit_voxel)
        noise = (logits[0].argmax(-1).cpu().numpy() == self.bins[0])[hit_voxel]
        if int(prior_iterations) <= 0:
            pred = np.stack([lg.argmax(-1).cpu().numpy() for lg in logits], axis=1)[hit_voxel]
            combo = np.ravel_multi_index(tuple(np.minimum(pred, np.asarray(self.bins) - 1).T), self.bins)
            return singletons_for(noise, combo)
        ids, prob = self.combination_candidates(logits)
        combo = np.zeros(len(hit_voxel), np.int64)
        keep = ~noise
        if keep.any():
            combo[keep] = prior_em_on_candidates(ids[hit_voxel[keep]], prob[hit_voxel[keep]], int(prior_iterations))
        return singletons_for(noise, combo)

    def combination_candidates(self, logits: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        """Per voxel the class combinations (raveled like `per_param_classes`' inverse) of its `COMBO_TOP`
        most probable track bins of every parameter, and their probabilities (product of the parameters'
        probabilities with the noise class left out)."""
        ids = np.zeros((len(logits[0]), 1), np.int64)
        prob = np.ones((len(logits[0]), 1), np.float64)
        for lg, b in zip(logits, self.bins):
            p = torch.softmax(lg.float(), -1)[:, :b].cpu().numpy().astype(np.float64)
            m = min(COMBO_TOP, b)
            top = np.argpartition(-p, m - 1, axis=1)[:, :m]
            ids = (ids[:, :, None] * b + top[:, None, :]).reshape(len(ids), -1)
            prob = (prob[:, :, None] * np.take_along_axis(p, top, axis=1)[:, None, :]).reshape(len(prob), -1)
        return ids, prob


def select(model, cfg: dict, prep, val_data, device, amp) -> dict:
    """The rounds of event-prior EM (`tracking.prior_iterations`, 0 = argmax per parameter) with the best
    mean TrackML score (FitAccuracy on REDVID) over the first `tracking.selection_events` validation
    events; ties -> the earlier candidate."""
    from ..metrics.score import trackml_score_of_labels

    tracking = cfg["tracking"]
    events = []
    with torch.no_grad():
        for i in range(min(len(val_data), int(tracking["selection_events"]))):
            batch = model.collate(val_data, [i], device)
            logits = [lg.float().cpu() for lg in model(batch)["logits"]]
            ev = val_data.event(i)
            events.append((logits, batch["hit_voxel"].cpu().numpy(), ev["particle_id"], ev["weight"]))
    rows = []
    for it in tracking["prior_iterations"]:
        scores = [trackml_score_of_labels(pid, w, model.track_ids(lg, inv, int(it))) for lg, inv, pid, w in events]
        rows.append({"prior_iterations": int(it), "val_score": float(np.mean(scores))})
    best = max(rows, key=lambda r: r["val_score"])
    return {"prior_iterations": best["prior_iterations"], "val_score": best["val_score"], "grid": rows,
            "selection_events": len(events)}


def predict_event(model, cfg: dict, prep, event, device) -> tuple[np.ndarray, float, float]:
    import time

    c0 = time.process_time()
    xyz = event.hits[["x", "y", "z"]].to_numpy(np.float64)
    vox, inv, _ = model.voxel_event(xyz, None, None, train=False)
    batch = model.batch_from_voxels(np.c_[np.zeros(len(vox), np.int64), vox], 1, None, inv, device)
    host = time.process_time() - c0
    t0 = time.perf_counter()
    out = model(batch)
    device_s = time.perf_counter() - t0
    c2 = time.process_time()
    tracks = model.track_ids(out["logits"], inv, int(prep.clustering.get("prior_iterations", 0)))
    return tracks, device_s, host + time.process_time() - c2


def build(config: dict, prep) -> UNet:
    if list(prep.input_features) != ["x", "y", "z"]:
        raise ConfigError("unet needs targets.inputs [x, y, z] (it voxelises Cartesian positions)")
    a = config["architecture"]
    return UNet(bins_per_param=prep.bins_per_param, input_mean=prep.input_mean, input_std=prep.input_std,
                channels=a["channels"], activation=a["activation"], voxel_scale=a["voxel_scale"],
                interpolate_points=a["interpolate_points"], coordinate_features=a["coordinate_features"])
