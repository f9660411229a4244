"""Powder-diffraction physics checked against independent references.

Nothing here compares our output with a copy of our own output. The references are
textbook formulas written out in the tests (Bragg's law, the cubic d-spacing, the
Lorentz-polarization factor, the rock-salt structure factors), published NIST SRM 640
line positions, gemmi's space-group operations and form-factor evaluator, a
brute-force P1 summation over every hkl of a box, and pymatgen's XRDCalculator.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from pathlib import Path

import attrs
import gemmi
import numpy as np
import pytest

from xrdframe.diffraction import (
    WAVELENGTHS,
    bragg_two_theta,
    lorentz_polarization,
    mott_bethe_form_factor,
    powder_multiplicity,
    reflection_orbits,
    simulate_peaks,
    structure_factors,
)
from xrdframe.errors import XrdframeError
from xrdframe.structure import Structure, read_structure

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "structures"
EXAMPLE_CIFS = sorted(EXAMPLES.glob("*.cif"))
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPGLIB_CIFS = SHARED_DATA / "structures" / "spglib"
CU_KA1 = 1.5406


def need_shared_data() -> Path:
    if not SPGLIB_CIFS.is_dir():
        pytest.skip(f"../shared/data absent: {SPGLIB_CIFS} not found (real structures are not available)")
    return SPGLIB_CIFS


# --------------------------------------------------------------------------- independent helpers


def metric_tensor(cell: tuple[float, ...]) -> np.ndarray:
    """Direct-space metric tensor G_ij = a_i . a_j from (a, b, c, alpha, beta, gamma)."""
    a, b, c = cell[:3]
    ca, cb, cg = (math.cos(math.radians(x)) for x in cell[3:])
    return np.array([[a * a, a * b * cg, a * c * cb], [a * b * cg, b * b, b * c * ca], [a * c * cb, b * c * ca, c * c]])


def d_spacing(cell: tuple[float, ...], hkl: np.ndarray) -> np.ndarray:
    """1/d^2 = h G* h^T with G* the inverse metric tensor (any crystal system)."""
    g_star = np.linalg.inv(metric_tensor(cell))
    hkl = np.atleast_2d(np.asarray(hkl, dtype=np.float64))
    return 1.0 / np.sqrt(np.einsum("ni,ij,nj->n", hkl, g_star, hkl))


def bragg(d: float | np.ndarray, wavelength: float) -> np.ndarray:
    """2theta in degrees from lambda = 2 d sin(theta)."""
    return 2.0 * np.degrees(np.arcsin(wavelength / (2.0 * np.asarray(d, dtype=np.float64))))


def lp_formula(two_theta_deg: np.ndarray) -> np.ndarray:
    """Cullity eq. 4-19: (1 + cos^2 2theta) / (sin^2 theta cos theta)."""
    t = np.radians(np.asarray(two_theta_deg, dtype=np.float64)) / 2.0
    return (1.0 + np.cos(2.0 * t) ** 2) / (np.sin(t) ** 2 * np.cos(t))


def form_factor(element: str, stol2: np.ndarray) -> np.ndarray:
    """X-ray form factor from gemmi's own evaluator of the IT92 coefficients.

    gemmi evaluates it in single precision, so comparisons allow ~1e-6 relative differences.
    """
    it92 = gemmi.Element(element).it92
    return np.array([it92.calculate_sf(float(x)) for x in np.ravel(stol2)]).reshape(np.shape(stol2))


def brute_force_orbit(hkl: tuple[int, int, int], space_group: int) -> set[tuple[int, int, int]]:
    """Images of hkl under every rotation of the space group (gemmi's Op.apply_to_hkl) and under inversion."""
    orbit: set[tuple[int, int, int]] = set()
    for op in gemmi.find_spacegroup_by_number(space_group).operations().sym_ops:
        h = op.apply_to_hkl(list(hkl))
        orbit.add(tuple(h))
        orbit.add(tuple(-x for x in h))
    return orbit


def cluster(two_theta: np.ndarray, tol: float) -> list[list[int]]:
    """Indices of sorted positions grouped into chains whose neighbours are <= tol apart."""
    order = np.argsort(two_theta, kind="stable")
    groups: list[list[int]] = []
    for i in order:
        if groups and two_theta[i] - two_theta[groups[-1][-1]] <= tol:
            groups[-1].append(int(i))
        else:
            groups.append([int(i)])
    return groups


def merged_lines(two_theta: np.ndarray, intensity: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Lines closer than tol merged (intensities summed, mean position), rescaled so the strongest is 100."""
    groups = cluster(np.asarray(two_theta), tol)
    pos = np.array([np.mean(two_theta[g]) for g in groups])
    inten = np.array([np.sum(intensity[g]) for g in groups])
    return pos, 100.0 * inten / inten.max()


def reference_lines(structure: Structure, wavelength: float, two_theta_range: tuple[float, float]):
    """Brute-force powder lines: every hkl of a box, no symmetry at all (P1 summation over all atoms).

    Multiplicities and systematic absences are not used: equivalent reflections are each summed,
    absent ones come out with F = 0. Returns (d, relative intensity) of lines with distinct d.
    """
    lo, hi = two_theta_range
    d_min = wavelength / (2.0 * math.sin(math.radians(hi) / 2.0))
    g = metric_tensor(structure.cell)
    hmax = [int(math.floor(math.sqrt(g[i, i]) / d_min)) for i in range(3)]  # |h_i| <= |a_i| / d
    grid = np.array(list(itertools.product(*(range(-m, m + 1) for m in hmax))), dtype=np.int64)
    grid = grid[np.any(grid != 0, axis=1)]
    d = d_spacing(structure.cell, grid)
    keep = d >= d_min * (1 - 1e-12)
    grid, d = grid[keep], d[keep]
    tt = bragg(d, wavelength)
    keep = (tt >= lo) & (tt <= hi)
    grid, d, tt = grid[keep], d[keep], tt[keep]
    stol2 = 1.0 / (4.0 * d**2)
    f = np.zeros(len(grid), dtype=np.complex128)
    unique_s, inverse = np.unique(np.round(stol2, 12), return_inverse=True)
    for element in set(structure.elements):
        fe = form_factor(element, unique_s)[inverse]
        for j in np.flatnonzero(np.asarray(structure.elements) == element):
            amp = structure.occupancy[j] * fe * np.exp(-structure.b_iso[j] * stol2)
            f += amp * np.exp(2j * np.pi * (grid @ structure.fract[j]))
    intensity = np.abs(f) ** 2 * lp_formula(tt)
    return group_by_d(d, intensity)


def group_by_d(d: np.ndarray, intensity: np.ndarray, rel: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-d)
    d, intensity = d[order], intensity[order]
    out_d: list[float] = []
    out_i: list[float] = []
    for di, ii in zip(d, intensity, strict=True):
        if out_d and abs(out_d[-1] - di) <= rel * di:
            out_i[-1] += ii
        else:
            out_d.append(float(di))
            out_i.append(float(ii))
    out = np.array(out_i)
    return np.array(out_d), 100.0 * out / out.max()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def cif(name: str, symbol: str, number: int | None, cell: tuple[float, ...], atoms: list[tuple]) -> str:
    lines = [f"data_{name}", f"_symmetry_space_group_name_H-M '{symbol}'"]
    if number is not None:
        lines.append(f"_symmetry_Int_Tables_number {number}")
    keys = ["length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma"]
    for key, value in zip(keys, cell, strict=True):
        lines.append(f"_cell_{key} {value:.8f}")
    lines += ["loop_", "_atom_site_label", "_atom_site_type_symbol", "_atom_site_fract_x", "_atom_site_fract_y",
              "_atom_site_fract_z", "_atom_site_occupancy", "_atom_site_B_iso_or_equiv"]
    for i, (element, x, y, z, b) in enumerate(atoms):
        lines.append(f"{element}{i + 1} {element} {x:.8f} {y:.8f} {z:.8f} 1 {b}")
    return "\n".join(lines) + "\n"


def transformed_cell(cell: tuple[float, ...], p: np.ndarray) -> tuple[float, ...]:
    """Cell of the new basis whose vectors are the columns of p (in the old basis): G' = P^T G P."""
    g = p.T @ metric_tensor(cell) @ p
    a, b, c = np.sqrt(np.diag(g))
    alpha = math.degrees(math.acos(g[1, 2] / (b * c)))
    beta = math.degrees(math.acos(g[0, 2] / (a * c)))
    gamma = math.degrees(math.acos(g[0, 1] / (a * b)))
    return (float(a), float(b), float(c), alpha, beta, gamma)


def nacl(b_na: float = 0.0, b_cl: float = 0.0, a: float = 5.6402) -> Structure:
    na = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
    cl = [[0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]]
    return Structure(cell=(a, a, a, 90, 90, 90), space_group=225, fract=na + cl, elements=["Na"] * 4 + ["Cl"] * 4,
                     occupancy=np.ones(8), b_iso=[b_na] * 4 + [b_cl] * 4, name="NaCl")


def hkl_rows(peaks) -> list[tuple[int, int, int]]:
    return [tuple(int(x) for x in h) for h in peaks.hkl]


# --------------------------------------------------------------------------- positions: Bragg's law


def test_silicon_two_theta_from_cubic_formula_and_bragg_law() -> None:
    a, lam = 5.43094, CU_KA1
    peaks = simulate_peaks(read_structure(EXAMPLES / "Si.cif"), lam, (10, 150))
    by_hkl = dict(zip(hkl_rows(peaks), zip(peaks.two_theta, peaks.d, strict=True), strict=True))
    for hkl, textbook in {(1, 1, 1): 28.44, (2, 2, 0): 47.30, (3, 1, 1): 56.12}.items():
        d = a / math.sqrt(sum(x * x for x in hkl))
        expected = 2.0 * math.degrees(math.asin(lam / (2.0 * d)))
        tt, dd = by_hkl[hkl]
        assert dd == pytest.approx(d, rel=1e-12)
        assert tt == pytest.approx(expected, abs=1e-9)
        assert tt == pytest.approx(textbook, abs=0.005)
    for hkl, (tt, dd) in by_hkl.items():  # every line, not only the three textbook ones
        assert dd == pytest.approx(a / math.sqrt(sum(x * x for x in hkl)), rel=1e-12)
        assert lam == pytest.approx(2.0 * dd * math.sin(math.radians(tt) / 2.0), rel=1e-12)


# Line positions NIST publishes for silicon powder SRM 640c (certified a = 0.54311946 nm, Cu Ka1
# lambda = 0.15405929 nm) and the ICDD card 27-1402 from the earlier SRM 640 (a = 5.43088 A,
# lambda = 1.540598 A); 2theta in degrees.
SRM_640C = {(1, 1, 1): 28.441, (2, 2, 0): 47.300, (3, 1, 1): 56.119, (4, 0, 0): 69.126, (3, 3, 1): 76.372,
            (4, 2, 2): 88.025, (5, 1, 1): 94.947, (4, 4, 0): 106.701, (5, 3, 1): 114.084, (6, 2, 0): 127.534,
            (5, 3, 3): 136.880}
PDF_27_1402 = {(1, 1, 1): 28.443, (2, 2, 0): 47.303, (3, 1, 1): 56.123, (4, 0, 0): 69.131, (3, 3, 1): 76.377,
               (4, 2, 2): 88.032, (5, 1, 1): 94.954, (4, 4, 0): 106.710, (5, 3, 1): 114.094, (6, 2, 0): 127.547,
               (5, 3, 3): 136.897}


@pytest.mark.parametrize(("a", "wavelength", "published"), [(5.4311946, 1.5405929, SRM_640C),
                                                            (5.43088, 1.540598, PDF_27_1402)],
                         ids=["SRM640c", "PDF27-1402"])
def test_silicon_matches_published_srm_640_positions(a: float, wavelength: float, published: dict) -> None:
    si = attrs.evolve(read_structure(EXAMPLES / "Si.cif"), cell=(a, a, a, 90.0, 90.0, 90.0))
    peaks = simulate_peaks(si, wavelength, (20, 140))
    # the same reflections (333 coincides with 511, where the tables list 511), no 200, 222, 420, ...
    assert set(hkl_rows(peaks)) == set(published) | {(3, 3, 3)}
    positions, _ = merged_lines(peaks.two_theta, peaks.intensity, 1e-6)
    assert np.abs(positions - np.array(list(published.values()))).max() < 0.01


def test_example_silicon_cif_within_0_01_deg_of_srm_640c_up_to_100_deg() -> None:
    """The example CIF (a = 5.43094 A, SRM 640b) at 1.5406 A, against the 640c table where a-difference is small."""
    peaks = simulate_peaks(EXAMPLES / "Si.cif", CU_KA1, (20, 100))
    published = {hkl: tt for hkl, tt in SRM_640C.items() if tt < 100}
    assert set(hkl_rows(peaks)) == set(published) | {(3, 3, 3)}
    positions, _ = merged_lines(peaks.two_theta, peaks.intensity, 1e-6)
    assert np.abs(positions - np.array(list(published.values()))).max() < 0.01


def test_bragg_two_theta_and_unreachable_d() -> None:
    d = np.array([3.0, 1.0, 0.78, 0.5])
    tt = bragg_two_theta(d, CU_KA1)
    assert tt[:3] == pytest.approx(2.0 * np.degrees(np.arcsin(CU_KA1 / (2.0 * d[:3]))), abs=1e-12)
    assert bragg_two_theta(np.array([CU_KA1 / 2.0]), CU_KA1)[0] == pytest.approx(180.0)  # backscattering
    assert np.isnan(tt[3])  # lambda / 2d > 1: beyond reach


@pytest.mark.parametrize("cif_path", EXAMPLE_CIFS, ids=lambda p: p.stem)
def test_d_spacings_match_metric_tensor(cif_path: Path) -> None:
    s = read_structure(cif_path)
    peaks = simulate_peaks(s, CU_KA1, (5, 120))
    assert peaks.d == pytest.approx(d_spacing(s.cell, peaks.hkl), rel=1e-10)
    assert peaks.two_theta == pytest.approx(bragg(peaks.d, CU_KA1), abs=1e-9)


def test_wavelength_changes_angles_not_d_spacings() -> None:
    s = read_structure(EXAMPLES / "TiO2_rutile.cif")
    cu = simulate_peaks(s, WAVELENGTHS["CuKa1"], (5, 150))
    mo = simulate_peaks(s, WAVELENGTHS["MoKa1"], (2, 80))
    d_lo = max(cu.d.min(), mo.d.min())
    d_hi = min(cu.d.max(), mo.d.max())
    in_cu = (cu.d >= d_lo) & (cu.d <= d_hi)
    in_mo = (mo.d >= d_lo) & (mo.d <= d_hi)
    assert in_cu.sum() > 20
    assert hkl_rows(cu)[0] == hkl_rows(mo)[0]
    cu_rows, mo_rows = hkl_rows(cu), hkl_rows(mo)
    assert sorted(cu_rows[i] for i in np.flatnonzero(in_cu)) == sorted(mo_rows[i] for i in np.flatnonzero(in_mo))
    assert mo.d[in_mo] == pytest.approx(cu.d[in_cu], rel=1e-12)
    assert mo.multiplicity[in_mo].tolist() == cu.multiplicity[in_cu].tolist()
    ratio = np.sin(np.radians(mo.two_theta[in_mo]) / 2) / np.sin(np.radians(cu.two_theta[in_cu]) / 2)
    assert ratio == pytest.approx(WAVELENGTHS["MoKa1"] / WAVELENGTHS["CuKa1"], rel=1e-12)
    # f(s) depends on d only, so the intensities differ by the Lorentz-polarization ratio (and one global scale)
    lp_ratio = lp_formula(mo.two_theta[in_mo]) / lp_formula(cu.two_theta[in_cu])
    scale = mo.intensity[in_mo] / cu.intensity[in_cu] / lp_ratio
    assert scale == pytest.approx(np.full_like(scale, scale[0]), rel=1e-9)


# --------------------------------------------------------------------------- Lorentz-polarization


def test_lorentz_polarization_closed_forms() -> None:
    # 2theta = 90: (1 + 0) / (sin^2 45 cos 45) = 1 / (0.5 cos 45) = 2 sqrt 2
    assert lorentz_polarization(np.array([90.0]))[0] == pytest.approx(1.0 / (0.5 * math.cos(math.radians(45))))
    assert lorentz_polarization(np.array([90.0]))[0] == pytest.approx(2.0 * math.sqrt(2.0))
    # 2theta = 60: (1 + 1/4) / (1/4 * sqrt3/2) = 10/sqrt3;  2theta = 120: (1 + 1/4) / (3/4 * 1/2) = 10/3
    assert lorentz_polarization(np.array([60.0]))[0] == pytest.approx(10.0 / math.sqrt(3.0))
    assert lorentz_polarization(np.array([120.0]))[0] == pytest.approx(10.0 / 3.0)
    angles = np.linspace(5, 175, 35)
    assert lorentz_polarization(angles) == pytest.approx(lp_formula(angles), rel=1e-12)


def test_lorentz_polarization_with_monochromator() -> None:
    """International Tables vol. C, 6.2.2: P = (1 + cos^2 2alpha cos^2 2theta) / (1 + cos^2 2alpha)."""
    angles = np.linspace(5, 175, 35)
    c2a = math.cos(math.radians(26.6)) ** 2  # graphite (002) with Cu K-alpha
    expected = (1 + c2a * np.cos(np.radians(angles)) ** 2) / (1 + c2a) / (1 + np.cos(np.radians(angles)) ** 2)
    assert lorentz_polarization(angles, 26.6) == pytest.approx(lp_formula(angles) * expected, rel=1e-12)
    assert lorentz_polarization(np.array([90.0]), 26.6)[0] == pytest.approx(2 * math.sqrt(2) / (1 + c2a))
    assert lorentz_polarization(angles, 0.0) == pytest.approx(lp_formula(angles) / 2, rel=1e-12)  # 2alpha = 0
    s = read_structure(EXAMPLES / "NaCl.cif")
    plain = simulate_peaks(s, CU_KA1, (10, 150))
    mono = simulate_peaks(s, CU_KA1, (10, 150), monochromator_two_theta=26.6)
    ratio = mono.intensity / plain.intensity * lp_formula(plain.two_theta) / lorentz_polarization(plain.two_theta, 26.6)
    assert ratio == pytest.approx(np.full_like(ratio, ratio[0]), rel=1e-9)


# --------------------------------------------------------------------------- structure factors


@pytest.mark.parametrize(("b_na", "b_cl"), [(0.0, 0.0), (1.6, 1.2)])
def test_rock_salt_structure_factors(b_na: float, b_cl: float) -> None:
    s = nacl(b_na, b_cl)
    hkl = np.array([[1, 1, 1], [2, 0, 0], [2, 2, 0], [3, 1, 1], [1, 0, 0], [2, 1, 0]])
    d = 5.6402 / np.sqrt((hkl**2).sum(axis=1))
    stol2 = 1.0 / (4.0 * d**2)
    f_na = form_factor("Na", stol2) * np.exp(-b_na * stol2)
    f_cl = form_factor("Cl", stol2) * np.exp(-b_cl * stol2)
    f = structure_factors(s, hkl, d)
    assert f[0] == pytest.approx(4 * (f_na[0] - f_cl[0]), rel=1e-6)  # (111): all odd
    assert f[1] == pytest.approx(4 * (f_na[1] + f_cl[1]), rel=1e-6)  # (200): all even
    assert f[2] == pytest.approx(4 * (f_na[2] + f_cl[2]), rel=1e-6)
    assert f[3] == pytest.approx(4 * (f_na[3] - f_cl[3]), rel=1e-6)
    assert np.abs(f[4:]).max() < 1e-9  # mixed parity: extinct by the F lattice


def test_example_nacl_cif_structure_factor_uses_its_b_values() -> None:
    s = read_structure(EXAMPLES / "NaCl.cif")
    d = np.array([5.6402 / 2.0])
    stol2 = 1.0 / (4.0 * d**2)
    expected = 4 * (form_factor("Na", stol2) * np.exp(-1.6 * stol2) + form_factor("Cl", stol2) * np.exp(-1.2 * stol2))
    assert structure_factors(s, np.array([[2, 0, 0]]), d)[0] == pytest.approx(expected[0], rel=1e-6)


def test_occupancy_scales_the_structure_factor() -> None:
    full = nacl()
    half = attrs.evolve(full, occupancy=np.where(np.array(full.elements) == "Cl", 0.5, 1.0))
    hkl = np.array([[2, 0, 0]])
    d = np.array([5.6402 / 2])
    f_na, f_cl = form_factor("Na", 1 / (4 * d**2))[0], form_factor("Cl", 1 / (4 * d**2))[0]
    assert structure_factors(half, hkl, d)[0] == pytest.approx(4 * (f_na + 0.5 * f_cl), rel=1e-6)


def test_nacl_intensities_from_first_principles() -> None:
    """Every NaCl line: I = m |F|^2 LP with m counted by permutations and sign changes (m-3m), scaled to 100."""
    s = read_structure(EXAMPLES / "NaCl.cif")
    peaks = simulate_peaks(s, CU_KA1, (10, 150))
    expected = []
    for hkl, tt in zip(hkl_rows(peaks), peaks.two_theta, strict=True):
        m = len({tuple(sg * x for sg, x in zip(signs, perm, strict=True))
                 for perm in itertools.permutations(hkl) for signs in itertools.product((1, -1), repeat=3)})
        d = 5.6402 / math.sqrt(sum(x * x for x in hkl))
        stol2 = np.array([1.0 / (4.0 * d * d)])
        f_na = form_factor("Na", stol2)[0] * math.exp(-1.6 * stol2[0])
        f_cl = form_factor("Cl", stol2)[0] * math.exp(-1.2 * stol2[0])
        f = 4 * (f_na + f_cl) if hkl[0] % 2 == 0 else 4 * (f_na - f_cl)
        expected.append(m * f * f * lp_formula(np.array([tt]))[0])
    expected = 100.0 * np.array(expected) / max(expected)
    assert peaks.intensity == pytest.approx(expected, rel=1e-5)
    assert hkl_rows(peaks)[:5] == [(1, 1, 1), (2, 0, 0), (2, 2, 0), (3, 1, 1), (2, 2, 2)]
    assert peaks.multiplicity[:5].tolist() == [8, 6, 12, 24, 8]


# --------------------------------------------------------------------------- multiplicities and orbits

# One or more space groups of every Laue class; 162 and 164 (-31m and -3m1) differ only in orientation.
LAUE_GROUPS = [1, 2, 14, 15, 62, 70, 83, 88, 136, 141, 146, 148, 162, 164, 167, 176, 191, 194, 205, 225, 227, 230]


@pytest.mark.parametrize("space_group", LAUE_GROUPS)
def test_multiplicity_matches_brute_force_orbit(space_group: int) -> None:
    rng = np.random.default_rng(space_group)
    random = rng.integers(-7, 8, size=(150, 3))
    special = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, -1, 0], [1, 1, 1], [2, 1, 0], [1, 2, 0], [2, -1, 0],
               [1, 1, 2], [1, 1, -2], [2, 1, 1], [0, 1, 1], [1, 0, 1], [-1, 2, 3], [3, 0, 0], [4, 4, 1], [2, 2, 0]]
    hkl = np.concatenate([random[np.any(random != 0, axis=1)], special])
    rep, mult = reflection_orbits(hkl, space_group)
    assert powder_multiplicity(hkl, space_group).tolist() == mult.tolist()
    for h, r, m in zip(hkl.tolist(), rep.tolist(), mult.tolist(), strict=True):
        orbit = brute_force_orbit(tuple(h), space_group)
        assert m == len(orbit), f"multiplicity of {h} in {space_group}"
        assert tuple(r) in orbit, f"representative {r} of {h} is not in its orbit"
        assert tuple(r) == max(orbit)  # the documented canonical choice: lexicographically largest member


