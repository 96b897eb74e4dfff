"""EncDec ([P1] §3.3.1): an encoder over all hits of an event and an autoregressive decoder that
predicts the next hit of a track from the hits of the track so far.

* Encoder: an induced set-attention block (ISAB: learned inducing points attend to the hits, the hits
  attend back to that summary, so the result is permutation equivariant and O(N m)), then the shared
  `backbone.Encoder` layers. No positional encoding: the hits are a set.
* Decoder: hit embedding + learned positional encoding, causal self-attention over the track so far,
  cross-attention to the encoded event; a head gives the step (dx, dy, dz) to the next hit (in the
  standardised input frame) and a stop logit. The decoder layers compute exactly what
  `nn.TransformerDecoderLayer(norm_first=True)` computes, but the cross-attention takes the encoded
  events once (B, N, d) with the event of each track, instead of one copy of its event per track
  (T, N, d): keys and values are projected once per event and the queries of all tracks of an event
  attend together, so memory and work no longer grow as tracks x hits x d_model.
* Training (teacher forcing): every true track of the batch, hits ordered by distance from the origin,
  truncated to `max_track_length`. Positions from the last seed hit onwards are supervised: the next
  hit's position (relative squared error |p - t|^2 / |t|^2 in mm, the quantity the 5 % margin metric
  thresholds) and the stop flag (1 at the track's last hit).

Next-hit accuracy (5 % margin): a prediction p of the true next hit t (both in mm, global frame) is
correct iff |p - t| <= 0.05 |t| (Euclidean norms; |t| is the hit's distance from the origin).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..tracking.encdec_decode import TRACKING, reconstruct_event
from ..tracking.teacher import SEED_HITS, teacher_tracks
from .backbone import Encoder


class InducedSetAttention(nn.Module):
    """ISAB (Set Transformer): H = MAB(I, X), out = MAB(X, H), with m learned inducing points I.

    The summary H does not depend on the order of the hits, so the block is permutation equivariant;
    padded hits are masked out as keys and never influence real hits.
    """

    def __init__(self, d_model: int, n_heads: int, n_inducing: int, d_ff: int, dropout: float):
        super().__init__()
        self.inducing = nn.Parameter(torch.randn(1, n_inducing, d_model) / d_model ** 0.5)
        self.summarise = _AttentionBlock(d_model, n_heads, d_ff, dropout)
        self.broadcast = _AttentionBlock(d_model, n_heads, d_ff, dropout)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        h = self.summarise(self.inducing.expand(x.shape[0], -1, -1), x, ~valid)
        return self.broadcast(x, h, None)


class _AttentionBlock(nn.Module):
    """MAB(Q, K) = LN(A + FF(A)), A = LN(Q + MultiHead(Q, K, K)) (post-norm as in the Set Transformer)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=0.0, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model))
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, q, kv, key_padding):
        a = self.norm1(q + self.drop(self.attn(q, kv, kv, key_padding_mask=key_padding, need_weights=False)[0]))
        return self.norm2(a + self.drop(self.ff(a)))


