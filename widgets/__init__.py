"""UI building blocks: page layouts, figure builders and components (Dash)."""