@pytest.mark.parametrize(("space_group", "hkl", "m"), [
    (2, (1, 2, 3), 2), (14, (1, 2, 3), 4), (14, (1, 0, 3), 2), (14, (0, 1, 0), 2), (62, (1, 2, 3), 8),
    (62, (1, 1, 0), 4), (136, (1, 2, 3), 16), (136, (1, 2, 0), 8), (136, (0, 0, 1), 2), (88, (1, 2, 3), 8),
    (148, (1, 2, 3), 6), (167, (1, 2, 3), 12), (167, (0, 0, 6), 2), (176, (1, 2, 3), 12),
    (191, (1, 2, 3), 24), (191, (1, 0, 0), 6), (191, (1, 1, 0), 6), (191, (0, 0, 1), 2), (205, (1, 2, 3), 24),
    (225, (1, 2, 3), 48), (225, (1, 1, 0), 12), (225, (1, 1, 2), 24), (225, (1, 0, 0), 6), (225, (1, 1, 1), 8),
])
def test_multiplicity_textbook_values(space_group: int, hkl: tuple[int, int, int], m: int) -> None:
    """International Tables vol. A: number of equivalent reflections in the Laue class (Friedel pairs merged)."""
    assert powder_multiplicity(np.array([hkl]), space_group).tolist() == [m]


