"""Model name -> (default config section, builder). Later families register their own entries.

A model's config section has four parts, each with documented defaults below:

    model: enccla                 # registry name
    architecture: {...}           # encoder size, attention backend (ARCHITECTURE)
    targets: {kind, bins}         # parameter set and bins per class parameter (TARGETS)
    training: {...}               # the training loop's settings (TRAINING)
    tracking: {...}               # how outputs become tracks (TRACKING)

`resolve_config(name, section)` merges a user section over the defaults and rejects unknown keys; the
resolved section is what the model directory's config.json records and what `build_model` reads.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..config import merge_section
from ..errors import ConfigError
from ..targets import Preprocessing
from ..train.augment import AUGMENT_DEFAULTS
from .backbone import Encoder
from .heads import ClassificationHead, EncoderModel, JointModel, RegressionHead

ARCHITECTURE = {
    "d_model": 64,
    "n_heads": 4,
    "d_ff": 128,
    "n_layers": 6,
    "dropout": 0.1,
    "norm_first": False,        # post-norm as in the papers' encoders
    "activation": "relu",
    "attention": "sdpa",        # a name from models.attention.BACKENDS
    "attention_options": {},    # e.g. {"compile": "auto", "block_size": 128} for flex
}
TARGETS = {
    "kind": "auto",             # auto | trackml | redvid-linear | redvid-helical | redvid-helical-direction
    "bins": None,               # {parameter: bins}; None = targets.DEFAULT_BINS[kind]
    "inputs": ["x", "y", "z"],  # per-hit input features: x, y, z and/or the derived r, phi, theta, eta
    "factor_loss": 0.0,         # classifiers: weight of the per-parameter marginal losses (heads.factor_marginal_loss)
}
TRAINING = {
    "epochs": 50,
    "batch_size": 16,           # events per batch, padded to the batch's largest event
    "bucket": True,             # group events of similar size into batches (less padding)
    "lr": 1e-3,
    "weight_decay": 0.01,
    "betas": [0.9, 0.999],
    "warmup_epochs": 1.0,       # linear warm-up from lr * warmup_start_factor
    "warmup_start_factor": 0.1,
    "schedule": "cosine",       # cosine (to min_lr over all epochs) | plateau | constant
    "min_lr": 1e-5,
    "plateau_factor": 0.5,
    "plateau_patience": 5,
    "grad_clip": 1.0,           # max gradient norm; 0 disables clipping
    "amp": "auto",              # auto (bf16 on CUDA, off on CPU) | bf16 | fp16 (CUDA) | off
    "early_stopping": 10,       # epochs without validation-loss improvement; 0 disables
    "augment": AUGMENT_DEFAULTS, # exact detector symmetries applied to training events (train.augment)
    "budget": "schedule",       # with max_minutes: schedule (the budget is the run's length, the LR schedule
                                # spans it) | stop (the budget interrupts an epoch-based run, resumably)
    "val_fraction": 0.1,        # held out of --data when no --val store is given
    "device": "auto",           # auto | cpu | cuda
}
TRACKING = {
    # HDBSCAN grid searched on the validation split after training (regression models only).
    "min_cluster_size": [3, 4, 5],
    "min_samples": [1, 2, 3],
    "selection_events": 50,     # validation events used to choose the parameters
    # Classifiers: call a hit noise only when P(noise) reaches this probability, else take its most probable
    # track class; null = plain argmax over all classes (the papers'). Chosen on validation like HDBSCAN's grid.
    "noise_probability": [None, 0.2, 0.35, 0.5, 0.8],
    # Classifiers: rounds of EM that adapt the class prior to each event before the argmax (0 = none, the
    # papers'): one event holds a few dozen of the thousands of classes (`tracking.assign.event_prior_em`).
    "prior_iterations": [0, 5, 20, 50],
}
# JM X:Y. The CPU default gives the classifier the depth (2 + 4 = EncCla's 6 layers in all): at 20 CPU
# minutes on TrackML 10-50, 2:4 scored 0.838 against 3:3's 0.784 (benchmarks/README.md, "JM layer
# split"); seed 002 also found deeper regressors helped little.
JOINT = {"reg_layers": 2, "cla_layers": 4, "n_latent": 4, "alpha": 1.0, "beta": 0.3}


@dataclass(frozen=True)
class ModelSpec:
    """A model family: its config defaults, its builder and its tracking hooks.

    Inference is either one forward pass per event followed by ``to_tracks``, or the family's own
    ``predict`` (then ``to_tracks`` is unused); ``select`` is the post-training choice of tracking
    parameters. The encoder families' hooks live in `trackpipe.tracking.families`.
    """

    name: str
    defaults: dict
    build: Callable[[dict, Preprocessing], nn.Module]
    # Families whose inference is not one forward pass + per-hit assignment (EncDec's autoregressive
    # decoding, the U-Net's voxels) bring their own: predict(model, cfg, prep, event, device) -> (track id
    # per hit, device seconds, host CPU seconds) of one event; see `trackpipe.predict`.
    predict: Callable | None = None
    # select(model, cfg, prep, val_data, device, amp) -> dict | None: after training, with the best weights
    # loaded and the model in eval mode, choose tracking parameters on the validation EventArrays (the
    # first `tracking.selection_events` events); the dict becomes `prep.clustering` in preprocessing.json.
    # None: nothing to choose (`train.loop._finalise`).
    select: Callable | None = None
    # to_tracks(outputs, batch, prep) -> track id per hit (int64): one event's network outputs (batch of
    # one) and its input batch -> disjoint tracks, with the parameters `select` stored in prep.clustering.
    to_tracks: Callable | None = None


MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec, *, replace: bool = False) -> None:
    if spec.name in MODELS and not replace:
        raise ConfigError(f"model {spec.name!r} is already registered")
    MODELS[spec.name] = spec


def resolve_config(name: str, section: dict | None = None) -> dict:
    """The complete config section of model `name`: defaults overlaid with `section`."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    section = dict(section or {})
    if section.get("model", name) != name:
        raise ConfigError(f"config section is for model {section['model']!r}, not {name!r}")
    section.pop("model", None)
    return {"model": name, **merge_section(MODELS[name].defaults, section, name)}


