"""Strings of one page each (``STRINGS = {"en": {...}, "zh-CN": {...}}``), merged into
:data:`widgets.i18n.CATALOGUE`; a key missing in one language fails tests/test_widgets.py."""