def test_reflection_orbits_empty_input() -> None:
    rep, m = reflection_orbits(np.zeros((0, 3), dtype=int), 225)
    assert rep.shape == (0, 3) and m.shape == (0,)


# --------------------------------------------------------------------------- absences


def test_fcc_and_diamond_absences() -> None:
    nacl_peaks = simulate_peaks(EXAMPLES / "NaCl.cif", CU_KA1, (5, 150))
    rows = hkl_rows(nacl_peaks)
    assert all(len({x % 2 for x in h}) == 1 for h in rows)  # F lattice: h, k, l unmixed
    assert (1, 0, 0) not in rows and (1, 1, 0) not in rows and (2, 1, 0) not in rows
    # every unmixed reflection of the range is there (|f_Na +- f_Cl| never vanishes)
    d_min = CU_KA1 / (2 * math.sin(math.radians(75)))
    unmixed = {tuple(sorted(map(abs, hkl), reverse=True))
               for hkl in itertools.product(range(-12, 13), repeat=3)
               if any(hkl) and len({x % 2 for x in hkl}) == 1
               and 5.6402 / math.sqrt(sum(x * x for x in hkl)) >= d_min
               and bragg(5.6402 / math.sqrt(sum(x * x for x in hkl)), CU_KA1) >= 5}
    assert set(rows) == unmixed

    si = read_structure(EXAMPLES / "Si.cif")
    si_rows = hkl_rows(simulate_peaks(si, CU_KA1, (5, 170)))
    for h in si_rows:  # diamond: all odd, or all even with h + k + l = 4n
        assert all(x % 2 == 1 for x in h) or (all(x % 2 == 0 for x in h) and sum(h) % 4 == 0), h
    ops = gemmi.find_spacegroup_by_number(227).operations()
    for h in [(2, 0, 0), (4, 2, 0), (6, 0, 0)]:  # true space-group absences (h00: h = 4n; 0kl: k + l = 4n)
        assert ops.is_systematically_absent(list(h))
        assert h not in si_rows
    # 222, 442 and 622 (hhl, h + l = 2n) are allowed by Fd-3m; they vanish only because Si sits on the special
    # position 8a (F = 4 f (1 + i^(h+k+l)) = 0 for h+k+l = 4n+2). Kinematically their intensity is zero: no 222
    # line (the weak 222 seen in real Si comes from bonding charge, anharmonicity and multiple diffraction).
    for h in [(2, 2, 2), (4, 4, 2), (6, 2, 2)]:
        assert not ops.is_systematically_absent(list(h))
        assert h not in si_rows
        d = np.array([5.43094 / math.sqrt(sum(x * x for x in h))])
        assert abs(structure_factors(si, np.array([h]), d)[0]) < 1e-9
    assert (4, 0, 0) in si_rows and (4, 2, 2) in si_rows


