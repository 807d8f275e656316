"""Warehouses: stock per SKU, reorders, injected stock-outs, and what the WMS reports.

Stock starts at ``stock_per_sku`` for every SKU. Reordering is an (s, Q) policy on
the inventory position (on hand plus on order): whenever it is at or below
``reorder_point`` another ``restock_qty`` is ordered, arriving after
``restock_lead``; a pick that finds a SKU short orders at once if nothing is on the
way. An injected
:class:`~simulation.scenario.StockOut` window makes the warehouse unable to pick
anything (its system shows nothing on hand). The WMS reports ``stock.level`` when a
level falls to or below the reorder point, when stock arrives, and when a pick finds
a SKU short.
"""

from __future__ import annotations

from collections.abc import Sequence

import simpy

from simulation.emitter import Emitter
from simulation.order import Item
from simulation.scenario import Warehouse as WarehouseSpec
from simulation.streams import Draws

SOURCE = "wms"


class Warehouse:
    """One warehouse during a run."""

    def __init__(self, env: simpy.Environment, spec: WarehouseSpec, *, emitter: Emitter, lead: Draws,
                 closures: Sequence[tuple[float, float]], hub_id: str | None) -> None:
        self.env = env
        self.id = spec.id
        self.city = spec.city
        self.spec = spec
        self.hub_id = hub_id
        self.backup: Warehouse | None = None
        self.emitter = emitter
        self.lead = lead
        self.closures = sorted(closures)
        self.on_hand: dict[str, int] = {}
        self.on_order: dict[str, int] = {}
        self.restocked = env.event()

    def closed_until(self) -> float | None:
        """End of the injected stock-out under way, if any."""
        now = self.env.now
        for start, end in self.closures:
            if start <= now < end:
                return end
        return None

    def level(self, sku: str) -> int:
        """What the warehouse system shows on hand (nothing during a stock-out window)."""
        if self.closed_until() is not None:
            return 0
        return self.on_hand.get(sku, self.spec.stock_per_sku)

    def short_of(self, items: Sequence[Item]) -> str | None:
        """The first SKU of ``items`` that cannot be picked in full, or None."""
        closed = self.closed_until() is not None
        for sku, qty in items:
            if closed or self.on_hand.get(sku, self.spec.stock_per_sku) < qty:
                return sku
        return None

    def take(self, items: Sequence[Item]) -> None:
        """Pick ``items`` (check :meth:`short_of` first); reorder what runs low."""
        for sku, qty in items:
            left = self.on_hand.get(sku, self.spec.stock_per_sku) - qty
            self.on_hand[sku] = left
            if left <= self.spec.reorder_point:
                self.report(sku)
                self.reorder(sku)

    def found_short(self, sku: str) -> None:
        """A pick found ``sku`` short: the WMS reports it and, unless the warehouse is shut
        by a stock-out window, it is reordered at once."""
        self.report(sku)
        if self.closed_until() is None:
            self.reorder(sku, short=True)

    def report(self, sku: str) -> None:
        """A ``stock.level`` event for ``sku``."""
        if self.emitter.live:
            self.emitter.emit(self.env.now, "stock.level", SOURCE, None,
                              {"warehouse_id": self.id, "sku": sku, "on_hand": self.level(sku)})
        else:
            self.emitter.count("stock.level")

    def reorder(self, sku: str, *, short: bool = False) -> None:
        """Order ``restock_qty`` while the inventory position is at or below the reorder point
        (and once, if ``short``, when nothing is on the way)."""
        spec = self.spec
        on_order = self.on_order.get(sku, 0)
        position = self.on_hand.get(sku, spec.stock_per_sku) + on_order
        while position <= spec.reorder_point or (short and on_order == 0):
            on_order += spec.restock_qty
            position += spec.restock_qty
            self.env.timeout(self.lead()).callbacks.append(lambda _: self._arrive(sku))
        self.on_order[sku] = on_order

    def _arrive(self, sku: str) -> None:
        qty = self.spec.restock_qty
        self.on_order[sku] -= qty
        self.on_hand[sku] = self.on_hand.get(sku, self.spec.stock_per_sku) + qty
        self.report(sku)
        woken, self.restocked = self.restocked, self.env.event()
        woken.succeed()

    def next_chance(self) -> simpy.Event:
        """What an order short of stock here waits for: stock arriving or the window ending."""
        end = self.closed_until()
        if end is not None:
            return self.env.timeout(end - self.env.now)
        return self.restocked
