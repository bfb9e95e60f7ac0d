"""Placing network layers onto differential-pair tiles of 512 x 512 crossbars.

A layer is a weight matrix of ``n_in`` inputs (rows, bit lines) x ``n_out`` outputs (pair columns).
Each output is a differential pair: G+ at column c, G- at column c + 256 (docs/protocol.md), so one
array offers 512 rows x 256 pair columns. Layers with more than 512 inputs are split into row blocks
whose partial sums the host adds digitally; layers with more than 256 outputs into column blocks.
Blocks are packed bottom-left (ours), largest first, onto as many arrays as ``n_arrays`` allows.
"""

from __future__ import annotations

from dataclasses import dataclass

from rramctl.errors import UsageError
from rramctl.geometry import PAIR_OFFSET, ROWS, Region


class PlacementError(UsageError):
    """A model that does not fit on the arrays given."""


@dataclass(frozen=True)
class LayerShape:
    name: str
    n_in: int
    n_out: int

    def __post_init__(self) -> None:
        if self.n_in < 1 or self.n_out < 1:
            raise PlacementError(f"layer {self.name}: shape {self.n_out}x{self.n_in} is empty")


@dataclass(frozen=True)
class Tile:
    """One block of a layer: inputs ``in0 .. in0+n_rows-1`` -> outputs ``out0 .. out0+n_cols-1``,
    placed on array ``array`` at rows ``row ..`` and pair columns ``col ..``."""

    layer: str
    array: int
    row: int
    col: int
    in0: int
    out0: int
    n_rows: int
    n_cols: int

    @property
    def region(self) -> Region:
        """The tile's G+ cells as a pair region of its array (G- at ``region.minus()``)."""
        return Region(self.row, self.n_rows, self.col, self.n_cols)

    def overlaps(self, other: Tile) -> bool:
        return (
            self.array == other.array
            and self.row < other.row + other.n_rows
            and other.row < self.row + self.n_rows
            and self.col < other.col + other.n_cols
            and other.col < self.col + self.n_cols
        )


@dataclass(frozen=True)
class Placement:
    layers: tuple[LayerShape, ...]
    tiles: tuple[Tile, ...]
    n_arrays: int

    def tiles_of(self, layer: str) -> list[Tile]:
        return [t for t in self.tiles if t.layer == layer]

    @property
    def arrays_used(self) -> int:
        return 1 + max(t.array for t in self.tiles)

    def report(self) -> str:
        """Placement table: layer, shape, tiles, rows/cols used, utilisation of the arrays in use."""
        lines = [f"{'layer':<8}{'shape (out x in)':>18}{'tiles':>7}{'pairs':>9}{'cells':>9}  placement"]
        for layer in self.layers:
            tiles = self.tiles_of(layer.name)
            where = "; ".join(
                f"a{t.array} r{t.row}-{t.row + t.n_rows - 1} c{t.col}-{t.col + t.n_cols - 1}" for t in tiles
            )
            pairs = layer.n_in * layer.n_out
            lines.append(
                f"{layer.name:<8}{f'{layer.n_out} x {layer.n_in}':>18}{len(tiles):>7}{pairs:>9}{2 * pairs:>9}  {where}"
            )
        used = sum(t.n_rows * t.n_cols for t in self.tiles)
        cap = self.arrays_used * ROWS * PAIR_OFFSET
        lines.append(
            f"total {used} pairs = {2 * used} cells on {self.arrays_used} array(s) of {ROWS}x{2 * PAIR_OFFSET}: "
            f"utilisation {100 * used / cap:.1f} %"
        )
        return "\n".join(lines)


def _blocks(layer: LayerShape) -> list[tuple[int, int, int, int]]:
    """(in0, out0, n_rows, n_cols) blocks of at most 512 rows x 256 pair columns."""
    return [
        (i0, o0, min(ROWS, layer.n_in - i0), min(PAIR_OFFSET, layer.n_out - o0))
        for i0 in range(0, layer.n_in, ROWS)
        for o0 in range(0, layer.n_out, PAIR_OFFSET)
    ]


def place(layers: list[LayerShape] | tuple[LayerShape, ...], n_arrays: int = 1) -> Placement:
    """Pack every layer's blocks onto ``n_arrays`` arrays; PlacementError says by how much it misses."""
    if n_arrays < 1:
        raise PlacementError(f"n_arrays must be >= 1, got {n_arrays}")
    names = [la.name for la in layers]
    if len(set(names)) != len(names):
        raise PlacementError(f"layer names must be unique, got {names}")
    blocks = [(la.name, *b) for la in layers for b in _blocks(la)]
    orders = (  # (ours) try largest area, widest and tallest first; keep the first that fits
        lambda b: (-b[3] * b[4], -b[3], names.index(b[0])),
        lambda b: (-b[4], -b[3], names.index(b[0])),
        lambda b: (-b[3], -b[4], names.index(b[0])),
    )
    placed: list[Tile] | None = None
    for key in orders:
        placed = _pack(sorted(blocks, key=key), n_arrays)
        if placed is not None:
            break
    if placed is None:
        need = sum(la.n_in * la.n_out for la in layers)
        cap = n_arrays * ROWS * PAIR_OFFSET
        short = f"{need - cap} pairs too many" if need > cap else "the blocks' shapes leave no room"
        raise PlacementError(
            f"model does not fit on {n_arrays} array(s): it needs {need} pairs ({100 * need / cap:.1f} % of {cap}); "
            f"{short} - try n_arrays={n_arrays + 1}"
        )
    order = {n: k for k, n in enumerate(names)}
    placed.sort(key=lambda t: (order[t.layer], t.in0, t.out0))
    return Placement(tuple(layers), tuple(placed), n_arrays)


def _pack(blocks: list[tuple[str, int, int, int, int]], n_arrays: int) -> list[Tile] | None:
    placed: list[Tile] = []
    for name, i0, o0, nr, nc in blocks:
        tile = _first_fit(placed, name, i0, o0, nr, nc, n_arrays)
        if tile is None:
            return None
        placed.append(tile)
    return placed


def _first_fit(placed: list[Tile], name: str, i0: int, o0: int, nr: int, nc: int, n_arrays: int) -> Tile | None:
    """Bottom-left placement: candidate corners are the origin and the edges of placed tiles."""
    for array in range(n_arrays):
        on = [t for t in placed if t.array == array]
        rows = sorted({0} | {t.row + t.n_rows for t in on})
        cols = sorted({0} | {t.col + t.n_cols for t in on})
        for c in cols:
            for r in rows:
                if r + nr > ROWS or c + nc > PAIR_OFFSET:
                    continue
                cand = Tile(name, array, r, c, i0, o0, nr, nc)
                if not any(cand.overlaps(t) for t in on):
                    return cand
    return None