@pytest.mark.parametrize("cif_path", EXAMPLE_CIFS, ids=lambda p: p.stem)
def test_no_systematically_absent_line(cif_path: Path) -> None:
    s = read_structure(cif_path)
    ops = gemmi.find_spacegroup_by_number(s.space_group).operations()
    peaks = simulate_peaks(s, CU_KA1, (5, 150))
    assert len(peaks) > 5
    assert not any(ops.is_systematically_absent(list(h)) for h in hkl_rows(peaks))


def test_cscl_primitive_lattice_keeps_odd_reflections() -> None:
    rows = hkl_rows(simulate_peaks(EXAMPLES / "CsCl.cif", CU_KA1, (5, 90)))
    assert rows[:4] == [(1, 0, 0), (1, 1, 0), (1, 1, 1), (2, 0, 0)]


# --------------------------------------------------------------------------- brute-force P1 reference


def compare_with_reference(structure: Structure, wavelength: float = CU_KA1, tt_range=(5.0, 100.0)) -> None:
    peaks = simulate_peaks(structure, wavelength, tt_range)
    ours_d, ours_i = group_by_d(peaks.d, peaks.intensity)
    ref_d, ref_i = reference_lines(structure, wavelength, tt_range)
    strong_ours, strong_ref = ours_i > 1e-3, ref_i > 1e-3
    assert ours_d[strong_ours] == pytest.approx(ref_d[strong_ref], rel=1e-9), "line positions differ"
    assert ours_i[strong_ours] == pytest.approx(ref_i[strong_ref], rel=1e-4, abs=1e-4), "intensities differ"


