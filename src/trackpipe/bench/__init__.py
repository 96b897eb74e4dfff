"""Performance study: how inference cost grows with event size, and how close the encoders get to the machine.

Modules: ``measure`` (repeat timing with warm-up, CUDA-event timing, peak memory), ``hardware`` (matmul
GFLOP/s of the model dtype, measured in the same run), ``flops`` (analytic FLOP count of an encoder
forward, dense or cluster-restricted attention), ``scaling`` (events of 10 ... 8 000 tracks and full
<mu> = 200 pixel events, one runner per model, per-size medians/p90 and fitted power laws), ``sweep``
(achieved fraction of the matmul rate vs d_model), ``table`` (the one bench table). CLI: ``trackpipe bench``.
"""