def recorded_config(section: dict) -> dict:
    """A model directory's config.json (a resolved section plus ``seed``) with the keys added to the
    registry since it was written filled in from the defaults, so that models trained by an earlier
    version still load and predict (every added key's default keeps the earlier behaviour at inference)."""
    section = dict(section)
    seed = section.pop("seed", None)
    out = resolve_config(section.get("model", ""), section)
    if seed is not None:
        out["seed"] = seed
    return out


def build_model(config: dict, prep: Preprocessing) -> nn.Module:
    """The untrained model of a resolved config section, sized by the fitted preprocessing."""
    return MODELS[config["model"]].build(config, prep)


def _encoder(arch: dict, input_dim: int, n_layers: int | None = None) -> Encoder:
    a = dict(arch)
    if n_layers is not None:
        a["n_layers"] = n_layers
    return Encoder(input_dim, **a)


def _classification_head(config, prep) -> ClassificationHead:
    return ClassificationHead(config["architecture"]["d_model"], prep.n_classes, bins=prep.bins_per_param,
                              factor_loss=config["targets"]["factor_loss"])


def _build_classifier(config, prep):
    arch = config["architecture"]
    return EncoderModel(_encoder(arch, len(prep.input_features)), _classification_head(config, prep))


def _build_regressor(config, prep):
    arch = config["architecture"]
    return EncoderModel(_encoder(arch, len(prep.input_features)), RegressionHead(arch["d_model"], len(prep.regression)))


def _build_joint(config, prep):
    arch, jm = config["architecture"], config["joint"]
    n_in, n_reg = len(prep.input_features), len(prep.regression)
    regressor = EncoderModel(_encoder(arch, n_in, jm["reg_layers"]),
                             RegressionHead(arch["d_model"], n_reg, jm["n_latent"]))
    classifier = EncoderModel(_encoder(arch, n_in + n_reg + jm["n_latent"], jm["cla_layers"]),
                              _classification_head(config, prep))
    return JointModel(regressor, classifier, alpha=jm["alpha"], beta=jm["beta"])


def _defaults(**overrides) -> dict:
    d = {"architecture": ARCHITECTURE, "targets": TARGETS, "training": TRAINING, "tracking": TRACKING}
    d = copy.deepcopy(d)
    for part, values in overrides.items():
        d[part] = {**d.get(part, {}), **values}
    return d


def _family_hook(name: str) -> Callable:
    """`trackpipe.tracking.families.<name>`, imported at its first call: that module pulls in the training
    data helpers and the trackers, which importing the registry must not load (nor import in a circle)."""

    def hook(*args, **kwargs):
        from ..tracking import families

        return getattr(families, name)(*args, **kwargs)

    hook.__name__ = hook.__qualname__ = name
    return hook


CLASSIFICATION_HOOKS = {"select": _family_hook("classification_select"),
                        "to_tracks": _family_hook("classification_tracks")}
REGRESSION_HOOKS = {"select": _family_hook("regression_select"), "to_tracks": _family_hook("regression_tracks")}
EMBEDDING_HOOKS = {"select": _family_hook("embedding_select"), "to_tracks": _family_hook("embedding_tracks")}

# The classifiers' CPU recipe (benchmarks/README.md, issue 16): batches of 4 events (four times the optimiser
# steps of 16 in the same minutes) and a fresh rotation / z-mirror of every training event in every batch,
# which keeps a 1 000-event split from being memorised (TrackML 10-50, 20 one-thread minutes: 0.548 -> 0.624).
CLASSIFIER_TRAINING = {"batch_size": 4, "augment": {"phi_rotation": True, "z_reflection": True, "copies": 0}}