@pytest.mark.parametrize("cif_path", EXAMPLE_CIFS, ids=lambda p: p.stem)
def test_simulation_equals_brute_force_p1_summation(cif_path: Path) -> None:
    """Symmetry-reduced simulation (orbits, multiplicities, absences) == summing every hkl of a box in P1."""
    compare_with_reference(read_structure(cif_path))


P21N_CELL = (5.1, 6.3, 7.2, 90.0, 97.5, 90.0)
P21N_ATOMS = [("Zn", 0.11, 0.23, 0.37, 0.5), ("O", 0.31, 0.07, 0.81, 0.8)]


def p21n_cif(tmp_path: Path) -> Path:
    text = cif("p21n", "P 1 21/n 1", 14, P21N_CELL, P21N_ATOMS)
    text = text.replace("loop_\n_atom_site_label", "loop_\n_symmetry_equiv_pos_as_xyz\n'x, y, z'\n"
                        "'-x+1/2, y+1/2, -z+1/2'\n'-x, -y, -z'\n'x+1/2, -y+1/2, z+1/2'\nloop_\n_atom_site_label")
    return write(tmp_path / "p21n.cif", text)


def p21c_equivalent_cif(tmp_path: Path) -> Path:
    """The same crystal in the standard P 1 21/c 1 setting: a' = a, b' = b, c' = a + c, so x' = x - z."""
    p = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 1]], dtype=float)
    atoms = [(e, x - z, y, z, b) for e, x, y, z, b in P21N_ATOMS]
    return write(tmp_path / "p21c.cif", cif("p21c", "P 1 21/c 1", 14, transformed_cell(P21N_CELL, p), atoms))


