"""Figure builders: pure functions ``data -> plotly figure``, testable without a server."""
