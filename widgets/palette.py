"""Colours: the Okabe–Ito palette (safe for the common colour-vision deficiencies), and
the plotly layout of each theme. Every figure and status colour comes from here."""

from __future__ import annotations

from typing import Any, Final, Literal

Theme = Literal["light", "dark"]
THEMES: Final[tuple[Theme, ...]] = ("light", "dark")

# Okabe & Ito (2008), "Color Universal Design".
ORANGE: Final = "#E69F00"
SKY_BLUE: Final = "#56B4E9"
BLUISH_GREEN: Final = "#009E73"
YELLOW: Final = "#F0E442"
BLUE: Final = "#0072B2"
VERMILION: Final = "#D55E00"
REDDISH_PURPLE: Final = "#CC79A7"
BLACK: Final = "#000000"
GREY: Final = "#999999"

SERIES: Final[tuple[str, ...]] = (BLUE, ORANGE, BLUISH_GREEN, REDDISH_PURPLE, SKY_BLUE, VERMILION,
                                  YELLOW)
# Meaning-bearing colours, each also told apart by text or shape on the page.
GOOD: Final = BLUISH_GREEN
WARN: Final = ORANGE
BAD: Final = VERMILION
TIER: Final[dict[str, str]] = {"L1": SKY_BLUE, "L2": ORANGE, "L3": VERMILION}

_INK: Final[dict[Theme, str]] = {"light": "#212529", "dark": "#e6edf3"}
_GRID: Final[dict[Theme, str]] = {"light": "#dee2e6", "dark": "#30363d"}


def normalise_theme(value: object, *, default: Theme = "light") -> Theme:
    return value if value in THEMES else default


def figure_layout(theme: Theme) -> dict[str, Any]:
    """The plotly layout shared by every figure of a theme (transparent on the card)."""
    return {
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"color": _INK[theme],
                 "family": 'system-ui, -apple-system, "Segoe UI", "Noto Sans CJK SC", sans-serif'},
        "colorway": list(SERIES),
        "xaxis": {"gridcolor": _GRID[theme], "zerolinecolor": _GRID[theme]},
        "yaxis": {"gridcolor": _GRID[theme], "zerolinecolor": _GRID[theme]},
        "margin": {"l": 8, "r": 8, "t": 36, "b": 8},
    }
