"""A mapped network on one or more crossbars: layer weights read back, matrix products on the chip,
mask changes issued as batched reset (prune) / set (reinstate) of both cells of each differential pair,
write-verify programming for the weight-optimisation baseline."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from rramctl.chip import FORMED_THRESHOLD_US, BoardCost, Chip, FormReport, PairFormReport
from rramctl.geometry import pair_cells
from rramctl.hw import linedrive
from rramctl.training.placement import LayerShape, Placement, Tile


@dataclass
class OpCounts:
    """Programming operations (cell pulses for reset/set; cells addressed and pulses for write-verify),
    multiplies (input vectors through a tile) and saturated ADC samples of those multiplies, per layer."""

    resets: dict[str, int] = field(default_factory=dict)
    sets: dict[str, int] = field(default_factory=dict)
    programmed_cells: dict[str, int] = field(default_factory=dict)
    program_pulses: dict[str, int] = field(default_factory=dict)
    multiplies: dict[str, int] = field(default_factory=dict)
    saturated: dict[str, int] = field(default_factory=dict)

    def add(self, what: str, layer: str, n: int) -> None:
        d: dict[str, int] = getattr(self, what)
        d[layer] = d.get(layer, 0) + int(n)

    def programming_ops(self) -> dict[str, int]:
        """Cell programming operations per layer: resets + sets + write-verified cells."""
        layers = set(self.resets) | set(self.sets) | set(self.programmed_cells)
        return {
            k: self.resets.get(k, 0) + self.sets.get(k, 0) + self.programmed_cells.get(k, 0) for k in sorted(layers)
        }

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {k: dict(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, dict[str, int]]) -> OpCounts:
        return cls(**{k: dict(v) for k, v in d.items()})


class MappedNetwork:
    """Layer weight matrices (n_out, n_in) living on chips as differential pairs, per ``placement``."""

    def __init__(self, chips: list[Chip], placement: Placement, dedup: bool = True) -> None:
        if len(chips) < placement.arrays_used:
            raise ValueError(f"placement uses {placement.arrays_used} arrays but {len(chips)} chip(s) given")
        self.chips = chips
        self.dedup = dedup
        self.placement = placement
        self.layers = {la.name: la for la in placement.layers}
        self.counts = OpCounts()
        self._cell_maps = {la.name: self._cell_map(la) for la in placement.layers}

    def _cell_map(self, layer: LayerShape) -> NDArray[np.int64]:
        """(3, n_out, n_in): array index, row, pair column of each weight."""
        m = np.full((3, layer.n_out, layer.n_in), -1, dtype=np.int64)
        for t in self.placement.tiles_of(layer.name):
            o = np.s_[t.out0 : t.out0 + t.n_cols]
            i = np.s_[t.in0 : t.in0 + t.n_rows]
            m[0][o, i] = t.array
            m[1][o, i] = (t.row + np.arange(t.n_rows))[None, :]
            m[2][o, i] = (t.col + np.arange(t.n_cols))[:, None]
        assert (m >= 0).all(), f"layer {layer.name} not fully placed"
        return m

    # ---- state ------------------------------------------------------------------------------
    def electroform(self, complementary: bool = True) -> list[FormReport | PairFormReport]:
        """Form every array region the placement uses. ``complementary`` (seed 000 Results): G+ at random,
        each G- cell to the state complementary to its G+ (``Chip.electroform_pairs``), so every pair is
        +-G; otherwise both halves are formed independently (pairs +G, -G, ~0 or G+ - G-)."""
        reports: list[FormReport | PairFormReport] = []
        for t in self.placement.tiles:
            chip = self.chips[t.array]
            if complementary:
                reports.append(chip.electroform_pairs(t.region))
            else:
                reports.append(chip.electroform(t.region))
                reports.append(chip.electroform(t.region.minus()))
        return reports

    def form_unformed(self, step_v: float = 0.05) -> int:
        """Form every still-unformed cell of both halves of every tile, then reset the cells it formed, so the
        weights stay as formed while write-verify can program both cells of every pair (the WO baseline; an
        unformed cell takes the whole pulse cap and stays off). Each half gets forming pulses ``step_v`` higher
        each time, up to the SL rating, while any of its cells is unformed (ours, as ``Chip.electroform_pairs``
        forms its G- half; a forming pulse leaves formed cells as they are). Returns the cells left unformed."""
        left = 0
        for t in self.placement.tiles:
            chip = self.chips[t.array]
            for region in (t.region, t.region.minus()):
                todo = chip.read(region) <= FORMED_THRESHOLD_US
                pending, v = todo, chip.config.form.voltage_v
                while pending.any() and v <= chip.config.ratings.max_sl_voltage_v + 1e-9:
                    chip.electroform(region, chip.config.form.model_copy(update={"voltage_v": round(v, 6)}))
                    pending = todo & (chip.read(region) <= FORMED_THRESHOLD_US)
                    v += step_v
                formed = np.argwhere(todo & ~pending)
                if len(formed):
                    chip.reset(formed + [region.row, region.col])
                left += int(pending.sum())
        return left

    def read_weights(self, layer: str) -> NDArray[np.float64]:
        """G+ - G- of every weight of a layer in uS, read back from the chips, shape (n_out, n_in)."""
        la = self.layers[layer]
        w = np.zeros((la.n_out, la.n_in))
        for t in self.placement.tiles_of(layer):
            w[t.out0 : t.out0 + t.n_cols, t.in0 : t.in0 + t.n_rows] = self.chips[t.array].weights_us(t.region).T
        return w

    def read_pairs(self, layer: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(G+, G-) of every pair of a layer in uS, each (n_out, n_in), read back cell by cell."""
        la = self.layers[layer]
        gp, gm = np.zeros((la.n_out, la.n_in)), np.zeros((la.n_out, la.n_in))
        for t in self.placement.tiles_of(layer):
            chip = self.chips[t.array]
            sl = np.s_[t.out0 : t.out0 + t.n_cols, t.in0 : t.in0 + t.n_rows]
            gp[sl] = chip.read(t.region).T
            gm[sl] = chip.read(t.region.minus()).T
        return gp, gm

    def read_weights_at(self, layer: str, idx: NDArray[np.int64]) -> NDArray[np.float64]:
        """G+ - G- in uS of the weights at ``idx`` ((K, 2) [out, in]) of a layer, in that order, reading only
        their pairs' cells (``Chip.weights_of_pairs``, one verify-only PROGRAM per array) where
        :meth:`read_weights` reads every cell of the layer's tiles."""
        arr, row, col = self._locate(layer, idx)
        w = np.zeros(len(idx))
        for a in np.unique(arr):
            sel = arr == a
            w[sel] = self.chips[int(a)].weights_of_pairs(np.stack([row[sel], col[sel]], axis=1))
        return w

    def _locate(self, layer: str, idx: NDArray[np.int64]) -> tuple[NDArray[np.int64], ...]:
        """(array, row, pair column) of the weights at indices ``idx`` (K, 2) [out, in] of a layer."""
        m = self._cell_maps[layer]
        return tuple(m[k][idx[:, 0], idx[:, 1]] for k in range(3))

    def _cells_by_array(self, layer: str, idx: NDArray[np.int64]) -> dict[int, NDArray[np.int64]]:
        """Both cells of the pairs at weight indices ``idx`` (K, 2) [out, in], grouped by array."""
        arr, row, col = self._locate(layer, idx)
        out = {}
        for a in np.unique(arr):
            sel = arr == a
            out[int(a)] = pair_cells(row[sel], col[sel])
        return out

    def prune(self, layer: str, idx: NDArray[np.int64]) -> int:
        """Reset both cells of each pair (batched per array); returns pulses applied."""
        n = sum(self.chips[a].reset(c) for a, c in self._cells_by_array(layer, idx).items())
        self.counts.add("resets", layer, n)
        return n

    def reinstate(self, layer: str, idx: NDArray[np.int64]) -> int:
        """Set both cells of each pair (batched per array); returns pulses applied."""
        n = sum(self.chips[a].set(c) for a, c in self._cells_by_array(layer, idx).items())
        self.counts.add("sets", layer, n)
        return n

    def program(self, layer: str, idx: NDArray[np.int64], g_plus: NDArray[np.float64], g_minus: NDArray[np.float64],
                tolerance: float) -> None:  # fmt: skip
        """Write-verify both cells of each pair to (G+, G-) targets in uS."""
        arr = self._locate(layer, idx)[0]
        for a in np.unique(arr):
            sel = arr == a
            cells = self._cells_by_array(layer, idx[sel])[int(a)]
            rep = self.chips[int(a)].program(cells, np.concatenate([g_plus[sel], g_minus[sel]]), tolerance)
            self.counts.add("programmed_cells", layer, len(cells))
            self.counts.add("program_pulses", layer, int(np.asarray(rep.pulses).sum()))

    # ---- compute ----------------------------------------------------------------------------
    def matmul(self, layer: str, x: NDArray[np.integer], bits: int) -> NDArray[np.float64]:
        """Products (N, n_out) in uS x input LSB; row blocks' partial sums added on the host."""
        la = self.layers[layer]
        if x.ndim != 2 or x.shape[1] != la.n_in:
            raise ValueError(f"layer {layer}: inputs must be (N, {la.n_in}), got {x.shape}")
        tiles = self.placement.tiles_of(layer)
        if len(tiles) == 1 and tiles[0].n_cols == la.n_out:  # one tile, every output: its products (0 + p = p)
            return self._tile_products(tiles[0], x[:, tiles[0].in0 : tiles[0].in0 + tiles[0].n_rows], bits)
        y = np.zeros((x.shape[0], la.n_out))
        for t in tiles:
            y[:, t.out0 : t.out0 + t.n_cols] += self._tile_products(t, x[:, t.in0 : t.in0 + t.n_rows], bits)
        return y

    def _tile_products(self, t: Tile, x: NDArray[np.integer], bits: int) -> NDArray[np.float64]:
        """One tile's products. With ``dedup`` (ours) each distinct input vector of the batch is multiplied
        once and all-zero vectors are not sent (no row driven: zero current); counts record vectors sent."""
        if not self.dedup:
            self.counts.add("multiplies", t.layer, len(x))
            return self._multiply(t, x, bits)
        nonzero = x.any(axis=1)
        nz = np.flatnonzero(nonzero)
        if not len(nz):
            return np.zeros((len(x), t.n_cols))
        uniq, inverse = linedrive.unique_vectors(x if len(nz) == len(x) else x[nz])  # = np.unique(axis=0), hashed
        self.counts.add("multiplies", t.layer, len(uniq))
        products = self._multiply(t, uniq, bits)
        if len(nz) == len(x):  # no all-zero row: every row its distinct row's products
            return products[inverse.ravel()]
        which = np.zeros(len(x), dtype=np.int64)  # every row its distinct row's products, in one gather
        which[nz] = inverse.ravel()
        out = products[which]
        out[~nonzero] = 0.0  # an all-zero row (not sent: no row driven, zero current)
        return out

    def _multiply(self, t: Tile, x: NDArray[np.integer], bits: int) -> NDArray[np.float64]:
        res = self.chips[t.array].multiply_pairs(x, t.region, bits)
        self.counts.add("saturated", t.layer, res.saturated)
        return res.products

    def board_cost(self) -> BoardCost | None:
        """Board time and energy so far, summed over the arrays (None where a backend does not model it);
        arrays work one after another, so their times add."""
        total: BoardCost | None = BoardCost()
        for chip in self.chips:
            cost = chip.board_cost()
            total = total + cost if total is not None and cost is not None else None
        return total

    def close(self) -> None:
        for c in self.chips:
            c.close()
