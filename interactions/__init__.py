"""Interactions hub: one Interaction per contact on any channel, and the append-only timeline."""