class TrackDecoderLayer(nn.Module):
    """Pre-norm decoder layer: x += SA(LN1 x) (causal, per track); x += CA(LN2 x, event); x += FF(LN3 x).

    The same function and parameter names as `nn.TransformerDecoderLayer(d, h, d_ff, dropout,
    batch_first=True, norm_first=True)` (ReLU), so its weights load either way; the difference is the
    cross-attention's input: `memory` (B, N, d) holds each encoded event once and `track_event` (T,)
    says which event each track's queries attend to (see `grouped_cross_attention`).
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout, self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(dropout) for _ in range(4))

    def forward(self, x, memory, memory_valid, track_event, causal):
        h = self.norm1(x)
        x = x + self.dropout1(self.self_attn(h, h, h, attn_mask=causal, is_causal=True, need_weights=False)[0])
        x = x + self.dropout2(grouped_cross_attention(self.multihead_attn, self.norm2(x), memory, memory_valid,
                                                      track_event))
        return x + self.dropout3(self.linear2(self.dropout(F.relu(self.linear1(self.norm3(x))))))


def grouped_cross_attention(mha: nn.MultiheadAttention, q_in: torch.Tensor, memory: torch.Tensor,
                            memory_valid: torch.Tensor | None, track_event: torch.Tensor) -> torch.Tensor:
    """`mha(q_in[t], memory[track_event[t]], memory[track_event[t]])` for every track t, without the copies.

    q_in (T, L, d) queries of T tracks; memory (B, N, d); memory_valid (B, N) or None (all valid);
    track_event (T,) event index of each track. Keys and values are projected once per event; the
    queries of the tracks of event b are laid side by side into one sequence of (max tracks per event)
    x L queries, which attends to event b's hits in one SDPA call (queries do not interact in
    cross-attention, so this is the same result). Returns (T, L, d).
    """
    T, L, d = q_in.shape
    B, N, _ = memory.shape
    H = mha.num_heads
    w, b = mha.in_proj_weight, mha.in_proj_bias
    q = F.linear(q_in, w[:d], b[:d])
    k = F.linear(memory, w[d:2 * d], b[d:2 * d])
    v = F.linear(memory, w[2 * d:], b[2 * d:])
    # Slot of each track among the tracks of its event (tracks may come in any order).
    order = torch.argsort(track_event, stable=True)
    counts = torch.bincount(track_event, minlength=B)
    first = torch.cumsum(counts, 0) - counts
    slot = torch.empty_like(track_event)
    slot[order] = torch.arange(T, device=track_event.device) - first[track_event[order]]
    S = int(counts.max())  # counts has B >= 1 entries, all 0 when there are no tracks
    grouped = q.new_zeros(B, S, L, d)
    grouped[track_event, slot] = q

    def heads(t):  # (B, n, d) -> (B, H, n, d / H)
        return t.reshape(B, -1, H, d // H).transpose(1, 2)
    mask = None if memory_valid is None else memory_valid[:, None, None, :]
    out = F.scaled_dot_product_attention(heads(grouped.reshape(B, S * L, d)), heads(k), heads(v), attn_mask=mask,
                                         dropout_p=mha.dropout if mha.training else 0.0)
    out = out.transpose(1, 2).reshape(B, S, L, d)[track_event, slot]
    return mha.out_proj(out)


class TrackDecoder(nn.Module):
    """A stack of `TrackDecoderLayer`s and a final LayerNorm (the layout of `nn.TransformerDecoder`)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, n_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(TrackDecoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x, memory, memory_valid, track_event):
        causal = nn.Transformer.generate_square_subsequent_mask(x.shape[1], device=x.device, dtype=x.dtype)
        for layer in self.layers:
            x = layer(x, memory, memory_valid, track_event, causal)
        return self.norm(x)


