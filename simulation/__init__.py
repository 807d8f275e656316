"""The order-network simulator (SimPy) and its synthetic feeds. No Dash, no store."""
