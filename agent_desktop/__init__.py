"""Agent desktop: the page, htmx fragments and the live websocket."""
