"""Order Tower: a real-time operations control tower for order fulfilment."""

__version__ = "0.1.0"