class EncDec(nn.Module):
    task = "encdec"

    def __init__(self, *, input_mean, input_std, d_model: int = 64, n_heads: int = 4, d_ff: int = 128,
                 n_inducing: int = 32, n_layers: int = 1, n_decoder_layers: int = 2, dropout: float = 0.0,
                 max_track_length: int = 30, stop_weight: float = 0.2, margin: float = 0.05,
                 attention: str = "sdpa", attention_options: dict | None = None):
        super().__init__()
        if max_track_length <= SEED_HITS:
            raise ConfigError(f"max_track_length must exceed the {SEED_HITS} seed hits, not {max_track_length}")
        self.register_buffer("input_mean", torch.as_tensor(input_mean, dtype=torch.float32))
        self.register_buffer("input_std", torch.as_tensor(input_std, dtype=torch.float32))
        self.max_track_length, self.stop_weight, self.margin = max_track_length, stop_weight, margin
        self.embed = nn.Linear(3, d_model)
        self.isab = InducedSetAttention(d_model, n_heads, n_inducing, d_ff, dropout)
        # The remaining encoder layers are the shared backbone (its input layer maps d_model -> d_model).
        self.encoder = (Encoder(d_model, d_model=d_model, n_heads=n_heads, d_ff=d_ff, n_layers=n_layers,
                                dropout=dropout, attention=attention, attention_options=attention_options)
                        if n_layers > 0 else None)
        self.track_embed = nn.Linear(3, d_model)
        self.position = nn.Embedding(max_track_length, d_model)
        self.decoder = TrackDecoder(d_model, n_heads, d_ff, dropout, n_decoder_layers)
        self.out = nn.Linear(d_model, 4)

    # -- the two halves, also used by the batched decoding ------------------------------------------
    def encode(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        from .attention import AttentionMask

        h = self.isab(self.embed(x), valid)
        if self.encoder is not None:
            h = self.encoder(h, AttentionMask(valid))
        return h

    def decode(self, seq_x: torch.Tensor, memory: torch.Tensor, memory_valid: torch.Tensor | None = None,
               track_event: torch.Tensor | None = None):
        """Next hit (T, L, 3) and stop logit (T, L) of T tracks.

        seq_x (T, L, 3) standardised hits of the tracks so far; memory (B, N, d) the encoded events,
        memory_valid (B, N) their real hits (None: all); track_event (T,) each track's event (None: all
        tracks belong to the one event of memory).
        """
        T, L, _ = seq_x.shape
        if track_event is None:
            if memory.shape[0] != 1:
                raise ValueError(f"track_event is needed with {memory.shape[0]} events in memory")
            track_event = torch.zeros(T, dtype=torch.long, device=seq_x.device)
        h = self.track_embed(seq_x) + self.position(torch.arange(L, device=seq_x.device))
        h = self.decoder(h, memory, memory_valid, track_event)
        o = self.out(h)
        return seq_x + o[..., :3], o[..., 3]

    def to_mm(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.input_std + self.input_mean

    # -- training ----------------------------------------------------------------------------------
    def forward(self, batch: dict) -> dict:
        x, valid = batch["x"], batch["valid"]
        B, N, _ = x.shape
        mm = self.to_mm(x.detach()).cpu().numpy()
        flat_valid = valid.reshape(-1).cpu().numpy()
        pid = np.where(flat_valid, batch["particle_id"].reshape(-1).cpu().numpy(), 0)
        ev, seq, lengths = teacher_tracks(np.repeat(np.arange(B), N), pid, np.linalg.norm(mm.reshape(-1, 3), axis=1),
                                          self.max_track_length)
        seq_t = torch.as_tensor(seq, device=x.device)
        seq_valid = seq_t >= 0
        seq_x = x.reshape(B * N, 3)[seq_t.clamp(min=0)] * seq_valid[..., None]
        ev_t = torch.as_tensor(ev, device=x.device)
        memory = self.encode(x, valid)
        nxt, stop = self.decode(seq_x, memory, valid, ev_t)
        return {"next": nxt, "stop_logit": stop, "seq_x": seq_x,
                "lengths": torch.as_tensor(lengths, device=x.device)}

    def loss(self, out: dict, batch: dict):
        lengths = out["lengths"]
        T, L = out["stop_logit"].shape
        pos = torch.arange(L, device=lengths.device)[None].expand(T, L)
        supervised = (pos >= SEED_HITS - 1) & (pos < lengths[:, None])  # stop flag known
        has_next = supervised & (pos < lengths[:, None] - 1)            # next hit known
        pred = self.to_mm(out["next"][:, :-1][has_next[:, :-1]].float())
        true = self.to_mm(out["seq_x"][:, 1:][has_next[:, :-1]].float())
        dist2 = ((pred - true) ** 2).sum(-1)
        norm2 = (true ** 2).sum(-1).clamp(min=1.0)
        reg = (dist2 / norm2).mean() if len(dist2) else dist2.sum()
        stop_target = (pos == lengths[:, None] - 1).float()
        stop = F.binary_cross_entropy_with_logits(out["stop_logit"][supervised].float(), stop_target[supervised])
        correct = (dist2 <= self.margin ** 2 * norm2).sum()
        stop_ok = ((out["stop_logit"][supervised] > 0).float() == stop_target[supervised]).sum()
        loss = reg + self.stop_weight * stop
        return loss, {"next_hit__num": float(correct), "next_hit__den": float(len(dist2)),
                      "stop__num": float(stop_ok), "stop__den": float(supervised.sum())}


NAME = "encdec"
ARCHITECTURE = {
    "d_model": 64,
    "n_heads": 4,
    "d_ff": 128,
    "n_inducing": 32,           # learned inducing points of the first (set-attention) encoder block
    "n_layers": 1,              # backbone encoder layers after the set-attention block
    "n_decoder_layers": 2,
    "dropout": 0.0,
    "max_track_length": 30,
    "stop_weight": 0.2,         # weight of the stop-flag cross-entropy in the loss
    "margin": 0.05,             # next-hit accuracy margin (fraction of the hit's distance from the origin)
    "attention": "sdpa",        # backbone layers' attention backend
    "attention_options": {},
}
TARGETS = {}
TRAINING = {"epochs": 40, "batch_size": 8, "lr": 1e-3, "weight_decay": 0.0, "early_stopping": 8}


# TRACKING (the decoder's defaults: seeds, snapping, stopping) is defined beside the decoding, in
# tracking.encdec_decode.


def predict_event(model, cfg: dict, prep, event, device) -> tuple[np.ndarray, float, float]:
    """(track id per hit, model seconds, host CPU seconds) of one event: seeds + batched decoding."""
    tracks, _, info = reconstruct_event(model, event.hits, cfg["tracking"], device=device)
    return tracks, info["device_s"], info["host_cpu_s"]


def build(config: dict, prep) -> EncDec:
    if list(prep.input_features) != ["x", "y", "z"]:
        raise ConfigError("encdec needs targets.inputs [x, y, z] (it predicts Cartesian hit positions)")
    a = config["architecture"]
    return EncDec(input_mean=prep.input_mean, input_std=prep.input_std, d_model=a["d_model"], n_heads=a["n_heads"],
                  d_ff=a["d_ff"], n_inducing=a["n_inducing"], n_layers=a["n_layers"],
                  n_decoder_layers=a["n_decoder_layers"], dropout=a["dropout"],
                  max_track_length=a["max_track_length"], stop_weight=a["stop_weight"], margin=a["margin"],
                  attention=a["attention"], attention_options=a["attention_options"])