register_model(ModelSpec("enccla", _defaults(training=CLASSIFIER_TRAINING), _build_classifier, **CLASSIFICATION_HOOKS))
register_model(ModelSpec("encreg", _defaults(), _build_regressor, **REGRESSION_HOOKS))
# EncReg-FA: the flash kernel with bf16 autocast (on CUDA; sdpa in fp32 on CPU, with a notice).
register_model(ModelSpec("encreg-fa", _defaults(architecture={"attention": "flash"}, training={"amp": "auto"}),
                         _build_regressor, **REGRESSION_HOOKS))
register_model(ModelSpec("jm", _defaults(joint=JOINT, training=CLASSIFIER_TRAINING), _build_joint, **CLASSIFICATION_HOOKS))


def _register_later_families() -> None:
    """EncDec and the sparse U-Net (their modules import lazily: spconv is an optional extra)."""
    from . import encdec, unet

    for family in (encdec, unet):
        defaults = {"architecture": family.ARCHITECTURE, "targets": {**TARGETS, **family.TARGETS},
                    "training": {**TRAINING, **family.TRAINING}, "tracking": family.TRACKING}
        register_model(ModelSpec(family.NAME, copy.deepcopy(defaults), family.build, predict=family.predict_event,
                                 select=getattr(family, "select", None)))


_register_later_families()


def _build_contrastive(config, prep):
    from .contrastive import ContrastiveModel

    arch, con = config["architecture"], config["contrastive"]
    n_in = len(prep.input_features) * (2 if con["local_features"] else 1)
    pair_bias, coordinate_inputs, edge_loss = None, None, 0.0
    if con.get("pair_bias"):
        from ..locality.pair_bias import PAIR_BIAS_DEFAULTS, GeometricPairBias

        options = {**PAIR_BIAS_DEFAULTS, **con["pair_bias"]}  # keys checked by resolve_config
        missing = [c for c in ("x", "y", "z") if c not in prep.input_features]
        if missing:
            raise ConfigError(f"contrastive.pair_bias needs the inputs x, y, z; targets.inputs lacks {missing}")
        columns = [prep.input_features.index(c) for c in ("x", "y", "z")]
        coordinate_inputs = (columns, [prep.input_mean[c] for c in columns], [prep.input_std[c] for c in columns])
        edge_loss = float(options["edge_loss"])
        if not edge_loss >= 0:
            raise ConfigError(f"contrastive.pair_bias.edge_loss must be >= 0 (0 = off), got {options['edge_loss']!r}")
        pair_bias = GeometricPairBias(arch["n_layers"], arch["n_heads"], hidden=int(options["hidden"]),
                                      head_dim=arch["d_model"] // arch["n_heads"], values=bool(options["values"]),
                                      edge_logits=edge_loss > 0)
    return ContrastiveModel(_encoder(arch, n_in), arch["d_model"], embedding_dim=con["embedding_dim"],
                            temperature=con["temperature"], pt_min=con["pt_min"], local_features=con["local_features"],
                            pair_bias=pair_bias, coordinate_inputs=coordinate_inputs,
                            edge_loss=edge_loss)


def _contrastive_defaults() -> dict:
    """Small CPU default (4 layers, d 64) with the geometric pair bias (`locality.pair_bias`), attention
    inside the locality clusters through cluster-blocked SDPA on every device (compiled flex takes no pair
    bias); config/paper.yaml sets the paper's 12 layers, 4 heads, d 192, ff 384, no pair bias, flex on CUDA."""
    from ..locality.pair_bias import PAIR_BIAS_DEFAULTS
    from ..tracking.embedding import SELECTION, TRACK_FORMATION
    from ..train.locality import LOCALITY_DEFAULTS
    from .contrastive import CONTRASTIVE

    d = _defaults(architecture={"n_layers": 4, "dropout": 0.0, "attention": "cluster-blocked",
                                "attention_options": {"on_cuda": "blocked",
                                                      "locality": {**LOCALITY_DEFAULTS, "train_chunk_hits": 1024}}},
                  # CPU recipe: a handful of full events, each with 7 rotated / mirrored copies (exact symmetries
                  # of the detector, train.augment); config/paper.yaml switches the copies off for its 8 658 events
                  training={"batch_size": 1, "epochs": 20, "early_stopping": 0, "warmup_epochs": 0.0,
                            "augment": {"phi_rotation": True, "z_reflection": True, "copies": 7}},
                  targets={"inputs": ["x", "y", "z", "r", "phi"]})
    d["tracking"] = {**TRACK_FORMATION, **SELECTION}
    # The pair bias: DM efficiency 0.21 -> 0.29-0.30 after 10 one-thread minutes (benchmarks/README.md)
    d["contrastive"] = {**CONTRASTIVE, "pair_bias": dict(PAIR_BIAS_DEFAULTS)}
    return d


register_model(ModelSpec("contrastive", _contrastive_defaults(), _build_contrastive, **EMBEDDING_HOOKS))
