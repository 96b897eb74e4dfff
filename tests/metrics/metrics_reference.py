"""Straightforward, obviously-correct reference implementations (Python loops) for the tests.

They follow REFERENCE.md literally and share no code with `trackpipe.metrics`:
* `reference_score`: section 2.2 (trackml-library `score_event`), one loop per track;
* `reference_tracking_metrics`: section 3.1 (gnn_tracking), one loop per cluster and per particle.
"""

from __future__ import annotations

from collections import Counter, defaultdict


def reference_majorities(truth_rows, assignment):
    """{track: (major_particle, major_nhits, nhits, major_weight)} for one event.

    truth_rows: list of (hit_id, particle_id, weight); assignment: {hit_id: track_id}.
    """
    tracks = defaultdict(list)
    for hit_id, pid, w in truth_rows:
        tracks[assignment[hit_id]].append((pid, w))
    out = {}
    for track, members in tracks.items():
        counts, weights = Counter(), Counter()
        for pid, w in members:
            counts[pid] += 1
            weights[pid] += w
        major, best = None, 0
        for pid in sorted(counts):  # increasing particle id; replace only on a strictly larger count
            if best < counts[pid]:
                major, best = pid, counts[pid]
        out[track] = (major, best, len(members), weights[major])
    return out


def reference_score(truth_rows, assignment):
    """TrackML score of one event. truth_rows: (hit_id, particle_id, weight); assignment: {hit: track}."""
    if len(assignment) != len(truth_rows) or set(assignment) != {h for h, _, _ in truth_rows}:
        raise ValueError("submission must hold every truth hit exactly once")
    particle_nhits = Counter(pid for _, pid, _ in truth_rows)
    total = sum(w for _, _, w in truth_rows)
    score = 0.0
    for major, major_nhits, nhits, major_weight in reference_majorities(truth_rows, assignment).values():
        if major_nhits / nhits > 0.5 and major_nhits / particle_nhits[major] > 0.5:
            score += major_weight / total
    return score


def reference_tracking_metrics(hit_rows, particle_info, assignment, *, pt_min=0.9, max_eta=4.0, min_cluster_size=3,
                               min_layers=3, duplicate_purity=0.5):
    """gnn_tracking rates of one event.

    hit_rows: (hit_id, particle_id, volume_id, layer_id); particle_info: {pid: (pt, eta)};
    assignment: {hit_id: track_id}. Duplicates: purity-matched clusters beyond the largest per particle.
    """
    particle_hits = Counter(pid for _, pid, _, _ in hit_rows)
    layers = defaultdict(set)
    for _, pid, vol, lay in hit_rows:
        layers[pid].add((vol, lay))

    def selected(pid):
        if pid == 0 or len(layers[pid]) < min_layers:
            return False
        pt, eta = particle_info[pid]
        return (pt_min is None or pt >= pt_min) and (max_eta is None or abs(eta) < max_eta)

    rows = [(h, pid, 1.0) for h, pid, _, _ in hit_rows]
    clusters = reference_majorities(rows, assignment)
    sel_particles = [pid for pid in particle_hits if selected(pid)]
    n_sel_clusters = n_lhc = n_dm_clusters = n_perfect_clusters = 0
    dm_particles, perfect_particles = set(), set()
    purity_matched = defaultdict(list)
    for track, (major, maj_hits, size, _) in sorted(clusters.items()):
        valid = track >= 0 and size >= min_cluster_size
        if not valid:
            continue
        purity = maj_hits / size
        pid_frac = maj_hits / particle_hits[major]
        dm = purity > 0.5 and pid_frac > 0.5
        perfect = maj_hits == particle_hits[major] and purity > 0.99
        if purity > duplicate_purity:
            purity_matched[major].append((maj_hits, track))
        if not selected(major):
            continue
        n_sel_clusters += 1
        n_lhc += purity > 0.75
        n_dm_clusters += dm
        n_perfect_clusters += perfect
        if dm:
            dm_particles.add(major)
        if perfect:
            perfect_particles.add(major)
    n_dup = sum(len(v) - 1 for pid, v in purity_matched.items() if selected(pid))

    def ratio(a, b):
        return a / b if b else float("nan")

    return {
        "dm_efficiency": ratio(len(dm_particles), len(sel_particles)),
        "perfect_efficiency": ratio(len(perfect_particles), len(sel_particles)),
        "lhc_efficiency": ratio(n_lhc, n_sel_clusters),
        "fake_rate": ratio(n_sel_clusters - n_dm_clusters, n_sel_clusters),
        "fake_rate_perfect": ratio(n_sel_clusters - n_perfect_clusters, n_sel_clusters),
        "duplicate_rate": ratio(n_dup, n_sel_clusters),
    }
