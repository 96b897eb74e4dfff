"""Projection geometry: straight lines from the origin, region choice, vertex-z refinement."""

import numpy as np
import pandas as pd
import pytest

from trackpipe.errors import DataError
from trackpipe.locality.projection import BARREL, ENDCAP_NEG, ENDCAP_POS, project_to_surfaces, refine_vertex_z

R, Z = 91.0, 920.0


def _line(direction, radii):
    d = np.asarray(direction, float)
    d = d / np.hypot(d[0], d[1])  # unit transverse length
    return pd.DataFrame({"x": d[0] * radii, "y": d[1] * radii, "z": d[2] * radii})


def test_barrel_line_from_origin_projects_to_one_point_on_the_cylinder():
    hits = _line([np.cos(2.0), np.sin(2.0), 1.5], np.array([32.0, 72.0, 116.0, 172.0]))
    p = project_to_surfaces(hits)
    assert (p.region == BARREL).all()
    np.testing.assert_allclose(p.u, R * 2.0, rtol=1e-12)
    np.testing.assert_allclose(p.v, R * 1.5, rtol=1e-12)  # z where the line crosses r = R


def test_endcap_line_from_origin_projects_to_one_point_on_the_plane():
    phi, cot = -2.5, -20.0  # steep, backward: beyond the cylinder's reach (|z|/r > Z/R)
    hits = _line([np.cos(phi), np.sin(phi), cot], np.array([30.0, 45.0, 75.0]))
    p = project_to_surfaces(hits)
    assert (p.region == ENDCAP_NEG).all()
    r_plane = Z / abs(cot)
    np.testing.assert_allclose(p.u, r_plane * np.cos(phi), rtol=1e-12)
    np.testing.assert_allclose(p.v, r_plane * np.sin(phi), rtol=1e-12)


def test_region_by_surface_and_by_volume():
    hits = pd.DataFrame({"x": [50.0, 50.0, 50.0], "y": [0.0, 0.0, 0.0], "z": [100.0, 600.0, -600.0],
                         "volume_id": [8, 9, 7]})
    # by surface: |z|·R/r = 182 and 1092 -> barrel, endcap +z, endcap -z
    np.testing.assert_array_equal(project_to_surfaces(hits).region, [BARREL, ENDCAP_POS, ENDCAP_NEG])
    hits.loc[1, "z"] = 400.0  # |z|·R/r = 728 < 920: the surface rule says barrel, the volume rule endcap
    assert project_to_surfaces(hits).region[1] == BARREL
    assert project_to_surfaces(hits, {"region_by": "volume"}).region[1] == ENDCAP_POS


def test_bad_input_raises_dataerror():
    with pytest.raises(DataError, match="'z'"):
        project_to_surfaces(pd.DataFrame({"x": [1.0], "y": [1.0]}))
    with pytest.raises(DataError, match="beam axis"):
        project_to_surfaces(pd.DataFrame({"x": [0.0], "y": [0.0], "z": [5.0]}))


def test_vertex_z_refinement_finds_each_clusters_vertex_and_aligns_it():
    # one cluster per track, each track from its own vertex on the candidate grid (step 10 mm)
    vertices = [60.0, -30.0, 0.0, 110.0, -140.0]
    rng = np.random.default_rng(1)
    parts = []
    for c, z0 in enumerate(vertices):
        phi, cot = rng.uniform(-np.pi, np.pi), rng.uniform(12.0, 14.0) * (1 if c % 2 else -1)
        radii = np.array([40.0, 60.0, 80.0, 100.0])
        parts.append(pd.DataFrame({"x": radii * np.cos(phi), "y": radii * np.sin(phi), "z": z0 + cot * radii,
                                   "cluster": c}))
    hits = pd.concat(parts, ignore_index=True)
    p = project_to_surfaces(hits)
    assert (p.region != BARREL).all()
    refined, z0_hit = refine_vertex_z(hits, p, np.arange(len(hits)), hits.cluster.to_numpy(),
                                      {"vertex_z_min": -150, "vertex_z_max": 150, "vertex_z_candidates": 31})
    np.testing.assert_allclose(z0_hit, np.repeat(vertices, 4), atol=1e-9)
    for c in range(len(vertices)):
        sel = (hits.cluster == c).to_numpy()
        assert np.ptp(refined.u[sel]) < 1e-6 and np.ptp(refined.v[sel]) < 1e-6  # collapsed to one point
        if vertices[c] != 0:
            assert np.ptp(p.u[sel]) + np.ptp(p.v[sel]) > 0.5  # the origin projection spread them


def test_barrel_is_refined_only_when_asked():
    hits = pd.DataFrame({"x": [40.0, 80.0, 120.0], "y": 0.0, "z": [50.0 + 0.5 * r for r in (40.0, 80.0, 120.0)]})
    p = project_to_surfaces(hits)
    assert (p.region == BARREL).all()
    idx, cl = np.arange(3), np.zeros(3, np.int64)
    _, z0 = refine_vertex_z(hits, p, idx, cl)  # default: endcap only
    assert (z0 == 0).all()
    refined, z0 = refine_vertex_z(hits, p, idx, cl, {"refine_regions": ["barrel"]})
    np.testing.assert_allclose(z0, 50.0)
    assert np.ptp(refined.v) < 1e-9 and np.ptp(p.v) > 10