# Rhombohedral (obverse) basis in hexagonal axes: a_r = (2a+b+c)/3, b_r = (-a+b+c)/3, c_r = (-a-2b+c)/3.
OBVERSE = np.array([[2, -1, -1], [1, 1, -2], [1, 1, 1]], dtype=float) / 3.0


def corundum_rhombohedral_cif(tmp_path: Path) -> Path:
    hexagonal = read_structure(EXAMPLES / "Al2O3_corundum.cif")
    inv = np.linalg.inv(OBVERSE)
    atoms = [("Al", *(inv @ [0, 0, 0.35216]), 0.3), ("O", *(inv @ [0.30624, 0, 0.25]), 0.35)]
    text = cif("corundum_R", "R -3 c :R", 167, transformed_cell(hexagonal.cell, OBVERSE), atoms)
    return write(tmp_path / "corundum_R.cif", text)


def test_non_standard_settings_are_read_with_all_atoms(tmp_path: Path) -> None:
    p21n = read_structure(p21n_cif(tmp_path))
    assert (p21n.space_group, len(p21n.elements)) == (14, 8)
    rhombo = read_structure(corundum_rhombohedral_cif(tmp_path))
    assert (rhombo.space_group, len(rhombo.elements)) == (167, 10)
    assert rhombo.volume == pytest.approx(read_structure(EXAMPLES / "Al2O3_corundum.cif").volume / 3, rel=1e-9)


# Absences, the reciprocal asymmetric unit and the Laue rotations must be those of the file's setting, not of
# the standard setting of its space-group number: in P 1 21/n 1, h0l with h + l even are present (P 1 21/c 1
# would keep l even instead); on rhombohedral axes there is no -h+k+l = 3n condition.


def test_p21n_setting_equals_brute_force(tmp_path: Path) -> None:
    s = read_structure(p21n_cif(tmp_path))
    compare_with_reference(s)
    rows = hkl_rows(simulate_peaks(s, CU_KA1, (5, 100)))
    assert (1, 0, 1) in rows or (-1, 0, -1) in rows  # h + l even, l odd: present in P 1 21/n 1
    assert not any(h[1] == 0 and (h[0] + h[2]) % 2 for h in rows)  # h0l, h + l odd: absent (n glide)


def test_rhombohedral_axes_equal_brute_force(tmp_path: Path) -> None:
    compare_with_reference(read_structure(corundum_rhombohedral_cif(tmp_path)))


def test_standard_settings_of_the_same_crystals_equal_brute_force(tmp_path: Path) -> None:
    compare_with_reference(read_structure(p21c_equivalent_cif(tmp_path)))
    compare_with_reference(read_structure(EXAMPLES / "Al2O3_corundum.cif"))


def test_pattern_does_not_depend_on_the_setting(tmp_path: Path) -> None:
    """The same crystal described in two cells gives one powder pattern (d-spacings and intensities)."""
    for a, b in [(p21n_cif(tmp_path), p21c_equivalent_cif(tmp_path)),
                 (corundum_rhombohedral_cif(tmp_path), EXAMPLES / "Al2O3_corundum.cif")]:
        pa, pb = simulate_peaks(a, CU_KA1, (5, 90)), simulate_peaks(b, CU_KA1, (5, 90))
        da, ia = group_by_d(pa.d, pa.intensity, rel=1e-6)
        db, ib = group_by_d(pb.d, pb.intensity, rel=1e-6)
        assert da == pytest.approx(db, rel=1e-5)
        assert ia == pytest.approx(ib, abs=0.05)


# --------------------------------------------------------------------------- the documented contract


def test_simulate_peaks_is_sorted_and_scaled_to_100() -> None:
    """``simulate_peaks(structure_or_cif, wavelength, (min, max))`` returns one line per reflection orbit,
    sorted by two_theta, strongest line exactly 100, all within the requested range."""
    for cif_path in EXAMPLE_CIFS:
        for wavelength, tt_range in [(CU_KA1, (0.0, 120.0)), (WAVELENGTHS["MoKa1"], (10.0, 60.0)),
                                     (WAVELENGTHS["CoKa1"], (30.0, 180.0))]:
            peaks = simulate_peaks(cif_path, wavelength, tt_range)
            assert len(peaks) == len(peaks.d) == len(peaks.hkl) == len(peaks.multiplicity) == len(peaks.intensity)
            assert np.all(np.diff(peaks.two_theta) >= 0)
            assert peaks.intensity.max() == pytest.approx(100.0, abs=1e-12)
            assert np.all(peaks.intensity > 0) and np.all(peaks.intensity <= 100.0 + 1e-12)
            assert peaks.two_theta.min() >= tt_range[0] and peaks.two_theta.max() <= tt_range[1]
            assert peaks.wavelength == wavelength and np.all(peaks.multiplicity >= 1)


