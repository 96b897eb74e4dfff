"""Locality at HL-LHC scale: projection onto detector surfaces, clustering, cluster-restricted attention.

Modules: ``projection`` (hits -> barrel cylinder / endcap planes, vertex-z refinement), ``clustering`` (DBSCAN,
iterative window, density peaks, grid window behind ``cluster_points``), ``pipeline`` (``cluster_event``,
``event_blocks``), ``metrics`` (reconstructible ratio, full containment, oracle DM efficiency: the ceiling
the neighbourhoods put on the tracker, attention fraction, cluster DM efficiency), ``blocks`` (block tables
from the cluster-sorted order, batch tables, on-disk cache), ``attention`` (cluster-blocked SDPA and
FlexAttention paths), ``pair_bias`` (the learned attention bias from each hit pair's track geometry),
``flex`` (the one compiled FlexAttention call, lengths padded to buckets), ``tune`` (grid search on a
validation split, oracle DM at the attention budget).
"""