def test_simulate_peaks_empty_range_and_bad_arguments() -> None:
    s = read_structure(EXAMPLES / "NaCl.cif")
    empty = simulate_peaks(s, CU_KA1, (1.0, 2.0))  # below the (111) line at 27.4 deg
    assert len(empty) == 0 and empty.hkl.shape == (0, 3)
    for kwargs in [{"wavelength": 0.0}, {"wavelength": -1.0}, {"wavelength": float("nan")},
                   {"two_theta_range": (50.0, 40.0)}, {"two_theta_range": (0.0, 200.0)},
                   {"two_theta_range": (-5.0, 40.0)}]:
        with pytest.raises(XrdframeError):
            simulate_peaks(s, **kwargs)


# --------------------------------------------------------------------------- pymatgen's XRDCalculator
#
# pymatgen (Cullity's kinematic model, as ours) sums every hkl of its reciprocal-space sphere, merges lines
# closer than 1e-5 deg and evaluates form factors with its own fit  f = Z - 41.78214 s^2 sum a_i exp(-b_i s^2).
# With that fit plugged into our simulation (the form_factor argument) the two codes agree to rounding
# (test_identical_to_pymatgen_with_its_form_factors): the only physics difference is the form-factor table.
# With our IT92 factors: for the elements compared here pymatgen's fit agrees with IT92 within about 1.2 %
# over s <= sin45/1.5406 (test_pymatgen_form_factor_fit_agrees_with_it92...), so |F|^2 agrees within ~2.5 %
# where there is no cancellation between atoms; at a cancellation a small absolute error may be a larger
# relative one. Hence, for lines above 5 %: |I_ours - I_pymatgen| <= max(1.0, 0.05 I) (measured: <= 0.51).
# The spglib structures carry placeholder species H, He, Li, Be, B, C; pymatgen's fit for H is the free atom
# (32 % below IT92's bonded-H values at s = 0.46) and Li differs by 3 %, so for the IT92 comparison those
# placeholders are relabelled consistently (in both codes) to elements whose two fits agree within 0.3 %.

PLACEHOLDERS = {"H": "O", "He": "Ne", "Li": "S", "Be": "Br", "B": "Se", "C": "I"}
COMPARED_ELEMENTS = sorted({"Na", "Cl", "Si", "Cs", "Ti", "O", "Al", "Zn", *PLACEHOLDERS.values()})
SPGLIB_SAMPLE = [  # every crystal system, several Laue classes, origin choices (70, 141, 227) and R lattices
    "triclinic__POSCAR-001", "triclinic__POSCAR-002",
    "monoclinic__POSCAR-012-2", "monoclinic__POSCAR-014", "monoclinic__POSCAR-015-3",
    "orthorhombic__POSCAR-062", "orthorhombic__POSCAR-070-2", "orthorhombic__POSCAR-074-2",
    "tetragonal__POSCAR-083-3", "tetragonal__POSCAR-136", "tetragonal__POSCAR-141",
    "trigonal__POSCAR-148", "trigonal__POSCAR-154", "trigonal__POSCAR-160-2", "trigonal__POSCAR-162",
    "trigonal__POSCAR-164", "trigonal__POSCAR-167-3",
    "hexagonal__POSCAR-176", "hexagonal__POSCAR-186", "hexagonal__POSCAR-194",
    "cubic__POSCAR-198", "cubic__POSCAR-205", "cubic__POSCAR-225", "cubic__POSCAR-227",
]
POSITION_TOL = 0.01  # deg
MERGE_TOL = 0.01  # deg
IT92_TOL = (1.0, 0.05)  # (absolute, relative) on the 0-100 scale, see above
# pymatgen's CIF parser snaps coordinates within 1e-4 of simple fractions (0.333333 -> 1/3), gemmi does not:
# a few 1e-6 relative at most.
SAME_FORM_FACTOR_TOL = (0.005, 0.0)


@pytest.fixture(scope="module")
def pymatgen_xrd():
    xrd = pytest.importorskip("pymatgen.analysis.diffraction.xrd")
    core = pytest.importorskip("pymatgen.core")
    return xrd, core


@pytest.fixture(scope="module")
def pymatgen_form_factor(pymatgen_xrd):
    """pymatgen's form-factor fit as a function (element, stol2) -> f, for our form_factor argument."""
    params_file = Path(pymatgen_xrd[0].__file__).with_name("atomic_scattering_params.json")
    if not params_file.is_file():
        pytest.skip(f"pymatgen's form-factor table is not at {params_file}")
    return mott_bethe_form_factor(json.loads(params_file.read_text()))


def compare_with_pymatgen(ours, pattern, tol: tuple[float, float] = IT92_TOL) -> tuple[float, float]:
    """Assert agreement; return (max |delta 2theta| over pymatgen lines > 1 %, max |delta I| over lines > 5 %)."""
    px, py = np.asarray(pattern.x, dtype=float), np.asarray(pattern.y, dtype=float)
    ox, oi = ours.two_theta, ours.intensity
    max_dtt = 0.0
    for x, y in zip(px, py, strict=True):  # every visible pymatgen line has one of ours
        nearest = np.abs(ox - x).min()
        if y > 1.0:
            assert nearest <= POSITION_TOL, f"pymatgen line at {x:.4f} deg ({y:.1f} %) has none of ours"
            max_dtt = max(max_dtt, nearest)
    merged_x, merged_i = merged_lines(ox, oi, MERGE_TOL)
    for x, i in zip(merged_x, merged_i, strict=True):  # conversely: every visible line of ours is in pymatgen's
        if i > 1.0:
            assert np.abs(px - x).min() <= POSITION_TOL, f"our line at {x:.4f} deg ({i:.1f} %) is not in pymatgen's"
    # common clusters: chains of lines from both lists closer than MERGE_TOL, intensities summed, rescaled to 100
    both = np.concatenate([ox, px])
    source = np.concatenate([np.zeros(len(ox)), np.ones(len(px))])
    weights = np.concatenate([oi, py])
    groups = cluster(both, MERGE_TOL)
    ours_sum = np.array([weights[g][source[g] == 0].sum() for g in groups])
    pmg_sum = np.array([weights[g][source[g] == 1].sum() for g in groups])
    ours_sum, pmg_sum = 100 * ours_sum / ours_sum.max(), 100 * pmg_sum / pmg_sum.max()
    max_di = 0.0
    for g, a, b in zip(groups, ours_sum, pmg_sum, strict=True):
        if a > 5.0 or b > 5.0:
            where = f"{both[g].mean():.3f} deg"
            assert abs(a - b) <= max(tol[0], tol[1] * b), f"line at {where}: ours {a:.4f}, pymatgen {b:.4f}"
            max_di = max(max_di, abs(a - b))
    return max_dtt, max_di


def pymatgen_pattern(pymatgen_xrd, pmg_structure, dw: dict[str, float] | None = None):
    xrd, _ = pymatgen_xrd
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calc = xrd.XRDCalculator(wavelength=CU_KA1, debye_waller_factors=dw)
        return calc.get_pattern(pmg_structure, two_theta_range=(5, 90))


def read_pymatgen(pymatgen_xrd, path: Path):
    _, core = pymatgen_xrd
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return core.Structure.from_file(str(path))


_FILE_PATTERNS: dict[Path, object] = {}


def pymatgen_pattern_of_file(pymatgen_xrd, path: Path):
    """pymatgen's pattern of a CIF as pymatgen reads it (no displacement parameters), computed once per file."""
    if path not in _FILE_PATTERNS:
        _FILE_PATTERNS[path] = pymatgen_pattern(pymatgen_xrd, read_pymatgen(pymatgen_xrd, path))
    return _FILE_PATTERNS[path]


def test_pymatgen_form_factor_fit_agrees_with_it92_for_compared_elements(pymatgen_form_factor) -> None:
    s2 = np.linspace(0.0, math.sin(math.radians(45)) / CU_KA1, 40) ** 2
    for element in COMPARED_ELEMENTS:
        f_pmg, f_it92 = pymatgen_form_factor(element, s2), form_factor(element, s2)
        limit = 0.003 if element in PLACEHOLDERS.values() else 0.013
        assert np.max(np.abs(f_pmg - f_it92) / f_it92) < limit, element
    # ...and not for hydrogen: pymatgen fits the free atom, IT92 the bonded (SDS) hydrogen
    assert pymatgen_form_factor("H", s2[-1:])[0] < 0.8 * form_factor("H", s2[-1:])[0]


@pytest.mark.parametrize("cif_path", EXAMPLE_CIFS, ids=lambda p: p.stem)
def test_examples_agree_with_pymatgen(cif_path: Path, pymatgen_xrd, record_property) -> None:
    s = read_structure(cif_path)
    pmg = read_pymatgen(pymatgen_xrd, cif_path)
    assert len(pmg) == len(s.elements)
    # without displacement parameters (pymatgen ignores the CIF's B unless it is given them)
    ours = simulate_peaks(attrs.evolve(s, b_iso=np.zeros_like(s.b_iso)), CU_KA1, (5, 90))
    record_property("agreement_B0", compare_with_pymatgen(ours, pymatgen_pattern_of_file(pymatgen_xrd, cif_path)))
    # with them: each example has one B per element, which is what pymatgen's debye_waller_factors take
    b = {e: float(s.b_iso[np.array(s.elements) == e][0]) for e in set(s.elements)}
    assert all(np.allclose(s.b_iso[np.array(s.elements) == e], v) for e, v in b.items())
    ours_b = simulate_peaks(s, CU_KA1, (5, 90))
    record_property("agreement_B", compare_with_pymatgen(ours_b, pymatgen_pattern(pymatgen_xrd, pmg, dw=b)))


@pytest.mark.parametrize("name", SPGLIB_SAMPLE)
def test_real_structures_agree_with_pymatgen(name: str, pymatgen_xrd, record_property) -> None:
    path = need_shared_data() / f"{name}.cif"
    s = read_structure(path)
    s = attrs.evolve(s, elements=[PLACEHOLDERS[e] for e in s.elements], b_iso=np.zeros_like(s.b_iso))
    pmg = read_pymatgen(pymatgen_xrd, path)
    pmg.replace_species({k: v for k, v in PLACEHOLDERS.items() if k in pmg.symbol_set})
    assert len(pmg) == len(s.elements)
    assert sorted(str(sp) for sp in pmg.species) == sorted(s.elements)
    ours = simulate_peaks(s, CU_KA1, (5, 90))
    record_property("agreement", compare_with_pymatgen(ours, pymatgen_pattern(pymatgen_xrd, pmg)))


@pytest.mark.parametrize("name", [p.stem for p in EXAMPLE_CIFS] + SPGLIB_SAMPLE)
def test_identical_to_pymatgen_with_its_form_factors(name: str, pymatgen_xrd, pymatgen_form_factor,
                                                     record_property) -> None:
    """Same form factors => same pattern: positions, multiplicities, |F|^2 and LP agree to rounding.

    The spglib structures keep their H/He/Li placeholders here, where the two form-factor tables differ most.
    """
    path = EXAMPLES / f"{name}.cif" if (EXAMPLES / f"{name}.cif").is_file() else need_shared_data() / f"{name}.cif"
    s = read_structure(path)
    ours = simulate_peaks(attrs.evolve(s, b_iso=np.zeros_like(s.b_iso)), CU_KA1, (5, 90),
                          form_factor=pymatgen_form_factor)
    pattern = pymatgen_pattern_of_file(pymatgen_xrd, path)
    record_property("agreement_same_ff", compare_with_pymatgen(ours, pattern, tol=SAME_FORM_FACTOR_TOL))
